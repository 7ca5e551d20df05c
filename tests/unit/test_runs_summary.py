"""What the dashboard and `runs list` say about a run, from its files alone."""
from __future__ import annotations

import json
import os
import time

import pytest
from canned import T0, make_run
from testkit import dead_pid

from minimind_tui.runs import events, layout, pids
from minimind_tui.runs.summary import RunState, UnreadableRun, summarize


def test_done_run(tmp_path):
    s = summarize(make_run(tmp_path, "r1", steps=100, total=100, end="done"), now=T0)
    assert (s.status, s.step, s.total, s.mode, s.dataset) == ("done", 100, 100, "sft", "sft_mini_512.jsonl")
    assert s.loss == round(2.0 + 6.8 * 2.718281828 ** (-100 / 12), 4)
    assert s.duration_s == 1001.0  # start .. end event
    assert s.eta_s is None and not s.is_live and not s.can_resume


def test_stopped_run_offers_resume(tmp_path):
    s = summarize(make_run(tmp_path, "r1", steps=30, end="stopped", reason="stopped by SIGINT at step 30",
                           ckpt_at=(30,)), now=T0)
    assert (s.status, s.reason, s.last_ckpt_step, s.can_resume) == ("stopped", "stopped by SIGINT at step 30", 30,
                                                                     True)


def test_oom_reason_names_step_and_suggestion(tmp_path):
    run = make_run(tmp_path, "r1", steps=12, end="oom", reason="CUDA out of memory",
                   oom=dict(step=12, rank=0, batch_size=64, mem_gb=79.1, suggestion=32))
    s = summarize(run, now=T0)
    assert s.status == "oom" and s.reason == "out of GPU memory at step 12 — try batch size 32"


def test_live_run(tmp_path):
    s = summarize(make_run(tmp_path, "r1", steps=10, heartbeat_age=1.0, pid=os.getpid()), now=T0)
    assert s.status == "live" and s.is_live and s.eta_s == 900.0 and s.pid == os.getpid()


def test_stale_heartbeat_with_process_alive_is_stalled(tmp_path):
    s = summarize(make_run(tmp_path, "r1", steps=10, heartbeat_age=120.0, pid=os.getpid()), now=T0)
    assert s.status == "stalled" and "no heartbeat for 2m00s at step 10" in s.reason
    assert s.eta_s is None  # no end in sight: an ETA would promise one


def test_a_run_another_dashboard_resumed_is_live_whatever_this_one_knows_of_its_own_process(tmp_path):
    """This dashboard started the run (and knows how its process ended) or tried to resume it and was refused;
    meanwhile another dashboard (or the CLI) resumed it and that trainer holds the lock: the folder says live."""
    run = make_run(tmp_path, "r1", steps=10, heartbeat_age=1.0, pid=os.getpid())
    (run / "launcher.pid").write_text(f"{dead_pid()}\n")  # our own start, refused
    (run / "launcher.log").write_text("[2025-11-24 10:00:00] python -m minimind_tui train sft --resume runs/r1\n"
                                      "minimind-tui: runs/r1: another trainer (pid 4242) is writing to this run; "
                                      "stop it first, or start a new run\n")
    for code in (-9, 1, 0):  # killed, failed, stopped: none of it is the run's status now
        s = summarize(run, now=T0, exit_code=code)
        assert s.status == "live" and not s.can_resume and s.pid == os.getpid()
    refused = summarize(run, now=T0, exit_code=2)
    assert refused.reason == ("the trainer started from this dashboard exited with status 2: minimind-tui: runs/r1: "
                              "another trainer (pid 4242) is writing to this run; stop it first, or start a new run")


def test_a_stopped_run_whose_lock_a_new_trainer_took_is_starting_before_its_start_event(tmp_path):
    """A resume from another dashboard or the CLI: the new trainer holds the lock but has not written its start
    event yet (it is loading the model); the old end event no longer says what the run is."""
    run = make_run(tmp_path, "r1", steps=10, end="stopped", reason="stopped by SIGINT", heartbeat_age=600.0)
    assert summarize(run, now=T0).status == "stopped"
    (run / layout.LOCK).write_text(pids.record_line())  # this process started after the run's end event
    s = summarize(run, now=T0)
    assert s.status == "starting" and not s.can_resume
    (run / layout.HEARTBEAT).touch()
    assert summarize(run, now=time.time()).status == "live"


def test_generation_note_and_skipped_steps(tmp_path):
    run = make_run(tmp_path, "r1", steps=10, end="done")
    s = summarize(run, now=T0)
    assert (s.generation, s.note, s.nonfinite_steps) == ("v1", "", 0)  # runs made before generations: v1
    config = json.loads((run / layout.CONFIG).read_text())
    config["settings"]["generation"] = "gen3"
    (run / layout.CONFIG).write_text(json.dumps(config))
    layout.write_note(run, "lr sweep, 2e-3 ")
    with open(run / layout.METRICS, "ab") as f:
        f.write(events.encode("nonfinite", now=T0, step=10, count=3, nonfinite_steps=3))
    s = summarize(run, now=T0)
    assert (s.generation, s.note, s.nonfinite_steps) == ("gen3", "lr sweep, 2e-3", 3)


def test_stall_event_after_last_step_is_stalled(tmp_path):
    run = make_run(tmp_path, "r1", steps=10, heartbeat_age=1.0, pid=os.getpid())
    with open(run / layout.METRICS, "ab") as f:
        f.write(events.encode("stall", now=T0, step=10, seconds_since_step=300))
    s = summarize(run, now=T0)
    assert s.status == "stalled" and "no step for 5m00s" in s.reason and "stalled at step 10" in s.notes[-1]


def test_no_end_and_dead_process_is_killed_distinct_from_stop_and_crash(tmp_path):
    s = summarize(make_run(tmp_path, "r1", steps=25, heartbeat_age=600.0, pid=dead_pid(), ckpt_at=(20,)), now=T0)
    assert s.status == "killed" and "at step 25" in s.reason and "killed by a signal" in s.reason
    assert s.can_resume and s.last_ckpt_step == 20


def test_a_checkpoint_finished_but_not_logged_before_a_kill_is_the_one_offered(tmp_path):
    # SIGKILL between the checkpoint's COMPLETE marker and its event: resume starts from the disk, so must the summary.
    run = make_run(tmp_path, "r1", steps=25, heartbeat_age=600.0, pid=dead_pid(), ckpt_at=(20,))
    ck = layout.checkpoint_dir(run, 24)
    ck.mkdir()
    (ck / layout.COMPLETE).write_text("")
    s = summarize(run, now=T0)
    assert (s.status, s.last_ckpt_step, s.last_ckpt_path) == ("killed", 24, str(ck.relative_to(run)))
    live = summarize(make_run(tmp_path, "r2", steps=25, heartbeat_age=1.0, pid=os.getpid(), ckpt_at=(20,)), now=T0)
    assert live.last_ckpt_step == 20


def test_exit_status_known_to_the_launcher_is_reported(tmp_path):
    run = make_run(tmp_path, "r1", steps=5, heartbeat_age=600.0, pid=dead_pid())
    assert summarize(run, now=T0, exit_code=-9).reason == "killed by SIGKILL at step 5"
    failed = summarize(run, now=T0, exit_code=1)
    assert failed.status == "failed" and failed.reason.startswith("exited with status 1 at step 5: step 5: loss")


def test_trainer_that_died_before_starting_shows_its_last_words(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "launcher.pid").write_text(f"{dead_pid()}\n")
    (run / "launcher.log").write_text("[2025-11-24 10:00:00] python -m minimind_tui train sft\n"
                                      "minimind-tui: dataset/x.jsonl: no such file\n")
    s = summarize(run, now=T0)
    assert s.status == "failed" and s.reason == "trainer exited before starting: minimind-tui: dataset/x.jsonl: " \
                                                "no such file"


def test_just_launched_is_starting(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "launcher.pid").write_text(f"{os.getpid()}\n")
    assert summarize(run).status == "starting"


def test_resumed_run_clears_the_old_end(tmp_path):
    run = make_run(tmp_path, "r1", steps=10, end="stopped", heartbeat_age=1.0, pid=os.getpid())
    with open(run / layout.METRICS, "ab") as f:
        f.write(events.encode("start", now=T0, mode="sft", total=100, world_size=2))
        f.write(events.encode("step", now=T0, step=11, total=100, loss=1.0, lr=1e-5))
    s = summarize(run, now=T0)
    assert (s.status, s.step, s.world_size) == ("live", 11, 2)


def test_checkpoint_failures_and_log_events_become_notes(tmp_path):
    state = RunState(tmp_path)
    state.add([{"event": "checkpoint_failed", "time": 1, "step": 7, "reason": "No space left on device"},
               {"event": "log", "time": 2, "message": "tokenising 1,234 lines"},
               {"event": "unknown_future_event", "time": 3}])
    assert state.notes == ["checkpoint at step 7 FAILED: No space left on device", "tokenising 1,234 lines"]


def test_config_written_after_the_first_look_is_picked_up(tmp_path):
    run = tmp_path / "runs" / "r1"
    run.mkdir(parents=True)
    (run / "launcher.pid").write_text(f"{os.getpid()}\n")
    state = RunState(run)
    assert state.summary(T0).dataset is None
    (run / layout.CONFIG).write_text('{"mode": "sft", "settings": {"data_path": "dataset/demo_sft.jsonl", '
                                     '"epochs": 2}}')
    s = state.summary(T0)
    assert (s.dataset, s.epochs) == ("demo_sft.jsonl", 2)


def test_preparation_progress_before_the_first_step(tmp_path):
    state = RunState(tmp_path)
    state.add([{"event": "prepare", "time": 1, "stage": "tokenise", "done": 512, "total": 4000}])
    assert state.summary(T0).preparing == "tokenise 512/4,000"
    state.add([{"event": "step", "time": 2, "step": 1, "total": 10, "loss": 5.0, "lr": 1e-3}])
    assert state.summary(T0).preparing is None


def test_status_is_one_enum_that_reads_as_the_strings_in_the_files(tmp_path):
    s = summarize(make_run(tmp_path, "r1", steps=3, end="stopped"), now=T0)
    assert s.status is events.RunStatus.STOPPED and s.status == "stopped" and f"{s.status}" == "stopped"
    assert s.status.resumable and not s.status.is_live


def test_an_end_status_the_schema_does_not_know_reads_as_failed(tmp_path):
    s = summarize(make_run(tmp_path, "r1", steps=3, end="exploded", reason="boom"), now=T0)
    assert s.status == "failed" and s.reason == "unknown end status 'exploded': boom"


# ---- poisoned run folders (issue 15 #12): each is "unreadable" with a reason, never an exception or a hang ----
def test_config_that_is_not_an_object_makes_the_run_unreadable(tmp_path):
    for text, reason in (("[1,2]", "config.json holds a list, not an object"),
                         ('"x"', "config.json holds a string, not an object"),
                         ("{", "config.json: not valid JSON (Expecting property name"),
                         ('{"mode": 3}', "config.json has mode = 3, not text"),
                         ('{"settings": {"epochs": "two"}}', "config.json has epochs = 'two', not a number"),
                         ("[" * 100_000 + "]" * 100_000, "config.json: not valid JSON (maximum recursion")):
        run = make_run(tmp_path, "20251101-100000-sft", end="done")
        (run / layout.CONFIG).write_text(text)
        s = summarize(run, now=T0)
        assert (s.status, s.reason[:len(reason)], s.mode) == ("unreadable", reason, "sft"), text[:20]
        assert not s.is_live and not s.can_resume


def test_an_event_with_a_string_where_a_number_belongs_makes_the_run_unreadable(tmp_path):
    for line, reason in ((b'{"event": "step", "time": 5, "step": "abc"}', "a 'step' event has step = 'abc'"),
                         (b'{"event": "step", "time": 5, "step": 3, "loss": [1]}', "a 'step' event has loss = [1]"),
                         (b'{"event": "start", "time": "now"}', "a 'start' event has time = 'now'"),
                         (b'{"event": "start", "time": 5, "world_size": true}', "has world_size = true"),
                         (b'{"event": "start", "time": 5, "mode": {"a": 1}}', 'has mode = {"a": 1}, not text')):
        run = make_run(tmp_path, "r1", end="done")
        with open(run / layout.METRICS, "ab") as f:
            f.write(line + b"\n")
        s = summarize(run, now=T0)
        assert s.status == "unreadable" and reason in s.reason and s.reason.startswith("metrics.jsonl: "), line


def test_later_events_after_a_bad_one_are_still_read_and_the_run_stays_unreadable(tmp_path):
    state = RunState(tmp_path)
    state.add([{"event": "step", "time": 1, "step": "x"}, {"event": "step", "time": 2, "step": 2, "loss": 1.0}])
    assert state.last_step["step"] == 2 and state.unreadable.endswith("has step = 'x', not a number")
    with pytest.raises(UnreadableRun, match="has step = 'x'"):
        state.summary(T0)


def test_files_that_are_not_regular_files_are_never_opened(tmp_path):
    from testkit import finishes

    for name in (layout.METRICS, layout.CONFIG, layout.LOCK, layout.LOG, "launcher.pid", "stop_request.json",
                 layout.NOTES):
        run = make_run(tmp_path / name, "r1", end="done", pid=os.getpid())
        (run / name).unlink(missing_ok=True)
        os.mkfifo(run / name)
        s = finishes(lambda run=run: summarize(run, now=T0))
        assert (s.status, s.reason) == ("unreadable", f"{name} is a FIFO, not a regular file")


def test_a_folder_deleted_while_it_is_read_is_no_summary(tmp_path, monkeypatch):
    import shutil

    from minimind_tui.runs import summary

    run = make_run(tmp_path, "r1", end="done")
    real_add = RunState.add

    def add_then_vanish(self, events):
        real_add(self, events)
        shutil.rmtree(run)

    monkeypatch.setattr(summary.RunState, "add", add_then_vanish)
    assert summarize(run, now=T0) is None
    assert summarize(tmp_path / "never-existed", now=T0) is None


def test_folders_deleted_between_listing_and_sorting_are_left_out(tmp_path):
    kept = make_run(tmp_path, "r1", end="done")
    assert layout.newest_first([tmp_path / "runs" / "gone", kept]) == [kept]
