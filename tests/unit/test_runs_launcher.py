"""The launcher: exact argv (single process and torchrun), the shell command shown, and a real detached start."""
from __future__ import annotations

import json
import os
import stat
import sys
import textwrap

from testkit import wait_until

from minimind_tui.runs.launcher import ProcessLauncher, TrainSpec, launcher_pid, shell_command, train_argv

RECORDER = textwrap.dedent("""
    import json, os, sys
    out = {"argv": sys.argv[1:], "sid": os.getsid(0), "pid": os.getpid(), "cwd": os.getcwd(),
           "stdin": sys.stdin.read(), "unbuffered": os.environ.get("PYTHONUNBUFFERED"),
           "device_order": os.environ.get("CUDA_DEVICE_ORDER"), "visible": os.environ.get("CUDA_VISIBLE_DEVICES")}
    print(json.dumps(out))
    print("to stderr", file=sys.stderr)
""")


def fake_python(tmp_path):
    """An executable standing in for `python`: records how it was started instead of training."""
    script = tmp_path / "recorder.py"
    script.write_text(RECORDER)
    exe = tmp_path / "python"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} {script} \"$@\"\n")
    exe.chmod(0o755)
    return str(exe)


def test_spec_uses_minimind_flag_names():
    spec = TrainSpec(mode="sft", data_path="dataset/sft_mini_512.jsonl", batch_size=64, learning_rate=5e-5,
                     accumulation_steps=1, dim=512, n_layers=8, max_seq_len=512, init="out/pretrain_512.pth",
                     dtype="bfloat16")
    args = spec.train_args()
    assert args[0] == "sft"
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags == {"--data_path": "dataset/sft_mini_512.jsonl", "--batch_size": "64", "--learning_rate": "5e-05",
                     "--epochs": "1", "--accumulation_steps": "1", "--dim": "512", "--n_layers": "8",
                     "--max_seq_len": "512", "--use_moe": "0", "--dtype": "bfloat16", "--device": "cuda:0",
                     "--init": "out/pretrain_512.pth", "--out_dir": "out"}


def test_without_a_dtype_the_trainer_chooses_and_no_flag_is_passed():
    spec = TrainSpec(mode="pretrain", data_path="d.jsonl", device="cpu", preset="demo")
    args = spec.train_args()
    assert "--dtype" not in args and args[args.index("--preset") + 1] == "demo"


def test_multi_gpu_goes_through_loopback_torchrun_without_a_device_flag():
    spec = TrainSpec(mode="pretrain", data_path="d.jsonl", gpus=2)
    assert "--device" not in spec.train_args()
    argv = train_argv(spec.train_args(), "runs/x", gpus=2, python="py")
    assert argv[:7] == ["py", "-m", "minimind_tui.runs.torchrun_loopback", "--nproc_per_node", "2", "-m",
                        "minimind_tui"]
    assert argv[7:9] == ["train", "pretrain"] and argv[-2:] == ["--run_dir", "runs/x"]
    assert shell_command(spec.train_args(), gpus=2).startswith(
        "python -m minimind_tui.runs.torchrun_loopback --nproc_per_node 2 -m minimind_tui train pretrain "
        "--data_path d.jsonl")


def test_shell_command_quotes_paths():
    assert shell_command(["sft", "--data_path", "my data/x.jsonl"]) == "minimind-tui train sft --data_path " \
                                                                       "'my data/x.jsonl'"


def wait_exit(launcher, run_dir):
    wait_until(lambda: launcher.exit_code(run_dir) is not None, 10, "the launched process to exit")
    return launcher.exit_code(run_dir)


def test_launch_starts_a_detached_process_writing_to_launcher_log(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_DEVICE_ORDER", "FASTEST_FIRST")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-abc,1")
    root = tmp_path / "proj"
    root.mkdir()
    launcher = ProcessLauncher(python=fake_python(tmp_path))
    launched = launcher.launch(root, "sft", ["sft", "--data_path", "d.jsonl"])
    assert wait_exit(launcher, launched.run_dir) == 0
    run_dir = launched.run_dir
    assert run_dir.parent == root / "runs" and run_dir.name.endswith("-sft")
    assert stat.S_IMODE(run_dir.stat().st_mode) == 0o700
    assert launcher_pid(run_dir) == launched.pid
    log = (run_dir / "launcher.log").read_text().splitlines()
    assert log[0].startswith("[") and "-m minimind_tui train sft" in log[0]
    rec = json.loads(log[1])
    assert rec["argv"] == ["-m", "minimind_tui", "train", "sft", "--data_path", "d.jsonl", "--run_dir",
                           f"runs/{run_dir.name}"]
    assert rec["sid"] == rec["pid"] != os.getsid(0)  # its own session: a hang-up of ours never reaches it
    assert rec["stdin"] == "" and rec["unbuffered"] == "1"
    # cuda:N counts in PCI order, as NVML does, so the dashboard's GPU numbers are the trainer's; the user's
    # choice of GPUs is kept.
    assert rec["device_order"] == "PCI_BUS_ID" and rec["visible"] == "GPU-abc,1"
    assert os.path.realpath(rec["cwd"]) == os.path.realpath(root)
    assert "to stderr" in log[2]
    assert stat.S_IMODE((run_dir / "launcher.log").stat().st_mode) == 0o600


def test_two_launches_in_one_second_get_distinct_run_dirs(tmp_path):
    launcher = ProcessLauncher(python=fake_python(tmp_path), clock=lambda: 1_764_000_000.0)
    a = launcher.launch(tmp_path, "sft", ["sft"])
    b = launcher.launch(tmp_path, "sft", ["sft"])
    assert a.run_dir != b.run_dir and b.run_dir.name == a.run_dir.name + "-2"
    wait_exit(launcher, a.run_dir), wait_exit(launcher, b.run_dir)


def test_resume_reuses_the_run_dir_with_a_relative_path(tmp_path):
    launcher = ProcessLauncher(python=fake_python(tmp_path))
    run_dir = tmp_path / "runs" / "20251101-100000-sft"
    run_dir.mkdir(parents=True)
    launched = launcher.resume(tmp_path, run_dir, "sft")
    wait_exit(launcher, run_dir)
    rec = json.loads((run_dir / "launcher.log").read_text().splitlines()[1])
    assert launched.run_dir == run_dir
    assert rec["argv"] == ["-m", "minimind_tui", "train", "sft", "--resume", "runs/20251101-100000-sft"]


def test_an_exit_status_is_forgotten_once_another_process_was_started_in_the_run(tmp_path):
    """Another dashboard resumed the run (its launcher.pid names that process): how this launcher's own process
    ended says nothing of the run any more."""
    from minimind_tui.runs import pids

    root = tmp_path / "proj"
    root.mkdir()
    launcher = ProcessLauncher(python=fake_python(tmp_path))
    launched = launcher.launch(root, "sft", ["sft", "--data_path", "d.jsonl"])
    assert wait_exit(launcher, launched.run_dir) == 0
    (launched.run_dir / "launcher.pid").write_text(pids.record_line())  # the other dashboard's trainer
    assert launcher.exit_code(launched.run_dir) is None
