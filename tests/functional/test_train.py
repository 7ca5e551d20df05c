"""The real trainer on real files, on CPU with a tiny model: what a user (or the dashboard) relies on."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from testkit import TINY, of_kind, run_cli, start_cli, steps, train_here, wait_until, write_demo_corpus

from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return write_demo_corpus(tmp_path_factory.mktemp("data"))


def end_event(run_dir: Path) -> dict:
    return of_kind(run_dir, "end")[-1]


@pytest.mark.slow
def test_demo_pretrain_then_sft_from_its_weights(tmp_path, data):
    """The full CLI path in a subprocess, as the dashboard launches it."""
    done = run_cli(tmp_path, "train", "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "8",
                   "--accumulation_steps", "1", "--epochs", "2", "--learning_rate", "5e-3", "--save_interval", "10",
                   "--run_dir", "runs/pre")
    assert done.returncode == 0, done.stdout + done.stderr
    pre = tmp_path / "runs" / "pre"
    events = read_all(pre / layout.METRICS)
    kinds = [e["event"] for e in events]
    assert kinds.count("start") == 1 and kinds[-1] == "end" and "ckpt" in kinds
    assert end_event(pre)["status"] == "done"
    losses = [e["loss"] for e in steps(pre)]
    assert len(losses) == 24 and sum(losses[-4:]) / 4 < sum(losses[:4]) / 4 - 0.5
    assert {"tokens_per_s", "padded_tokens_per_s", "grad_norm", "eta", "elapsed", "lr"} <= set(steps(pre)[-1])
    assert (tmp_path / "out" / "pretrain_32.pth").is_file()
    assert (pre / layout.CONFIG).is_file() and "pretrain" in (pre / layout.LOG).read_text()
    assert not (pre / layout.LOCK).exists()
    ck = layout.complete_checkpoints(pre)
    assert [c.name for c in ck] == ["step_00000010", "step_00000020", "step_00000024"]  # keep_last 3

    done = run_cli(tmp_path, "train", "sft", "--data_path", str(data["sft"]), *TINY, "--batch_size", "8",
                   "--learning_rate", "1e-3", "--epochs", "3", "--run_dir", "runs/sft")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout + done.stderr
    assert "init: loaded out/pretrain_32.pth" in out
    assert "recorded with the weights" in out  # same tokenizer as the pretraining run
    losses = [e["loss"] for e in steps(tmp_path / "runs" / "sft")]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.5
    from model.checkpoint import load_model
    model = load_model(tmp_path / "out" / "full_sft_32.pth", n_heads=4)  # MiniMind-style plain state dict
    assert model.config.dim == 32 and model.config.n_layers == 1


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, data, monkeypatch):
    """Stop at step k (shuffle on, accumulation, across an epoch boundary), resume: steps k+1..N have the
    same losses and learning rates as the uninterrupted run."""
    common = ["--data_path", str(data["pretrain"]), *TINY, "--batch_size", "8", "--accumulation_steps", "2",
              "--epochs", "2", "--shuffle", "1", "--seed", "7", "--save_interval", "100"]
    assert train_here(tmp_path, "pretrain", *common, "--run_dir", "runs/full", monkeypatch=monkeypatch) == 0
    assert train_here(tmp_path, "pretrain", *common, "--run_dir", "runs/cut",
                      env={"MINIMIND_TUI_STOP_AT_STEP": "8"}, monkeypatch=monkeypatch) == 0
    cut = tmp_path / "runs" / "cut"
    assert end_event(cut)["status"] == "stopped"
    assert layout.complete_checkpoints(cut)[-1].name == "step_00000008"
    assert train_here(tmp_path, "pretrain", "--resume", "runs/cut", monkeypatch=monkeypatch) == 0
    full = {e["step"]: (e["loss"], e["lr"]) for e in steps(tmp_path / "runs" / "full")}
    resumed = {e["step"]: (e["loss"], e["lr"]) for e in steps(cut) if e["step"] > 8}
    assert sorted(resumed) == list(range(9, 13)) == sorted(full)[8:]
    assert all(resumed[s] == full[s] for s in resumed), (resumed, full)
    assert end_event(cut)["status"] == "done"
    # Both runs export to out/pretrain_32.pth: the second says once what it replaces, the resume does not repeat it.
    replaced = [line for line in (cut / layout.LOG).read_text().splitlines() if "replacing" in line]
    assert len(replaced) == 1 and "pretrain_32.pth (from run full, whose checkpoints keep it)" in replaced[0]


def test_resume_refuses_changed_settings(tmp_path, data, monkeypatch, capsys):
    args = ["--data_path", str(data["pretrain"]), *TINY, "--batch_size", "32", "--accumulation_steps", "1"]
    assert train_here(tmp_path, "pretrain", *args, "--run_dir", "r",
                      env={"MINIMIND_TUI_STOP_AT_STEP": "1"}, monkeypatch=monkeypatch) == 0
    assert train_here(tmp_path, "pretrain", "--resume", "r", "--batch_size", "4", monkeypatch=monkeypatch) == 2
    assert "--batch_size 4 (the run has 32)" in capsys.readouterr().err


@pytest.mark.slow
def test_sigint_stops_after_the_step_with_a_checkpoint(tmp_path, data):
    p = start_cli(tmp_path, "train", "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "4",
                  "--accumulation_steps", "1", "--epochs", "50", "--save_interval", "100000", "--run_dir", "r")
    run_dir = tmp_path / "r"
    wait_until(lambda: steps(run_dir), 120, "the first step", proc=p)
    assert layout.is_alive(run_dir)  # fresh heartbeat, lock names a live pid
    os.killpg(p.pid, signal.SIGINT)
    os.killpg(p.pid, signal.SIGINT)  # a second signal must not break the save
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    end = end_event(run_dir)
    assert end["status"] == "stopped" and "SIGINT" in end["reason"]
    last = layout.complete_checkpoints(run_dir)[-1]
    assert last.name == f"step_{end['step']:08d}" and (last / layout.STATE_FILE).is_file()
    assert not (run_dir / layout.LOCK).exists()


def test_sighup_from_a_closed_terminal_saves_and_ends_stopped(tmp_path, data):
    """A CLI run whose terminal goes away (ssh dropped without tmux): SIGHUP, and every later write to the
    terminal fails. It must save and end `stopped`, as on Ctrl-C, not die without a checkpoint."""
    import pty
    import select
    import threading

    master, slave = pty.openpty()
    p = subprocess.Popen([sys.executable, "-m", "minimind_tui", "train", "pretrain", "--data_path",
                          str(data["pretrain"]), *TINY, "--batch_size", "4", "--accumulation_steps", "1",
                          "--epochs", "50", "--save_interval", "100000", "--run_dir", "r"],
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdin=subprocess.DEVNULL,
                         stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    reading = threading.Event()
    reading.set()

    def drain():  # the terminal: read what the trainer prints, so it never blocks on a full pty
        while reading.is_set():
            if select.select([master], [], [], 0.05)[0]:
                try:
                    os.read(master, 65536)
                except OSError:
                    return
    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    run_dir = tmp_path / "r"
    try:
        deadline = time.time() + 120
        while not (run_dir / layout.METRICS).exists() or not steps(run_dir):
            assert p.poll() is None and time.time() < deadline, "the trainer ended or never stepped"
            time.sleep(0.05)
    finally:
        reading.clear()
        reader.join()
        os.close(master)  # the terminal is gone: writes to it now fail with EIO
    os.killpg(p.pid, signal.SIGHUP)
    assert p.wait(timeout=120) == 0
    end = end_event(run_dir)
    assert end["status"] == "stopped" and "SIGHUP" in end["reason"]
    last = layout.complete_checkpoints(run_dir)[-1]
    assert last.name == f"step_{end['step']:08d}" and (last / layout.STATE_FILE).is_file()
    assert "stopped: SIGHUP" in (run_dir / layout.LOG).read_text()


def test_bad_input_is_one_clear_message(tmp_path, data, monkeypatch, capsys):
    assert train_here(tmp_path, "pretrain", "--data_path", "nope.jsonl", *TINY, monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert "nope.jsonl: no such file (--data_path)" in err and "Traceback" not in err
    (tmp_path / "dataset").mkdir()
    (tmp_path / "dataset" / "pretrain_hq.jsonl").write_text('{"text": "ok"}\n')
    assert train_here(tmp_path, "pretrain", "--data_path", "dataset", *TINY, monkeypatch=monkeypatch) == 2
    assert "dataset: a folder, not a file; pick a .jsonl in it: pretrain_hq.jsonl" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # caught before any run folder was made

    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": "fine"}\n{"text": broken\n')
    assert train_here(tmp_path, "pretrain", "--data_path", str(bad), *TINY, "--run_dir", "rb",
                      monkeypatch=monkeypatch) == 2
    err = capsys.readouterr().err
    assert f"{bad}:3: invalid JSON" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert end_event(tmp_path / "rb")["status"] == "failed"  # the dashboard sees why


def test_init_shape_mismatch_names_key_and_shapes(tmp_path, data, monkeypatch, capsys):
    from minimind_tui.demo import demo_tokenizer_dir
    from model import LMConfig, MiniMindLM, Tokenizer
    vocab = Tokenizer.from_dir(demo_tokenizer_dir()).vocab_size
    torch.save(MiniMindLM(LMConfig(dim=32, n_layers=1, n_heads=4, vocab_size=vocab, hidden_dim=64)).state_dict(),
               tmp_path / "other.pth")
    code = train_here(tmp_path, "sft", "--data_path", str(data["sft"]), *TINY, "--init", "other.pth",
                      monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert code == 2
    assert "layers.0.feed_forward.w1.weight has shape (64, 32) in the file but the model expects (128, 32)" in err


def test_simulated_oom_is_reported_with_its_own_status(tmp_path, data, monkeypatch):
    code = train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "8",
                      "--accumulation_steps", "1", "--run_dir", "r", env={"MINIMIND_TUI_FAKE_OOM_AT_STEP": "3"},
                      monkeypatch=monkeypatch)
    assert code == 3
    events = read_all(tmp_path / "r" / layout.METRICS)
    oom = next(e for e in events if e["event"] == "oom")
    assert oom["step"] == 2 and oom["batch_size"] == 8 and oom["suggestion"] == 4 and oom["rank"] == 0
    assert events[-1]["event"] == "end" and events[-1]["status"] == "oom"


def test_second_trainer_on_a_live_run_is_refused(tmp_path, data, monkeypatch, capsys):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        import psutil
        (run_dir / layout.LOCK).write_text(f"{holder.pid} {psutil.Process(holder.pid).create_time():.3f} "
                                           f"{os.uname().nodename}\n")
        code = train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--run_dir", "r",
                          monkeypatch=monkeypatch)
        assert code == 2 and f"another trainer (pid {holder.pid})" in capsys.readouterr().err
    finally:
        holder.kill()
        holder.wait()
    # The holder is gone: its lock is stale and the next trainer clears it.
    code = train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "32",
                      "--accumulation_steps", "1", "--run_dir", "r", monkeypatch=monkeypatch)
    assert code == 0 and "clearing a stale lock" in capsys.readouterr().out


def test_disk_failure_while_saving_is_reported_and_not_called_success(tmp_path, data, monkeypatch):
    from minimind_tui.train import checkpointing

    real = checkpointing.save_checkpoint

    def failing(run_dir, step, *a, **kw):
        if step > 2:
            raise OSError(28, "No space left on device")
        return real(run_dir, step, *a, **kw)

    monkeypatch.setattr(checkpointing, "save_checkpoint", failing)
    code = train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "16",
                      "--accumulation_steps", "1", "--save_interval", "2", "--run_dir", "r", monkeypatch=monkeypatch)
    assert code == 1
    events = read_all(tmp_path / "r" / layout.METRICS)
    failed = [e for e in events if e["event"] == "checkpoint_failed"]
    assert [e["step"] for e in failed] == [4, 6] and "No space left" in failed[0]["reason"]
    assert [e["step"] for e in events if e["event"] == "step"][-1] == 6  # training went on after a failed save
    assert events[-1]["event"] == "end" and events[-1]["status"] == "failed"
    assert [p.name for p in layout.complete_checkpoints(tmp_path / "r")] == ["step_00000002"]


def test_init_with_another_vocabulary_points_at_the_tokenizer(tmp_path, data, monkeypatch, capsys):
    from model import LMConfig, MiniMindLM
    torch.save(MiniMindLM(LMConfig(dim=32, n_layers=1, n_heads=4, vocab_size=6400)).state_dict(),
               tmp_path / "minimind.pth")
    code = train_here(tmp_path, "sft", "--data_path", str(data["sft"]), *TINY, "--init", "minimind.pth",
                      monkeypatch=monkeypatch)
    err = capsys.readouterr().err
    assert code == 2 and "6400-token vocabulary" in err and "--tokenizer DIR" in err
