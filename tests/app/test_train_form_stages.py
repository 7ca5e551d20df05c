"""The stages after SFT from the dashboard: LoRA, DPO and distillation in the Train form's mode list (their
trainer defaults, the full_sft base, their data kind checked inline, their memory estimate), and the Runs
monitor's DPO and distillation figures."""
from __future__ import annotations

import shlex

from canned import T0, make_run
from testkit import wait_for
from textual.widgets import Input

from minimind_tui.app.widgets.run_monitor import progress_text
from minimind_tui.app.widgets.train_form import TrainForm
from minimind_tui.runs import events, layout
from minimind_tui.runs.summary import summarize


def checks(form) -> str:
    return str(form.query_one("#checks").render())


def command(form) -> list[str]:
    return shlex.split(str(form.query_one("#command").render()).removeprefix("$ "))


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(f"--{name}") + 1]


async def ready(pilot) -> TrainForm:
    form = pilot.app.query_one(TrainForm)
    await wait_for(pilot, lambda: form._out_weights is not None, "scan")
    return form


async def test_dpo_gets_its_defaults_the_full_sft_base_and_sft_data_is_flagged(make_app, project):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        assert [v for _, v in form.query_one("#mode")._options] == ["pretrain", "sft", "lora", "dpo", "distill"]
        form.query_one("#mode").value = "dpo"
        await pilot.pause()
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"  # conversations, not pairs
        await wait_for(pilot, lambda: "holds sft data" in checks(form), lambda: f"the data check: {checks(form)!r}")
        argv = command(form)
        assert argv[:3] == ["minimind-tui", "train", "dpo"]
        # DPO's own recipe (train.args.MODE_DEFAULTS["dpo"]), not pretraining's.
        assert (flag(argv, "learning_rate"), flag(argv, "epochs"), flag(argv, "accumulation_steps"),
                flag(argv, "max_seq_len")) == ("1e-08", "2", "1", "1024")
        assert "--init" not in argv  # the trainer's default base: out/full_sft_<dim>.pth
        init = form.query_one("#init")
        assert not init.disabled and init.value == "default" and "full_sft_<dim>.pth" in init._options[0][0]
        assert "not dpo data" in checks(form) and form.query_one("#data_path").has_class("-invalid")
        assert "full_sft_512.pth" in checks(form)  # the base it would start from is missing, and named
        note = str(form.query_one("#form-note").render())
        assert "DPO defaults set" in note and "--beta 0.1" in note
        assert form.preview_request().kind == "dpo"
        form.query_one("#mode").value = "lora"  # LoRA reads SFT conversations: the same file passes
        await wait_for(pilot, lambda: "holds sft data" not in checks(form), lambda: f"LoRA: {checks(form)!r}")
        assert command(form)[2] == "lora" and form.preview_request().kind == "sft"
        assert "--lora_name lora_identity" in str(form.query_one("#form-note").render())


async def test_the_estimate_counts_what_each_stage_holds(make_app):
    """DPO holds a frozen reference copy and two rows a pair; LoRA trains a fraction; distill counts its teacher."""
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#device", Input).value = "cpu"
        shown = {}
        for mode in ("sft", "lora", "dpo", "distill"):
            form.query_one("#mode").value = mode
            await pilot.pause()
            for field, value in (("batch_size", "8"), ("max_seq_len", "256")):  # the same batches for all
                form.query_one(f"#{field}", Input).value = value
            await pilot.pause()
            text = str(form.query_one("#estimate").render())
            shown[mode] = float(text.split("≈")[1].split(" GB")[0])
        assert shown["lora"] < shown["sft"] < shown["dpo"], shown
        form.query_one("#extra", Input).value = "--teacher_dim 64 --teacher_n_layers 2"  # a much smaller teacher
        await pilot.pause()
        assert float(str(form.query_one("#estimate").render()).split("≈")[1].split(" GB")[0]) < shown["distill"]


def dpo_run(project):
    run = make_run(project, "20251101-100000-dpo", mode="dpo", steps=10, end="done")
    with open(run / layout.METRICS, "ab") as f:
        f.write(events.encode("step", now=T0, step=11, total=100, epoch=0, loss=0.61, lr=1e-8,
                              reward_chosen=-0.125, reward_rejected=-0.375, reward_margin=0.25,
                              reward_accuracy=0.75, tokens_per_s=1000.0))
    return run


def test_the_monitor_shows_a_dpo_runs_margin_and_accuracy(project):
    text = str(progress_text(summarize(dpo_run(project), now=T0)))
    assert "margin 0.25" in text and "pref. accuracy 75%" in text
    assert "chosen -0.125" in text and "rejected -0.375" in text
    assert "margin" not in str(progress_text(summarize(make_run(project, "20251101-110000-sft"), now=T0)))


def test_the_monitor_shows_a_distill_runs_two_losses(project):
    run = make_run(project, "20251101-100000-distill", mode="distill", steps=10, end="done")
    with open(run / layout.METRICS, "ab") as f:
        f.write(events.encode("step", now=T0, step=11, total=100, epoch=0, loss=2.5, lr=5e-6, ce_loss=2.75,
                              distill_loss=1.5))
    text = str(progress_text(summarize(run, now=T0)))
    assert "CE loss 2.75" in text and "distill loss 1.5" in text


async def test_the_runs_tab_shows_the_dpo_figures(make_app, project):
    dpo_run(project)
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("2")
        await wait_for(pilot, lambda: "margin" in str(app.query_one("#monitor-progress").render()), "DPO figures")
        assert "pref. accuracy 75%" in str(app.query_one("#monitor-progress").render())
