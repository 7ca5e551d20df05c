"""Scenarios 7, 8, 12, 13, 14 on real trainer processes started as the dashboard starts them (own session):
single writer, graceful stop and escalation, a host kill, the stall watchdog, permissions and sockets."""
from __future__ import annotations

import os
import signal
import stat
import time
from pathlib import Path

import psutil
import pytest
from reliability_kit import TINY, group_members, listening_sockets
from testkit import monitor_summary, of_kind, steps, train_here, wait_for, wait_until

from minimind_tui.runs import layout
from minimind_tui.runs.control import read_stop_request, stop_run
from minimind_tui.runs.launcher import ProcessLauncher
from minimind_tui.runs.summary import summarize

LONG = [*TINY, "--batch_size", "4", "--accumulation_steps", "1", "--epochs", "100000"]
START_S = 120  # first step on a loaded 2-core box (torch import, tokenising)


def launch(root: Path, corpus, reap_groups, *extra: str, env: dict | None = None, umask: int = 0o022):
    """Start a long tiny pretraining run through the dashboard's launcher under the user's usual umask."""
    old_env = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    old = os.umask(umask)
    try:
        args = ["pretrain", "--data_path", str(corpus["pretrain"]), *LONG, *extra]
        launched = ProcessLauncher().launch(root, "pretrain", args)
    finally:
        os.umask(old)
        for k, v in old_env.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    reap_groups.append(launched.pid)  # a session leader: its pid is the group id
    return launched


def _running(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def wait_for_step(run: Path, k: int, pid: int):
    return wait_while_alive(run, pid, lambda: [e for e in steps(run) if e["step"] >= k], f"step {k}")


def wait_while_alive(run: Path, pid: int, condition, what: str):
    def check():
        if not group_members(pid):
            raise AssertionError(f"trainer died: {(run / 'launcher.log').read_text()[-2000:]}")
        return condition()
    return wait_until(check, START_S, what)


@pytest.mark.slow
def test_private_files_no_sockets_single_writer_and_host_kill(tmp_path, corpus, reap_groups, monkeypatch, capsys,
                                                              measured):
    root = tmp_path / "proj"
    root.mkdir()
    launched = launch(root, corpus, reap_groups, "--save_interval", "3")
    run = launched.run_dir
    wait_while_alive(run, launched.pid, lambda: layout.complete_checkpoints(run) and
                     (root / "out" / "pretrain_32.pth").exists(), "a checkpoint")
    trainer = layout.lock_pid(run)

    # 14: under umask 022 the run folder is 0700, which keeps everything in it private. The exported weights
    # are for sharing (issue 16): they follow the umask, as the user's other files do.
    loose = []
    for path, want in [(run, 0o700), (root / "out", 0o755), *((p, 0o644) for p in (root / "out").iterdir())]:
        try:
            mode = stat.S_IMODE(path.lstat().st_mode)
        except FileNotFoundError:
            continue  # a temporary file renamed while we looked
        if mode != want:
            loose.append(f"{path.relative_to(root)} {oct(mode)}")
    assert loose == []
    # 14: nothing listens on a network port (single process: no torch.distributed store).
    assert listening_sockets(launched.pid) == [] and listening_sockets(trainer) == []

    # 7: a second trainer on the same run folder is refused, naming the live writer.
    code = train_here(root, "pretrain", "--data_path", str(corpus["pretrain"]), *TINY, "--run_dir",
                      str(run.relative_to(root)), monkeypatch=monkeypatch)
    assert code == 2 and "already holds a run" in capsys.readouterr().err
    code = train_here(root, "pretrain", "--resume", str(run.relative_to(root)), monkeypatch=monkeypatch)
    assert code == 2 and f"another trainer (pid {trainer})" in capsys.readouterr().err

    # 12: the host kills the whole process group (OOM killer, preemption): no end event, no stop request.
    os.killpg(launched.pid, signal.SIGKILL)
    wait_until(lambda: not group_members(launched.pid), 30, "the group to die")
    step_before = steps(run)[-1]["step"]  # every step is logged before its save
    s = summarize(run)
    assert s.status == "killed" and "killed by a signal, host out of memory" in s.reason
    # Saves every 3 steps, written in the background: the write of the newest may still have been in flight
    # (training waits for it only at the next save), so the last complete one is at most two intervals back.
    assert s.can_resume and s.last_ckpt_step is not None and step_before - 9 < s.last_ckpt_step <= step_before
    assert summarize(run, exit_code=-9).reason.startswith("killed by SIGKILL")
    # ...and resume continues from the last good checkpoint, clearing the dead writer's lock.
    last_good = layout.complete_checkpoints(run)[-1]
    code = train_here(root, "pretrain", "--resume", str(run.relative_to(root)), monkeypatch=monkeypatch,
                      env={"MINIMIND_TUI_STOP_AT_STEP": str(s.last_ckpt_step + 2)})
    out = capsys.readouterr().out
    assert code == 0 and "clearing a stale lock" in out and f"{last_good.name} (step {s.last_ckpt_step})" in out
    assert of_kind(run, "start")[-1]["resumed_from"] == s.last_ckpt_step
    assert summarize(run).status == "stopped"
    measured["12 host kill"] = (f"SIGKILL at step {step_before}: summary 'killed' (not stopped/failed), resume offered "
                                f"from step {s.last_ckpt_step} and continued from it")
    measured["14 permissions"] = (f"{len(list(run.rglob('*')))} paths under the run and out/ checked under umask 022: "
                                  f"dirs 0700, files 0600; 0 listening sockets (trainer and launcher)")


@pytest.mark.slow
def test_graceful_stop_leaves_nothing_behind(tmp_path, corpus, reap_groups, measured):
    root = tmp_path / "proj"
    root.mkdir()
    launched = launch(root, corpus, reap_groups, "--save_interval", "1000000")
    run = launched.run_dir
    wait_for_step(run, 3, launched.pid)
    outcome = stop_run(run, timeout=60)
    assert outcome.result == "stopped", outcome.message
    end = of_kind(run, "end")[-1]
    assert end["status"] == "stopped" and "SIGINT" in end["reason"]
    assert layout.complete_checkpoints(run)[-1].name == f"step_{end['step']:08d}"
    assert group_members(launched.pid) == [] and not (run / layout.LOCK).exists()
    assert summarize(run).status == "stopped" and summarize(run).can_resume
    measured["8 graceful stop"] = f"SIGINT to saved-and-exited in {outcome.seconds:.2f} s, 0 processes left"


@pytest.mark.slow
def test_a_save_that_hangs_is_killed_after_the_timeout(tmp_path, corpus, reap_groups, measured):
    root = tmp_path / "proj"
    root.mkdir()
    launched = launch(root, corpus, reap_groups, "--save_interval", "2", env={"MINIMIND_TUI_HANG_IN_SAVE": "1"})
    run = launched.run_dir
    wait_for_step(run, 2, launched.pid)  # step 2's save now hangs
    timeout = 3.0
    outcome = stop_run(run, timeout=timeout)
    assert outcome.result == "killed", outcome.message
    assert outcome.seconds >= timeout
    assert group_members(launched.pid) == []
    assert read_stop_request(run)["result"] == "killed"
    s = summarize(run)
    assert s.status == "killed" and "a stop was requested" in s.reason
    assert layout.complete_checkpoints(run) == []  # nothing half-saved is listed
    measured["8 escalation"] = (f"save hung: SIGKILL after the {timeout:g} s timeout, whole group gone "
                                f"{outcome.seconds - timeout:.2f} s later; summary 'killed' after a stop request")


@pytest.mark.slow
async def test_stall_watchdog_flags_a_hung_step_and_the_dashboard_rings(tmp_path, corpus, reap_groups, measured):
    from minimind_tui.app.main import create_app
    from minimind_tui.gpu.fake import FakeGpuMonitor, FakeSystemMonitor

    root = tmp_path / "proj"
    root.mkdir()
    launched = launch(root, corpus, reap_groups, "--save_interval", "1000000",
                      env={"MINIMIND_TUI_HANG_AT_STEP": "6", "MINIMIND_TUI_STALL_MIN_S": "5",
                           "MINIMIND_TUI_STALL_FACTOR": "10"})
    run = launched.run_dir
    wait_for_step(run, 6, launched.pid)
    # A dashboard watching the run when it stalls: it flags it and rings the terminal bell.
    app = create_app(root, gpu_monitor=FakeGpuMonitor(), system_monitor=FakeSystemMonitor(),
                     launcher=ProcessLauncher(), poll_interval=0.2, gpu_interval=None, preload_tabs=False)
    bells = []
    app.bell = lambda: bells.append(time.time())
    async with app.run_test(size=(80, 24)) as pilot:
        def status():
            summary = monitor_summary(app)
            return summary.status if summary else None
        await wait_for(pilot, lambda: status() is not None, "the monitor")
        assert status() == "live", "the dashboard must see the run live before the stall (5 s window)"
        await wait_for(pilot, lambda: status() == "stalled" and bells, lambda: f"stalled and a bell ({status()})",
                       rounds=1000)
    stall = of_kind(run, "stall")[0]
    last_step = steps(run)[-1]
    assert stall["step"] == 6 == last_step["step"] and stall["seconds_since_step"] >= 5
    s = summarize(run)
    assert s.status == "stalled" and "no step for" in s.reason and s.heartbeat_age_s < layout.HEARTBEAT_STALE_S
    assert any(n.startswith("stalled at step 6") for n in s.notes)
    assert len(of_kind(run, "stall")) == 1  # one event per stalled step, not one per poll
    outcome = stop_run(run, timeout=2)  # the hung main thread cannot act on SIGINT: escalation ends it
    assert outcome.result == "killed" and group_members(launched.pid) == []
    waited = stall["time"] - last_step["time"]
    measured["13 stall watchdog"] = (f"main thread hung after step 6: `stall` event {waited:.1f} s after the last "
                                     f"step (threshold {stall['threshold_s']} s), dashboard went live -> stalled and "
                                     f"rang the bell {bells[0] - stall['time']:.2f} s after the event, heartbeat "
                                     f"fresh throughout")


def launch_two_ranks(root, corpus, reap_groups, env=None):
    old_env = {k: os.environ.get(k) for k in env or {}}
    os.environ.update(env or {})
    try:
        launched = ProcessLauncher().launch(root, "pretrain", [
            "pretrain", "--data_path", str(corpus["pretrain"]), *[a for a in LONG if a not in ("--device", "cpu")],
            "--save_interval", "1000000"], gpus=2)
    finally:
        for k, v in old_env.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    reap_groups.append(launched.pid)
    wait_for_step(launched.run_dir, 3, launched.pid)
    tree = [psutil.Process(launched.pid), *psutil.Process(launched.pid).children(recursive=True)]
    ranks = [p for p in tree if p.pid != launched.pid]  # the launched process is torchrun's agent
    # torchrun starts each rank in a session of its own: a signal to torchrun's group alone misses them.
    assert len(ranks) == 2 and all(os.getsid(p.pid) != os.getsid(launched.pid) for p in ranks)
    reap_groups.extend(p.pid for p in ranks)
    return launched, tree


@pytest.mark.slow
@pytest.mark.parametrize("save", ["normal", "hangs"])
def test_stopping_a_two_process_run_leaves_no_rank_behind(tmp_path, corpus, reap_groups, measured, save):
    root = tmp_path / "proj"
    root.mkdir()
    launched, tree = launch_two_ranks(root, corpus, reap_groups,
                                      env={"MINIMIND_TUI_HANG_IN_SAVE": "1"} if save == "hangs" else None)
    run = launched.run_dir
    outcome = stop_run(run, timeout=60 if save == "normal" else 3)
    if save == "normal":  # torchrun and the ranks all get the stop; rank 0 saves once every rank finished the step
        assert outcome.result == "stopped", outcome.message
        end = of_kind(run, "end")[-1]
        assert end["status"] == "stopped" and of_kind(run, "start")[-1]["world_size"] == 2
        assert layout.complete_checkpoints(run)[-1].name == f"step_{end['step']:08d}"
        # Only the ranks were signalled: torchrun saw them finish and exited by itself, without its own
        # 30 s kill deadline ever running against the final save.
        assert "death signal" not in (run / "launcher.log").read_text()
    else:  # rank 0 hangs in the save, rank 1 waits for it: both are killed, not left waiting 90 minutes
        assert outcome.result == "killed", outcome.message
    assert [p.pid for p in tree if _running(p)] == []
    measured[f"8 stop (torchrun, 2 ranks, save {save})"] = (
        f"{outcome.result} in {outcome.seconds:.2f} s: {len(tree)} processes (torchrun + 2 ranks in their own "
        f"sessions), 0 left")
