"""The Train form never launches what it knows will fail: the trainer's precheck, inline; "more" flags merged
into the form; defaults that never overwrite what was typed; the command on one line, copyable; the overwrite
question naming the real path and a live writer; no silent demo tokenizer; honest Base and dtype."""
from __future__ import annotations

import json
import os
import time

from canned import make_run
from testkit import wait_for
from textual.widgets import Input

from minimind_tui.app.screens.confirm import ConfirmScreen
from minimind_tui.app.widgets.train_form import TrainForm


def checks(form) -> str:
    return str(form.query_one("#checks").render())


def command(form) -> str:
    return str(form.query_one("#command").render())


async def ready(pilot) -> TrainForm:
    form = pilot.app.query_one(TrainForm)
    await wait_for(pilot, lambda: form._out_weights is not None, "scan")
    return form


async def checked(pilot, form, condition, what):
    """Wait for the file checks (a worker) to say something."""
    await wait_for(pilot, lambda: condition(checks(form)), lambda: f"{what}; the form says {checks(form)!r}")


async def test_what_the_trainer_refuses_is_shown_inline_and_not_launched(make_app, fake_launcher):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#preset").value = "custom"
        await pilot.pause()
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"  # pretraining on SFT data
        form.query_one("#dim", Input).value = "100"
        form.query_one("#learning_rate", Input).value = "-1e-3"
        await checked(pilot, form, lambda t: "holds sft data" in t, "data of the other kind")
        text = checks(form)
        assert "--dim 100 is not divisible by --n_heads 8" in text and "--learning_rate must be above 0" in text
        assert all(form.query_one(f"#{f}").has_class("-invalid") for f in ("dim", "learning_rate", "data_path"))
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert not fake_launcher.launched
        form.query_one("#data_path", Input).value = "dataset/missing.jsonl"
        await checked(pilot, form, lambda t: "missing.jsonl: no such file (--data_path)" in t, "a missing file")


async def test_more_flags_update_their_fields_and_a_bad_flag_is_named(make_app, fake_launcher):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        extra = form.query_one("#extra", Input)
        extra.focus()
        extra.value = "--batch_size 64 --warmup_iters 10 --out_dir elsewhere"
        await pilot.pause()
        shown = command(form)
        assert shown.count("--batch_size") == 1 and "--batch_size 64" in shown  # the flag wins, once
        assert "--out_dir elsewhere" in shown and shown.count("--out_dir") == 1
        await pilot.press("tab")  # leaving the field merges it
        await pilot.pause()
        assert form.query_one("#batch_size", Input).value == "64"
        assert extra.value == "--warmup_iters 10 --out_dir elsewhere"
        assert "from more: batch 64" in str(form.query_one("#form-note").render())
        extra.value = "--bogus_flag 1"
        await pilot.pause()
        assert "more flags: unrecognized arguments: --bogus_flag 1" in checks(form)


async def test_defaults_never_overwrite_what_was_typed_and_the_form_says_what_it_changed(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#learning_rate", Input).value = "1e-4"  # typed by the user
        await pilot.pause()
        form.query_one("#mode").value = "sft"
        await pilot.pause()
        assert form.query_one("#learning_rate", Input).value == "1e-4"
        assert form.query_one("#accumulation_steps", Input).value == "1"  # untouched: SFT's default
        note = str(form.query_one("#form-note").render())
        assert "SFT defaults set accum 8 → 1" in note and "kept what you typed: lr 1e-4" in note


async def test_the_command_is_one_line_and_ctrl_y_copies_it(make_app, project):
    (project / "out").mkdir()
    (project / "out" / "pretrain_512.pth").write_bytes(b"")
    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        form = await ready(pilot)
        form.query_one("#mode").value = "sft"
        await pilot.pause()
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#extra", Input).value = "--save_interval 200 --warmup_iters 100 --keep_last 5"
        await pilot.pause()
        line = command(form)
        assert "\n" not in line and len(line) > 80  # longer than the tab, and still one line
        assert form.query_one("#command").size.height == 1
        await pilot.press("ctrl+y")
        await pilot.pause()
        assert app.clipboard == line.removeprefix("$ ") == form.command_line()


async def test_the_overwrite_question_names_the_real_output_path(make_app, project, fake_launcher):
    out = project / "elsewhere"
    out.mkdir()
    (out / "pretrain_512.pth").write_bytes(b"")
    (out / "full_sft_512.pth").write_bytes(b"12345678")
    (out / "full_sft_512.meta.json").write_text(json.dumps({"run_id": "20251101-090000-sft", "step": 3,
                                                            "weights_size": 8}))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#mode").value = "sft"
        await pilot.pause()
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#extra", Input).value = "--out_dir elsewhere"
        await pilot.pause()
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen),
                       lambda: f"the question; said {[n.message for n in app._notifications]}")
        question = " ".join(str(app.screen.query_one("#confirm-question").render()).split())
        assert question.startswith("elsewhere/full_sft_512.pth already holds weights (from run 20251101-090000-sft")
        assert "still running" not in question


def test_the_overwrite_question_says_when_the_run_that_wrote_the_weights_is_still_live(project):
    from minimind_tui.app.app import replacement_question
    from minimind_tui.runs.launcher import TrainSpec

    live = make_run(project, "20251101-120000-sft", steps=3, pid=os.getpid(), heartbeat_age=1.0, now=time.time())
    (project / "out").mkdir()
    (project / "out" / "full_sft_512.pth").write_bytes(b"12345678")
    (project / "out" / "full_sft_512.meta.json").write_text(json.dumps({"run_id": live.name, "step": 3,
                                                                        "weights_size": 8}))
    question = " ".join(replacement_question(project, TrainSpec(mode="sft", data_path="d.jsonl")).split())
    assert "Run 20251101-120000-sft is still running and writes this file at each of its saves" in question


async def test_pretraining_base_reads_random_init_and_the_cpu_gets_no_dtype(make_app, project):
    (project / "dataset" / "pretrain.jsonl").write_text('{"text": "hello"}\n' * 3)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#data_path", Input).value = "dataset/pretrain.jsonl"
        await pilot.pause()
        init = form.query_one("#init")
        assert init.disabled and dict((v, label) for label, v in init._options)[init.value] == "random init"
        assert "--dtype" not in command(form)  # auto: the trainer's choice for the GPU
        form.query_one("#dtype").value = "bfloat16"
        await pilot.pause()
        assert "--dtype bfloat16" in command(form)
        form.query_one("#device", Input).value = "cpu"
        await pilot.pause()
        assert "--dtype" not in command(form) and form.query_one("#dtype").disabled
        form.query_one("#mode").value = "sft"
        await pilot.pause()
        assert not init.disabled and init.value == "default"


async def test_without_a_minimind_tokenizer_only_the_demo_preset_goes_unwarned(make_app, project):
    (project / "dataset" / "pretrain.jsonl").write_text('{"text": "hello"}\n' * 3)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#data_path", Input).value = "dataset/pretrain.jsonl"
        await checked(pilot, form, lambda t: "minimind-tui download tokenizer" in t, "the tokenizer warning")
        assert "--tokenizer DIR" in checks(form) and checks(form).startswith("⚠")
        form.query_one("#preset").value = "demo"
        await checked(pilot, form, lambda t: t == "", "no warning for the demo preset")
        assert "--preset demo" in command(form)
