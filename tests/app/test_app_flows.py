"""Pilot tests, one per dashboard flow: launch, replay, live streaming, reattach, stop, resume, killed runs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from canned import T0, make_run
from testkit import Posted, cli_env, dead_pid, monitor_summary, wait_for
from textual.widgets import DataTable, Input, Log, TabbedContent
from textual.widgets._footer import FooterKey

from minimind_tui.app.screens.confirm import ConfirmScreen
from minimind_tui.app.screens.help import HelpScreen
from minimind_tui.app.widgets.run_monitor import RunMonitor
from minimind_tui.app.widgets.train_form import TrainForm
from minimind_tui.runs import events, layout


async def test_launch_builds_the_trainer_command_and_switches_to_the_new_run(make_app, project, fake_launcher):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        await wait_for(pilot, lambda: form.query_one("#dataset").value is not None
                       and form.query_one("#dataset")._options, "dataset scan")
        form.query_one("#mode").value = "sft"
        await pilot.pause()
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#batch_size", Input).value = "16"
        await wait_for(pilot, lambda: "3 lines" in str(form.query_one("#data_info").render()), "line count")
        await wait_for(pilot, lambda: "out/pretrain_512.pth: initial weights not found"
                       in str(form.query_one("#checks").render()), "the trainer's default SFT init is missing")
        await pilot.press("ctrl+l")  # the trainer would refuse it: so does the form
        await pilot.pause()
        assert not fake_launcher.launched
        assert any("initial weights not found" in n.message for n in app._notifications)
        (project / "out").mkdir()
        (project / "out" / "pretrain_512.pth").write_bytes(b"")
        form.scan()  # as coming back to the tab does
        await wait_for(pilot, lambda: not str(form.query_one("#checks").render()).startswith("✗"), "checks pass")
        command = str(form.query_one("#command").render())
        assert "\n" not in command
        assert command.startswith("$ minimind-tui train sft --data_path dataset/sft_mini_512.jsonl --batch_size 16")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: fake_launcher.launched, "launch")
        mode, args, gpus = fake_launcher.launched[0]
        assert mode == "sft" and gpus == 1
        flags = dict(zip(args[1::2], args[2::2], strict=False))
        # SFT defaults from the recipe, and what was typed.
        assert flags["--learning_rate"] == "5e-05" and flags["--accumulation_steps"] == "1"
        assert flags["--batch_size"] == "16" and flags["--data_path"] == "dataset/sft_mini_512.jsonl"
        # The command shown is the one launched.
        assert command.removeprefix("$ minimind-tui train ").split() == args
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "runs", "switch to Runs")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "monitor")
        assert monitor_summary(app).status == "starting"


async def test_launching_over_finished_weights_in_out_asks_first(make_app, project, fake_launcher):
    out = project / "out"
    out.mkdir()
    (out / "full_sft_512.pth").write_bytes(b"finished weights")
    (out / "pretrain_512.pth").write_bytes(b"")  # the base this SFT starts from
    (out / "full_sft_512.meta.json").write_text(json.dumps({"run_id": "20251101-090000-sft", "step": 250,
                                                            "loss": 0.113, "weights_size": 16}))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        await wait_for(pilot, lambda: form.scans_done, "scan")
        form.query_one("#mode").value = "sft"
        await pilot.pause()
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
        question = str(app.screen.query_one("#confirm-question").render())
        assert "out/full_sft_512.pth already holds weights (from run 20251101-090000-sft, step 250, loss 0.113;" \
            in question.replace("\n", " ")
        await pilot.press("n")
        await pilot.pause(0.2)
        assert fake_launcher.launched == [] and (out / "full_sft_512.pth").read_bytes() == b"finished weights"
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
        await pilot.press("y")
        await wait_for(pilot, lambda: fake_launcher.launched, "launch")
        assert fake_launcher.launched[0][0] == "sft"


@pytest.mark.parametrize("pretrained, mode, data, lr", [
    (False, "pretrain", "dataset/demo_pretrain.jsonl", "2e-3"),
    (True, "sft", "dataset/demo_sft.jsonl", "1e-3"),
])
async def test_demo_preselects_the_bundled_corpus_and_recipe(make_app, project, pretrained, mode, data, lr):
    pytest.importorskip("minimind_tui.demo")
    if pretrained:
        (project / "out").mkdir()
        (project / "out" / "pretrain_128.pth").write_bytes(b"")
    app = make_app(demo=True)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        await wait_for(pilot, lambda: form.query_one("#data_path", Input).value == data, "demo data", rounds=1000)
        await pilot.pause()
        assert (project / data).is_file()
        spec = form.spec()
        assert (spec.mode, spec.dim, spec.n_layers, spec.max_seq_len) == (mode, 128, 4, 128)
        assert form.query_one("#learning_rate", Input).value == lr
        assert "not found" not in str(form.query_one("#command").render())


async def test_picking_the_demo_corpus_without_the_demo_flag_applies_its_recipe(make_app, project):
    from minimind_tui.demo import ensure_demo_data

    ensure_demo_data(project)  # written by an earlier --demo session
    app = make_app()  # reopened without --demo
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        dataset = form.query_one("#dataset")
        await wait_for(pilot, lambda: any(v == "dataset/demo_sft.jsonl" for _, v in dataset._options), "scan")
        assert form.query_one("#dim", Input).value == "512"  # the 26M default until the demo corpus is picked
        dataset.value = "dataset/demo_sft.jsonl"
        await wait_for(pilot, lambda: form.query_one("#learning_rate", Input).value == "1e-3", "the demo SFT recipe")
        await pilot.pause()
        spec = form.spec()
        assert (spec.mode, spec.dim, spec.max_seq_len, spec.epochs) == ("sft", 128, 128, 2)
        assert spec.data_path == "dataset/demo_sft.jsonl"


async def test_launch_refuses_a_bad_field_with_its_name(make_app, fake_launcher):
    app, seen = make_app(), Posted()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        form = app.query_one(TrainForm)
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#batch_size", Input).value = "0"
        await pilot.pause()
        assert "--batch_size must be at least 1 (got 0)" in str(form.query_one("#checks").render())
        assert form.query_one("#batch_size").has_class("-invalid")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: seen.notices("Cannot launch"), "the refusal")
        assert seen.notices("Cannot launch") == ["--batch_size must be at least 1 (got 0)"]
        assert not fake_launcher.launched
        assert not seen.of(TrainForm.LaunchRequested)


async def test_mode_switch_applies_recipe_defaults(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        assert form.query_one("#learning_rate", Input).value == "5e-4"
        assert form.query_one("#accumulation_steps", Input).value == "8"
        form.query_one("#mode").value = "sft"
        await pilot.pause()
        assert form.query_one("#learning_rate", Input).value == "5e-5"
        assert form.query_one("#accumulation_steps", Input).value == "1"


async def test_multi_gpu_launch_goes_through_loopback_torchrun(make_app, project, fake_launcher):
    (project / "dataset" / "pretrain.jsonl").write_text('{"text": "hello"}\n' * 3)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        form.query_one("#data_path", Input).value = "dataset/pretrain.jsonl"
        form.query_one("#gpus", Input).value = "4"
        await pilot.pause()
        command = str(form.query_one("#command").render())
        assert command.startswith(
            "$ python -m minimind_tui.runs.torchrun_loopback --nproc_per_node 4 -m minimind_tui train pretrain")
        assert "master port unreachable from outside the cluster" in str(form.query_one("#checks").render())
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: fake_launcher.launched, "launch")
        assert fake_launcher.launched[0][2] == 4


async def test_memory_estimate_warns_when_it_will_not_fit(make_app):
    from minimind_tui.gpu.fake import FakeGpuMonitor, one_gpu

    app = make_app(gpu=FakeGpuMonitor(one_gpu(used_gb=14.0, total_gb=20.0)))
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        await wait_for(pilot, lambda: form.free_gb is not None, "GPU reading")
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#batch_size", Input).value = "2"
        await pilot.pause()
        assert "6.0 GB free" in str(form.query_one("#estimate").render())
        assert "⚠" not in str(form.query_one("#estimate").render())
        form.query_one("#batch_size", Input).value = "64"
        await pilot.pause()
        assert "⚠" not in str(form.query_one("#estimate").render())  # 64 x 512 runs as passes of 8192 tokens
        form.query_one("#extra", Input).value = "--chunk_tokens -1"  # one padded pass of 32768 tokens
        await pilot.pause()
        assert "⚠" in str(form.query_one("#estimate").render())
        assert "--chunk_tokens" in str(form.query_one("#estimate").render())


async def test_memory_estimate_compares_with_the_gpus_the_form_selects(make_app, monkeypatch):
    """NVML lists the GPUs in its order; cuda:N counts them in PCI order (the launcher sets it)."""
    from minimind_tui.gpu.fake import FakeGpuMonitor
    from minimind_tui.gpu.monitor import GpuInfo, GpuReading

    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    full = GpuInfo(0, "NVIDIA L4", 22.0, 24.0, uuid="GPU-aaaa", pci_bus_id="00000000:81:00.0")  # cuda:1
    empty = GpuInfo(1, "NVIDIA L4", 0.0, 24.0, uuid="GPU-bbbb", pci_bus_id="00000000:01:00.0")  # cuda:0
    app = make_app(gpu=FakeGpuMonitor(GpuReading(gpus=(full, empty), driver="550.54.15")))
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        await wait_for(pilot, lambda: form.gpu_reading is not None, "GPU reading")
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#device", Input).value = "cuda:0"
        await pilot.pause()
        assert form.free_gb == 24.0 and "⚠" not in str(form.query_one("#estimate").render())
        form.query_one("#device", Input).value = "cuda:1"
        await pilot.pause()
        assert form.free_gb == 2.0 and "⚠" in str(form.query_one("#estimate").render())
        form.query_one("#device", Input).value = "cuda:0"
        form.query_one("#gpus", Input).value = "2"  # both: the emptiest decides
        await pilot.pause()
        assert form.free_gb == 2.0 and "⚠" in str(form.query_one("#estimate").render())


async def test_replay_of_a_finished_run(make_app, project):
    make_run(project, "20251101-100000-pretrain", mode="pretrain", steps=100, total=100, end="done")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "runs listed")
        assert app.query_one(TabbedContent).active == "train"  # nothing live: no reattach jump
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "replay")
        s, curves = monitor_summary(app), app.query_one(RunMonitor).view.curves
        assert s.status == "done" and s.step == 100 and list(curves.steps) == list(range(1, 101))
        assert curves.values("loss")[0] > curves.values("loss")[-1]
        assert "step 100: loss" in "\n".join(app.query_one(Log).lines)


async def test_reattach_selects_the_live_run_and_streams_new_events(make_app, project):
    make_run(project, "20251101-090000-sft", steps=10, end="stopped", reason="stopped by user")
    run = make_run(project, "20251101-100000-sft", steps=30, heartbeat_age=1.0, pid=os.getpid())
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "reattach")
        assert app.query_one(TabbedContent).active == "runs"
        s = monitor_summary(app)
        assert (s.run_id, s.status, s.step) == ("20251101-100000-sft", "live", 30)
        # The trainer writes more; the next poll shows it (and only complete lines).
        with open(run / layout.METRICS, "ab") as f:
            f.write(events.encode("step", now=T0, step=31, total=100, epoch=0, loss=1.5, lr=1e-5))
            f.write(b'{"event": "step", "step": 32')  # half a line: held back
        with open(run / layout.LOG, "a", encoding="utf-8") as f:
            f.write("step 31: 新的一行\n")
        app.refresh_runs()
        await wait_for(pilot, lambda: monitor_summary(app).step == 31, "new step")
        assert monitor_summary(app).loss == 1.5
        assert "step 31: 新的一行" in app.query_one(Log).lines


async def test_a_run_without_end_and_without_process_is_reported_killed(make_app, project):
    make_run(project, "20251101-100000-sft", steps=25, heartbeat_age=600.0, pid=dead_pid(), ckpt_at=(20,))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "monitor")
        s = monitor_summary(app)
        assert s.status == "killed" and "at step 25" in s.reason and s.can_resume
        notes = str(app.query_one("#monitor-notes").render())
        # A reopened dashboard cannot know the signal, but says plainly that it was killed, and from where to go on.
        assert "killed at step 25: no end event and the process is gone, heartbeat stopped 10m00s ago" in notes
        assert "killed by a signal" in notes and "last checkpoint: step 20  → press r to resume from it" in notes
        assert app.query_one("#resume").display and not app.query_one("#stop").display  # only what applies


async def test_resume_launches_train_resume_for_the_run(make_app, project, fake_launcher):
    run = make_run(project, "20251101-100000-sft", steps=25, end="stopped", reason="stopped by SIGINT",
                   ckpt_at=(25,))
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "monitor")
        await pilot.press("r")
        await wait_for(pilot, lambda: fake_launcher.resumed, "resume")
        assert fake_launcher.resumed[0] == (run, "sft", 1)


async def test_resume_is_not_launched_for_a_run_resumed_elsewhere_since_the_last_look(make_app, project,
                                                                                       fake_launcher):
    from minimind_tui.runs import pids

    run = make_run(project, "20251101-100000-sft", steps=25, end="stopped", ckpt_at=(25,), heartbeat_age=600.0)
    app, seen = make_app(), Posted()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None and monitor_summary(app).can_resume, "monitor")
        (run / layout.LOCK).write_text(pids.record_line())  # another dashboard's trainer, not yet polled here
        (run / layout.HEARTBEAT).touch()
        await pilot.press("r")
        await wait_for(pilot, lambda: seen.notices("Not resumed"), "the refusal")
        assert seen.notices("Not resumed")[0].startswith("20251101-100000-sft is running: another dashboard")
        assert not fake_launcher.resumed
        await wait_for(pilot, lambda: monitor_summary(app).is_live, "the folder's status")


async def test_resume_is_refused_without_a_checkpoint(make_app, project, fake_launcher):
    make_run(project, "20251101-100000-sft", steps=5, end="failed", reason="boom", ckpt_at=())
    app, seen = make_app(), Posted()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "monitor")
        await pilot.press("r")
        await wait_for(pilot, lambda: seen.notices(), "the refusal")
        assert seen.notices() == ["20251101-100000-sft has nothing to resume from (it is running or has no checkpoint)"]
        assert not fake_launcher.resumed


STUB_TRAINER = textwrap.dedent("""
    import os, signal, sys, time
    from minimind_tui.runs.events import EventWriter
    run = sys.argv[1]
    open(os.path.join(run, "trainer.lock"), "w").write(str(os.getpid()))
    w = EventWriter(os.path.join(run, "metrics.jsonl"))
    stop = []
    signal.signal(signal.SIGINT, lambda *a: stop.append(1))
    open(os.path.join(run, "ready"), "w").close()
    step = 0
    while not stop and step < 6000:   # at most ~60 s if the test never signals
        step += 1
        time.sleep(0.01)
    w.emit("end", status="stopped", reason="stopped by SIGINT at step %d" % step, step=step)
""")


async def test_stop_asks_then_sends_sigint_and_the_run_ends_stopped(make_app, project, tmp_path):
    run = make_run(project, "20251101-100000-sft", steps=5, heartbeat_age=1.0, pid=os.getpid())
    script = tmp_path / "stub.py"
    script.write_text(STUB_TRAINER)
    proc = subprocess.Popen([sys.executable, str(script), str(run)], start_new_session=True,
                            stdin=subprocess.DEVNULL, env=cli_env())
    try:
        app, seen = make_app(), Posted()
        async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
            await wait_for(pilot, lambda: (run / "ready").exists(), "stub trainer", rounds=1000)
            await wait_for(pilot, lambda: monitor_summary(app) is not None, "reattach")
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
            await pilot.press("n")  # cancel: nothing sent
            await pilot.pause()
            assert proc.poll() is None
            await pilot.press("s")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: proc.poll() is not None, "trainer exit", rounds=1000)
            assert proc.returncode == 0  # handled SIGINT: a graceful stop, not a kill
            app.refresh_runs()
            await wait_for(pilot, lambda: monitor_summary(app).status == "stopped", "stopped status")
            await wait_for(pilot, lambda: any("stopped after" in n for n in seen.notices("Stop")), "notice")
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def test_help_screen_opens_and_closes(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("?")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


async def test_the_help_fits_80_columns_and_says_first_how_to_close_it(make_app):
    from minimind_tui.app.screens.help import HELP

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("?")
        await wait_for(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.pause()
        assert app.screen.query_one("#help-text").size.height == len(HELP.splitlines())  # no line wrapped
        screen = [strip.text for strip in app.screen._compositor.render_strips()]
        assert any("escape, q or ? closes this help" in line for line in screen[:4])  # on screen without scrolling


async def test_tab_keys_do_not_steal_typing_in_inputs(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        form.query_one("#batch_size", Input).focus()
        form.query_one("#batch_size", Input).value = ""
        await pilot.press("2", "4")
        assert form.query_one("#batch_size", Input).value == "24"
        assert app.query_one(TabbedContent).active == "train"


async def test_two_dashboards_watch_one_run(make_app, project):
    make_run(project, "20251101-100000-sft", steps=30, heartbeat_age=1.0, pid=os.getpid())
    first, second = make_app(), make_app()
    async with first.run_test(size=(80, 24)) as p1, second.run_test(size=(120, 40)) as p2:
        await wait_for(p1, lambda: monitor_summary(first) is not None, "first dashboard")
        await wait_for(p2, lambda: monitor_summary(second) is not None, "second dashboard")
        assert monitor_summary(first) == monitor_summary(second)
        assert monitor_summary(first).status == "live"


async def test_a_run_resumed_from_another_dashboard_is_live_here_despite_our_refused_resume(make_app, project,
                                                                                           fake_launcher):
    """This dashboard's own resume was refused (its trainer exited with status 2: another trainer writes); the
    trainer the other dashboard resumed holds the lock. The run folder decides: live, Stop offered, no Resume,
    and the refusal said as such."""
    run = make_run(project, "20251101-100000-sft", steps=30, heartbeat_age=1.0, pid=os.getpid())
    (run / "launcher.pid").write_text(f"{dead_pid()}\n")
    (run / "launcher.log").write_text("minimind-tui: runs/20251101-100000-sft: another trainer (pid 4242) is "
                                      "writing to this run; stop it first, or start a new run\n")
    fake_launcher.codes[run] = 2
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "reattach")
        assert monitor_summary(app).status == "live"
        assert app.query_one("#stop").display and not app.query_one("#resume").display
        notes = str(app.query_one("#monitor-notes").render())
        assert "exited with status 2: minimind-tui: runs/20251101-100000-sft: another trainer (pid 4242)" in notes
        rows = app.query_one(DataTable).get_row_at(0)
        assert "live" in str(rows[1])


async def test_a_run_started_elsewhere_is_selected_unless_a_live_one_is_watched(make_app, project):
    make_run(project, "20251101-090000-sft", steps=10, end="done")
    app, seen = make_app(), Posted()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "the finished run")
        make_run(project, "20251101-100000-sft", steps=3, heartbeat_age=1.0, pid=os.getpid())  # another dashboard's
        app.refresh_runs()
        await wait_for(pilot, lambda: monitor_summary(app).run_id == "20251101-100000-sft", "the new run shown")
        table = app.query_one(DataTable)
        assert table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value == "20251101-100000-sft"
        assert "20251101-100000-sft started: showing it" in seen.notices("New run")
        make_run(project, "20251101-110000-sft", steps=3, heartbeat_age=1.0, pid=os.getpid())
        app.refresh_runs()
        await wait_for(pilot, lambda: "20251101-110000-sft started" in seen.notices("New run"), "said so")
        assert monitor_summary(app).run_id == "20251101-100000-sft"  # the live run watched stays


async def test_the_runs_tab_shows_generation_note_and_skipped_steps(make_app, project):
    run = make_run(project, "20251101-100000-sft", steps=30, end="done", reason="finished")
    config = json.loads((run / layout.CONFIG).read_text())
    config["settings"]["generation"] = "gen3"
    (run / layout.CONFIG).write_text(json.dumps(config))
    layout.write_note(run, "thinking data, lr 1e-5")
    with open(run / layout.METRICS, "ab") as f:
        f.write(events.encode("nonfinite", now=T0, step=30, count=2, nonfinite_steps=2))
    make_run(project, "20251101-090000-sft", steps=10, end="done")  # from before generations: v1
    make_run(project, "20251101-080000-sft", steps=10, end="done")
    app = make_app()
    async with app.run_test(size=(160, 50)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "monitor")
        table = app.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3, "the runs")
        cells = {r: [str(c) for c in table.get_row(r)] for r in ("20251101-100000-sft", "20251101-090000-sft")}
        assert "minimind-3" in cells["20251101-100000-sft"] and "thinking data, lr 1e-5" in cells["20251101-100000-sft"]
        assert "MiniMind v1" in cells["20251101-090000-sft"]
        table.move_cursor(row=table.get_row_index("20251101-100000-sft"))
        await wait_for(pilot, lambda: monitor_summary(app).run_id == "20251101-100000-sft", "the gen3 run")
        assert "minimind-3" in str(app.query_one("#monitor-status").render())
        notes = str(app.query_one("#monitor-notes").render())
        assert "2 optimizer steps skipped (inf/NaN gradient)" in notes and "note: thinking data, lr 1e-5" in notes
    async with make_app().run_test(size=(80, 24)) as pilot:  # 80 columns: the table keeps what fits
        await pilot.press("2")
        await wait_for(pilot, lambda: pilot.app.query_one(DataTable).row_count == 3, "the runs")
        assert [str(c.label) for c in pilot.app.query_one(DataTable).columns.values()] == [
            "run", "status", "mode", "loss", "steps", "time"]
        await wait_for(pilot, lambda: monitor_summary(pilot.app) is not None, "the monitor")
        pilot.app.query_one(DataTable).move_cursor(row=0)
        await wait_for(pilot, lambda: monitor_summary(pilot.app).note, "the run with a note")
        await pilot.pause()
        # Three lines of notes (checkpoint, reason, note) and the log still in view above the footer.
        assert pilot.app.query_one("#monitor-notes").size.height == 3
        log = pilot.app.query_one("#monitor-log")
        assert log.region.height >= 3 and log.region.bottom <= 23


async def test_a_watched_run_that_stalls_or_fails_a_checkpoint_is_announced(make_app, project):
    run = make_run(project, "20251101-100000-sft", steps=30, heartbeat_age=1.0, pid=os.getpid())
    app, seen = make_app(), Posted()
    bells = []
    app.bell = lambda: bells.append(1)
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "reattach")
        assert not bells  # a healthy run: quiet
        with open(run / layout.METRICS, "ab") as f:
            f.write(events.encode("checkpoint_failed", now=T0, step=30, reason="No space left on device"))
            f.write(events.encode("stall", now=T0 + 1, step=30, seconds_since_step=600))
        app.refresh_runs()
        await wait_for(pilot, lambda: monitor_summary(app).status == "stalled", "stall")
        await wait_for(pilot, lambda: len(seen.notices()) >= 3, lambda: f"the notices ({seen.notices()})")
        messages = seen.notices()
        assert "20251101-100000-sft: checkpoint at step 30 FAILED: No space left on device" in messages
        assert seen.notices("Run needs attention") == ["20251101-100000-sft: stalled"]
        assert len(bells) >= 2


async def test_demo_switching_to_sft_takes_the_demo_sft_corpus_and_recipe(make_app, project):
    pytest.importorskip("minimind_tui.demo")
    app = make_app(demo=True)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        await wait_for(pilot, lambda: form.query_one("#data_path", Input).value == "dataset/demo_pretrain.jsonl",
                       "demo pretrain", rounds=1000)
        await pilot.pause()
        form.query_one("#mode").value = "sft"
        await wait_for(pilot, lambda: form.query_one("#data_path", Input).value == "dataset/demo_sft.jsonl", "sft")
        await pilot.pause()
        assert form.query_one("#learning_rate", Input).value == "1e-3"
        assert form.query_one("#epochs", Input).value == "2"


async def test_alt_digits_switch_tabs_from_inside_a_text_field_and_escape_leaves_it(make_app):
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        form.query_one("#batch_size", Input).focus()
        await pilot.pause()
        assert app.focused is form.query_one("#batch_size", Input)
        await pilot.press("alt+2")
        await pilot.pause()
        assert app.query_one(TabbedContent).active == "runs"
        await pilot.press("alt+1")
        form.query_one("#batch_size", Input).focus()
        await pilot.pause()
        # While typing, the footer says how to get the digit keys back; elsewhere it does not.
        assert "leave_field" in footer_actions(app)
        await pilot.press("escape")
        assert app.focused is None
        await pilot.pause()
        assert "leave_field" not in footer_actions(app)
        await pilot.press("2")
        assert app.query_one(TabbedContent).active == "runs"


async def test_escape_brings_focus_back_to_the_tabs_main_view_where_its_keys_work(make_app, project):
    (project / "dataset" / "more.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n{"text": "three"}\n')
    make_run(project, "20251101-100000-sft", steps=30, end="done")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "the monitor")
        app.query_one("#monitor-log").focus()  # the log, then escape: the table's keys (m, c, arrows) again
        await pilot.pause()
        assert "leave_field" not in footer_actions(app)  # announced only while typing
        await pilot.press("escape")
        assert app.focused is app.query_one("#runs-table")

        await pilot.press("3")
        tab = app.query_one("#dataset-tab")
        await wait_for(pilot, lambda: app.focused is tab.query_one("#ds-path"), "the path field (no file yet)")
        await pilot.press(*"dataset/more.jsonl", "enter")
        await wait_for(pilot, lambda: tab.browser.sample is not None, "the file")
        tab.query_one("#ds-maxlen").focus()
        await pilot.press("escape", "n")  # escape, then the tab's own key: the next sample
        await wait_for(pilot, lambda: tab.browser.index == 1, "the next sample")

        await pilot.press("o", *"/nope.jsonl", "enter")  # a failed open ...
        await wait_for(pilot, lambda: "no such file" in str(tab.query_one("#ds-status").render()), "the failure")
        await pilot.press("o")  # ... and o selects the path again rather than typing an o into it
        field = tab.query_one("#ds-path", Input)
        assert app.focused is field and field.value.endswith("nope.jsonl") and field.selected_text == field.value


async def test_the_command_palette_lists_the_dashboards_commands_and_runs_them(make_app):
    from textual.command import CommandPalette
    from textual.widgets import OptionList

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette), "the palette")
        options = app.screen.query_one(OptionList)
        await wait_for(pilot, lambda: options.option_count >= 6, "its commands")
        shown = [str(options.get_option_at_index(i).prompt) for i in range(options.option_count)]
        for title in ("Launch training", "Stop the selected run", "Resume the selected run", "Compare the marked runs",
                      "Open a dataset file", "New chat"):
            assert any(line.startswith(title) for line in shown), title
        await pilot.press(*"open a dataset")
        await wait_for(pilot, lambda: options.option_count and str(options.get_option_at_index(0).prompt)
                       .startswith("Open a dataset file"), "the match")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "dataset" and app.focused is not None
                       and app.focused.id == "ds-path", "the Dataset tab's path field")


def footer_actions(app) -> set[str]:
    return {key.action for key in app.query(FooterKey)}


async def test_launching_from_inside_a_field_still_shows_the_runs_tab(make_app, project, fake_launcher):
    (project / "dataset" / "pretrain.jsonl").write_text('{"text": "hello"}\n' * 3)
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        form.query_one("#data_path", Input).value = "dataset/pretrain.jsonl"
        form.query_one("#batch_size", Input).focus()
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: fake_launcher.launched, "launch")
        await wait_for(pilot, lambda: app.query_one(TabbedContent).active == "runs", "Runs tab")
        await pilot.pause(0.1)
        assert app.query_one(TabbedContent).active == "runs"


async def test_coming_back_to_the_train_tab_keeps_the_chosen_dataset_and_base(make_app, project):
    """The Train tab rescans files each time it is shown; the rescan must not blank the user's choices."""
    make_run(project, "20251101-090000-pretrain", mode="pretrain", steps=20, end="done", ckpt_at=(20,))
    app = make_app(demo=True)
    async with app.run_test(size=(80, 24)) as pilot:
        form = app.query_one(TrainForm)
        dataset, init, mode = form.query_one("#dataset"), form.query_one("#init"), form.query_one("#mode")

        def state() -> str:
            return (f"mode {mode.value}, dataset {dataset.value}, data_path {form._value('data_path')}, "
                    f"init {init.value}, scans {form.scans_done}")
        await wait_for(pilot, lambda: dataset.value == "dataset/demo_pretrain.jsonl",
                       lambda: f"demo corpus chosen ({state()})", rounds=1000)
        mode.value = "sft"
        await wait_for(pilot, lambda: dataset.value == "dataset/demo_sft.jsonl",
                       lambda: f"demo SFT corpus ({state()})")
        base = next(v for _, v in init._options if "20251101-090000-pretrain" in str(v))
        init.value = base
        scans = form.scans_done
        await pilot.press("2")
        await pilot.press("1")
        await wait_for(pilot, lambda: form.scans_done > scans, lambda: f"rescan ({state()})")
        await pilot.pause()
        assert dataset.value == "dataset/demo_sft.jsonl" and init.value == base, state()
        labels = [label for label, _ in dataset._options]
        assert "demo pretrain corpus (bundled)" not in labels  # written once, then listed as files


async def test_a_rescan_landing_between_a_pick_and_its_change_event_keeps_the_pick(make_app):
    """The race behind a flaky demo-recipe test: the Train tab rescans each time it is shown (and twice at start);
    a scan result handled after the picker changed but before its Changed message reached the form reset the
    picker to the (still empty) path, and the pick was dropped as superseded."""
    scans = {}  # a message is seen at each node it bubbles through: keyed by identity

    def hook(message):
        if isinstance(message, TrainForm._Scanned):
            scans[id(message)] = message

    app = make_app()
    async with app.run_test(size=(80, 24), message_hook=hook) as pilot:
        form = app.query_one(TrainForm)
        dataset = form.query_one("#dataset")
        await wait_for(pilot, lambda: scans and form.scans_done == len(scans), "the start-up scan")
        dataset.value = "dataset/sft_mini_512.jsonl"
        # The Changed message travels up from the picker; a rescan posted to the form now is handled first.
        form.post_message(TrainForm._Scanned(list(scans.values())[-1].choices))
        await wait_for(pilot, lambda: form.scans_done == len(scans), "the rescan handled")
        await wait_for(pilot, lambda: form.query_one("#data_path", Input).value == "dataset/sft_mini_512.jsonl",
                       lambda: f"the pick applied (picker: {dataset.value})")
        assert dataset.value == "dataset/sft_mini_512.jsonl"


async def test_messages_still_queued_when_the_app_quits_touch_nothing(make_app, project):
    """The race behind a flaky two-dashboards test: a poller's last round, a GPU reading or the switch to Runs a
    reattach asked for can be handled after the quit began (under Pilot, while the screens are taken down); each
    handler must then do nothing rather than raise ScreenStackError or NoMatches."""
    from textual.widgets import TabbedContent as Tabs

    from minimind_tui.app.app import GpuUpdated, RunsUpdated

    make_run(project, "20251101-100000-sft", steps=30, heartbeat_age=1.0, pid=os.getpid())
    seen = []
    app = make_app()
    async with app.run_test(size=(80, 24), message_hook=seen.append) as pilot:
        await wait_for(pilot, lambda: monitor_summary(app) is not None, "reattach")
        await wait_for(pilot, lambda: any(isinstance(m, Tabs.TabActivated) for m in seen), "the switch to Runs")
    late = [next(m for m in reversed(seen) if isinstance(m, kind)) for kind in (RunsUpdated, GpuUpdated,
                                                                                 Tabs.TabActivated)]
    assert not app.is_running
    for message in late:
        await app._on_message(message)  # as the app's loop would dispatch it
    assert app.check_action("stop", ()) is True
