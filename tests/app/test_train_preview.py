"""The Train tab's Preview: the chosen dataset opens in the Dataset tab, read as the form would train on it
(kind from the mode, the form's seq len, the tokenizer from --tokenizer in the extra flags)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from canned import make_run
from testkit import Posted, wait_for
from textual.widgets import Input, TabbedContent

from minimind_tui.app.widgets.dataset_samples import Bubble
from minimind_tui.app.widgets.dataset_tab import DatasetTab
from minimind_tui.app.widgets.train_form import TrainForm
from minimind_tui.demo import demo_tokenizer_dir
from minimind_tui.runs import layout


async def fill_form(pilot, mode: str, path: str, seq_len: str, extra: str = "") -> TrainForm:
    form = pilot.app.query_one(TrainForm)
    await wait_for(pilot, lambda: form.scans_done, "scan")
    form.query_one("#mode").value = mode
    await pilot.pause()
    form.query_one("#data_path", Input).value = path
    form.query_one("#max_seq_len", Input).value = seq_len
    form.query_one("#extra", Input).value = extra
    await pilot.pause()
    return form


async def test_preview_key_opens_the_file_in_the_dataset_tab_with_mode_seq_len_and_tokenizer(
        make_app, project, tiny_tokenizer):
    shutil.copytree(tiny_tokenizer.path, project / "tok")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_form(pilot, "sft", "dataset/sft_mini_512.jsonl", "64", "--save_interval 9 --tokenizer tok")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: app.query_one("#tabs", TabbedContent).active == "dataset", "Dataset tab")
        tab = app.query_one(DatasetTab)
        await wait_for(pilot, lambda: tab.browser.sample is not None and tab.browser.tokenizer is not None,
                       "file and tokenizer")
        assert tab.browser.path == project / "dataset" / "sft_mini_512.jsonl"
        assert (tab.browser.kind_choice, tab.browser.kind) == ("sft", "sft")
        assert tab.browser.max_seq_len == 64 and app.query_one("#ds-maxlen", Input).value == "64"
        assert tab.browser.tokenizer_dir == project / "tok"
        assert tab.browser.tokenizer.vocab_size == tiny_tokenizer.vocab_size  # the hermetic one, not the demo's
        await pilot.pause()
        assert [str(b.render()) for b in app.query(Bubble)] == ["你好", "你好！"]


async def test_sft_preview_and_estimate_use_the_tokenizer_recorded_with_the_base(make_app, project, tiny_tokenizer):
    """SFT from a base trained with another tokenizer: the trainer takes the recorded one, so must the preview."""
    recorded = project / "pretrain_tok"
    shutil.copytree(tiny_tokenizer.path, recorded)
    make_run(project, "20251101-090000-pretrain", mode="pretrain", steps=20, end="done", ckpt_at=(20,))
    run = project / "runs" / "20251101-090000-pretrain"
    (run / layout.CONFIG).write_text(json.dumps({"settings": {"tokenizer": str(recorded)}}))
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await fill_form(pilot, "sft", "dataset/sft_mini_512.jsonl", "64")
        # The preview and the estimate read the file with the tokenizer the trainer will take.
        assert Path(form.preview_request().tokenizer) != recorded  # the trainer's default base knows nothing of it
        init = form.query_one("#init")
        init.value = next(v for _, v in init._options if "20251101-090000-pretrain" in str(v))
        await pilot.pause()
        assert Path(form.preview_request().tokenizer) == recorded
        small = str(form.query_one("#estimate").render())
        form.query_one("#extra", Input).value = f"--tokenizer {demo_tokenizer_dir()}"  # 1643 tokens, not 300ish
        await pilot.pause()
        assert str(form.query_one("#estimate").render()) != small
        form.query_one("#extra", Input).value = ""
        await pilot.press("ctrl+o")
        tab = app.query_one(DatasetTab)
        await wait_for(pilot, lambda: tab.browser.tokenizer is not None, "tokenizer")
        assert tab.browser.tokenizer_dir == recorded and tab.browser.tokenizer.vocab_size == tiny_tokenizer.vocab_size


async def test_preview_button_reads_the_file_as_the_chosen_mode(make_app, project):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_form(pilot, "pretrain", "dataset/sft_mini_512.jsonl", "128")
        await pilot.click("#preview")
        await wait_for(pilot, lambda: app.query_one("#tabs", TabbedContent).active == "dataset", "Dataset tab")
        tab = app.query_one(DatasetTab)
        await wait_for(pilot, lambda: tab.browser.sample is not None, "first sample")
        # Forced to pretrain, an SFT file shows what pretraining would see: a line without "text".
        assert (tab.browser.kind_choice, tab.browser.kind, tab.browser.max_seq_len) == ("pretrain", "pretrain", 128)
        assert not tab.browser.sample.ok


async def test_preview_without_a_file_says_what_to_do(make_app):
    app, seen = make_app(), Posted()
    async with app.run_test(size=(100, 30), message_hook=seen) as pilot:
        await fill_form(pilot, "sft", "", "512")
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: seen.notices("Nothing to preview"), "the notice")
        assert seen.notices("Nothing to preview") == ["choose a dataset file or type its path first"]
        assert app.query_one("#tabs", TabbedContent).active == "train" and not seen.of(TrainForm.PreviewRequested)


async def test_dataset_and_chat_tabs_are_built_only_when_first_shown(make_app):
    from minimind_tui.app.widgets.chat_tab import ChatTab
    app = make_app()  # preload off: nothing builds them behind the test's back
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        assert not app.query(DatasetTab) and not app.query(ChatTab)  # not part of the first frame
        await pilot.press("4")
        await wait_for(pilot, lambda: app.query(ChatTab) and app.query_one(ChatTab).is_mounted, "Chat tab")
        assert not app.query(DatasetTab)
        await pilot.click("Tab#--content-tab-dataset")  # a click on the tab header builds it too
        await wait_for(pilot, lambda: app.query(DatasetTab) and app.query_one(DatasetTab).is_mounted, "Dataset")
        assert app.query_one("#tabs", TabbedContent).active == "dataset"
        assert app.focused is app.query_one("#ds-path", Input)  # its keys work straight away


async def test_after_the_first_frame_the_lazy_tabs_are_built_in_the_background(make_app):
    from minimind_tui.app.widgets.chat_tab import ChatTab
    app = make_app(preload_tabs=True)
    async with app.run_test(size=(100, 30)) as pilot:
        built = lambda cls: len(app.query(cls)) == 1 and app.query_one(cls).is_mounted  # noqa: E731
        await wait_for(pilot, lambda: built(DatasetTab) and built(ChatTab), "preloaded tabs")
        assert app.query_one("#tabs", TabbedContent).active == "train"  # nothing switched or stole focus
        hidden = (app.query_one(DatasetTab), app.query_one(ChatTab))
        assert app.focused is None or not any(t in app.focused.ancestors_with_self for t in hidden)


async def test_an_empty_dataset_tab_shows_the_train_tabs_file_and_keeps_one_the_user_opened(make_app, project):
    shutil.copy(project / "dataset" / "sft_mini_512.jsonl", project / "dataset" / "other.jsonl")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_form(pilot, "sft", "dataset/sft_mini_512.jsonl", "96")
        await pilot.press("3")
        tab = app.query_one(DatasetTab)
        await wait_for(pilot, lambda: tab.browser.sample is not None, "the Train tab's file")
        assert tab.browser.path == project / "dataset" / "sft_mini_512.jsonl"
        assert (tab.browser.kind_choice, tab.browser.max_seq_len) == ("sft", 96)
        assert app.focused is not app.query_one("#ds-path", Input)  # digits switch tabs again at once
        tab.open_file("dataset/other.jsonl")
        await wait_for(pilot, lambda: tab.browser.sample is not None and tab.browser.path.name == "other.jsonl",
                       "the user's file")
        await pilot.press("1")
        await pilot.press("3")
        await pilot.pause()
        assert tab.browser.path.name == "other.jsonl"


async def test_a_train_path_that_does_not_exist_leaves_the_dataset_tab_empty(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await fill_form(pilot, "sft", "dataset/not_there.jsonl", "96")
        await pilot.press("3")
        await pilot.pause()
        tab = app.query_one(DatasetTab)
        assert tab.browser.path is None and app.focused is app.query_one("#ds-path", Input)
