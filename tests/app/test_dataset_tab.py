"""Dataset tab under Pilot, one test per view plus opening, errors and the first page of a file being indexed."""
import json
import threading
from pathlib import Path

import pytest
from testkit import conv, wait_for
from textual.app import App
from textual.widgets import DataTable, Input, Label, Static

from dataset.jsonl import JsonlFile
from dataset.preview import sample_from_raw, token_view
from dataset.stats import BATCH
from minimind_tui.app import dataset_browser as browser_module
from minimind_tui.app.widgets import dataset_tab as dt
from minimind_tui.app.widgets.dataset_samples import Bubble, SampleView
from minimind_tui.app.widgets.dataset_stats import StatsPane
from minimind_tui.app.widgets.dataset_tab import DatasetTab
from minimind_tui.app.widgets.dataset_tokens import TokenPane

ROWS = [conv("你好，[世界]！🐱", "你好！有什么可以帮你？😀"),
        "{broken json",
        conv("讲个故事", "从前有座山，山里有座庙。" * 12),
        conv("a", "b", roles=["assistant", "user"]),
        conv("你好，[世界]！🐱", "你好！有什么可以帮你？😀")]


class Host(App):
    def __init__(self, root: Path, tokenizer_dir: Path | None):
        super().__init__()
        self.root, self.tokenizer_dir = root, tokenizer_dir
        self.messages = []

    def compose(self):
        yield DatasetTab(self.root, tokenizer_dir=self.tokenizer_dir)

    def on_dataset_tab_stats_computed(self, m):
        self.messages.append(m)


@pytest.fixture
def sft_file(tmp_path):
    path = tmp_path / "chat.jsonl"
    path.write_text("\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def texts(widgets):
    return [str(w.render()) for w in widgets]


async def open_and_wait(pilot, tab, path, kind=None):
    tab.open_file(path, kind)
    b = tab.browser
    await wait_for(pilot, lambda: b.jsonl is not None and b.tokenizer is not None and b.sample is not None)


async def test_samples_view_bubbles_navigation_jump_random_and_raw(tmp_path, sft_file, tiny_tokenizer, monkeypatch):
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        await open_and_wait(pilot, tab, sft_file)
        assert tab.browser.kind == "sft"
        bubbles = list(app.query(Bubble))
        assert [b.role for b in bubbles] == ["user", "assistant"]
        assert texts(bubbles) == ["你好，[世界]！🐱", "你好！有什么可以帮你？😀"]  # brackets are not markup
        assert "line 1 of 5" in str(app.query_one("#ds-pos", Label).render())
        await pilot.press("n")
        await pilot.pause()
        assert tab.browser.index == 1 and "invalid JSON" in texts(app.query(Bubble))[0]  # bad line: its reason
        await pilot.press("n", "p", "p")  # no going before line 1
        assert tab.browser.index == 0
        await pilot.press("g")
        assert app.focused is app.query_one("#ds-jump", Input)
        await pilot.press("3", "enter")
        await pilot.pause()
        assert tab.browser.index == 2 and texts(app.query(Bubble))[1].startswith("从前有座山")
        await pilot.press("g", "9", "enter")  # past the end: stays, says why
        await pilot.pause()
        assert tab.browser.index == 2
        monkeypatch.setattr(browser_module.random, "randrange", lambda n: 4 if n == 5 else 0)
        app.query_one(SampleView).focus()
        await pilot.press("x")
        await pilot.pause()
        assert tab.browser.index == 4
        await pilot.press("j")
        await pilot.pause()
        raw = str(app.query_one(SampleView).query_one(".raw", Static).render())
        assert json.loads(raw) == json.loads(ROWS[4]) and "\n  " in raw  # pretty-printed JSON
        await pilot.press("j")
        await pilot.pause()
        assert len(app.query(Bubble)) == 2
        # o: back to the path field with its text selected, so a new path replaces it and letters type.
        other = tmp_path / "other.jsonl"
        other.write_text(ROWS[0] + "\n", encoding="utf-8")
        await pilot.press("o")
        assert app.focused is app.query_one("#ds-path", Input)
        await pilot.press(*str(other), "enter")
        await wait_for(pilot, lambda: tab.browser.path == other and tab.browser.sample is not None)
        assert tab.browser.index == 0 and len(app.query(Bubble)) == 2


async def test_token_view_highlights_trained_tokens_and_marks_truncation(tmp_path, sft_file, tiny_tokenizer):
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        await open_and_wait(pilot, tab, sft_file)
        tab.go_to_line(3)
        maxlen = app.query_one("#ds-maxlen", Input)
        maxlen.value = "100"
        await pilot.press("t")
        pane = app.query_one(TokenPane)
        await wait_for(pilot, lambda: pane.view is not None and pane.view.max_seq_len == 100)
        expected = token_view(sample_from_raw(JsonlFile(sft_file).line(2), 2, "sft"), tiny_tokenizer, 100)
        assert pane.view == expected and expected.n_truncated > 0
        counts = str(pane.query_one("#ds-token-counts", Static).render())
        assert f"tokens {expected.n_tokens}" in counts and f"truncated {expected.n_truncated}" in counts
        assert f"trained {expected.n_trained_tokens}" in counts
        body = pane.query_one("#ds-token-text", Static).content  # the rich Text as given
        assert "✂ truncated at max_seq_len 100" in str(body)
        trained_spans = [str(body)[s.start:s.end] for s in body.spans if "#5fd787" in str(s.style)
                         or "#afffaf" in str(s.style)]
        assert "".join(trained_spans) == "".join(p.text.replace("\n", "↵\n") for p in expected.pieces if p.trained)
        await pilot.press("d")
        assert f"⟨{expected.pieces[0].id}⟩" in str(pane.query_one("#ds-token-text", Static).render())


async def test_statistics_view_lists_problems_and_jumps_to_them(tmp_path, sft_file, tiny_tokenizer):
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 50)) as pilot:
        tab = app.query_one(DatasetTab)
        await open_and_wait(pilot, tab, sft_file)
        await pilot.press("i")
        await wait_for(pilot, lambda: app.messages)
        st = app.messages[-1].stats
        assert st.complete and st.samples == 3 and [b.line_number for b in st.bad] == [2, 4]
        summary = str(app.query_one("#ds-stats-summary", Static).render())
        assert "5 lines, 3 samples, 2 bad lines" in summary and "role-order problems: 1" in summary
        table = app.query_one("#ds-problems", DataTable)
        rows = [table.get_row_at(r) for r in range(table.row_count)]
        assert [(r[0], r[1]) for r in rows] == [("2", "json"), ("4", "role_order"), ("5", "duplicate")]
        table.focus()
        await pilot.press("down", "enter")  # the role-order line
        await pilot.pause()
        assert tab.browser.index == 3 and app.query_one("#ds-views").active == "ds-samples"
        assert "roles out of order" in texts(app.query(Bubble))[0]


async def test_statistics_can_be_cancelled(tmp_path, tiny_tokenizer):
    path = tmp_path / "many.jsonl"
    path.write_text("".join(json.dumps({"text": f"第{i}行"}, ensure_ascii=False) + "\n" for i in range(4 * BATCH)),
                    encoding="utf-8")
    app = Host(tmp_path, None)  # the bundled demo tokenizer
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        await open_and_wait(pilot, tab, path)
        gate, reached = threading.Event(), threading.Event()
        line = tab.browser.jsonl.line

        def gated(i):  # hold the worker at the start of its second batch
            if i == BATCH:
                reached.set()
                gate.wait(10)
            return line(i)
        tab.browser.jsonl.line = gated
        await pilot.press("i")
        await wait_for(pilot, reached.is_set)
        assert app.query_one("#ds-stats-cancel").disabled is False
        await pilot.click("#ds-stats-cancel")
        gate.set()
        await wait_for(pilot, lambda: app.messages)
        st = app.messages[-1].stats
        assert not st.complete and st.processed_lines == 2 * BATCH
        assert "Cancelled after 512 lines" in str(app.query_one("#ds-stats-summary", Static).render())


async def test_first_page_shows_before_the_index_is_built(tmp_path, tiny_tokenizer, monkeypatch):
    path = tmp_path / "pre.jsonl"
    path.write_text("".join(json.dumps({"text": f"样本 {i} 🐶"}, ensure_ascii=False) + "\n" for i in range(500)),
                    encoding="utf-8")
    gate = threading.Event()

    class SlowIndex(JsonlFile):
        def __init__(self, *a, **kw):
            gate.wait(10)
            super().__init__(*a, **kw)
    monkeypatch.setattr(dt, "JsonlFile", SlowIndex)
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        tab.open_file("pre.jsonl")  # relative to the root
        await wait_for(pilot, lambda: tab.browser.sample is not None)
        assert tab.browser.jsonl is None and tab.browser.kind == "pretrain"
        assert texts(app.query(Bubble)) == ["样本 0 🐶"]
        assert "indexing" in str(app.query_one("#ds-status", Label).render())
        await pilot.press("n")
        assert tab.browser.index == 1
        assert not tab.go_to_line(400)  # only the first 200 lines are read before the index exists
        gate.set()
        await wait_for(pilot, lambda: tab.browser.jsonl is not None)
        assert tab.go_to_line(400)
        await pilot.pause()
        assert texts(app.query(Bubble)) == ["样本 399 🐶"]
        assert "500 lines" in str(app.query_one("#ds-status", Label).render())


async def test_typed_path_kind_choice_and_bad_files(tmp_path, sft_file, tiny_tokenizer):
    (tmp_path / "empty.jsonl").write_bytes(b"")
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        app.query_one("#ds-path", Input).focus()
        await pilot.press(*"chat.jsonl", "enter")
        await wait_for(pilot, lambda: tab.browser.jsonl is not None)
        assert tab.browser.path == sft_file and tab.browser.kind == "sft"
        tab.open_file(sft_file, "pretrain")  # wrong kind: every line says why
        await wait_for(pilot, lambda: tab.browser.jsonl is not None and tab.browser.kind == "pretrain")
        assert 'missing "text" key' in texts(app.query(Bubble))[0]
        for name, reason in [("nope.jsonl", "no such file"), ("empty.jsonl", "empty")]:
            tab.open_file(name)
            await wait_for(pilot, lambda r=reason: r in str(app.query_one("#ds-status", Label).render()))
            assert tab.browser.jsonl is None


def test_the_dashboard_builds_this_tab(tmp_path):
    from minimind_tui.app.app import _optional_tab

    assert isinstance(_optional_tab("minimind_tui.app.widgets.dataset_tab", "DatasetTab", tmp_path, "Dataset"),
                      DatasetTab)


async def test_a_first_line_longer_than_the_head_read_waits_for_the_index(tmp_path, tiny_tokenizer):
    path = tmp_path / "long.jsonl"
    path.write_text(json.dumps({"text": "长" * (2 << 20)}, ensure_ascii=False) + "\n" + '{"text": "short"}\n',
                    encoding="utf-8")  # 6 MB first line: more than head_lines reads
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        tab.open_file(path)
        await wait_for(pilot, lambda: tab.browser.sample is not None)
        assert tab.browser.jsonl is not None and tab.browser.kind == "pretrain" and tab.browser.index == 0
        await pilot.pause()
        shown = texts(app.query(Bubble))[0]
        assert shown.startswith("长长长") and "more characters" in shown  # clipped, not millions of cells


async def test_throughput_comes_from_the_newest_run_and_updates_the_estimate(tmp_path, sft_file, tiny_tokenizer):
    run = tmp_path / "runs" / "sft-20260101-000000"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text(
        '{"event": "start", "time": 1}\n{"event": "step", "time": 2, "step": 1, "tokens_per_s": 1000.0}\n'
        '{"event": "step", "time": 3, "step": 2, "tokens_per_s": 2000.0}\n{"event": "end", "time": 4}\n{"eve',
        encoding="utf-8")
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 50)) as pilot:
        tab = app.query_one(DatasetTab)
        field = app.query_one("#ds-throughput", Input)
        await wait_for(pilot, lambda: field.value == "2000")
        await open_and_wait(pilot, tab, sft_file)
        await pilot.press("i")
        await wait_for(pilot, lambda: app.messages)
        st = app.messages[-1].stats
        assert st.seconds_per_epoch == pytest.approx(st.tokens_per_epoch / 2000)
        field.value = "10"  # a new throughput re-estimates without a rescan
        await pilot.pause()
        pane = app.query_one(StatsPane)
        assert pane.stats is st and st.seconds_per_epoch == pytest.approx(st.tokens_per_epoch / 10)
        assert "time per epoch at 10 tokens/s" in str(app.query_one("#ds-stats-summary", Static).render())
        assert len(app.messages) == 1


async def test_open_file_before_the_tab_is_mounted(tmp_path, sft_file, tiny_tokenizer):
    class Late(App):
        def compose(self):
            tab = DatasetTab(tmp_path, tokenizer_dir=tiny_tokenizer.path)
            tab.open_file(sft_file)  # e.g. the Train tab's picker before this tab was shown
            yield tab
    app = Late()
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        await wait_for(pilot, lambda: tab.browser.jsonl is not None and tab.browser.sample is not None)
        assert tab.browser.path == sft_file and tab.browser.kind == "sft"


async def test_inside_the_dashboard(make_app, project):
    """The real app: key 3 shows the Dataset tab, which opens the project's file by its relative path."""
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("3")
        tab = app.query_one(DatasetTab)
        assert tab.browser.root == project
        tab.open_file("dataset/sft_mini_512.jsonl")
        await wait_for(pilot, lambda: tab.browser.jsonl is not None and tab.browser.sample is not None)
        await pilot.pause()
        assert texts(app.query(Bubble)) == ["你好", "你好！"]
        await pilot.press("i")
        await wait_for(pilot, lambda: app.query_one(StatsPane).stats is not None)
        st = app.query_one(StatsPane).stats
        assert (st.samples, st.duplicates, st.tokenizer.endswith("demo_tokenizer")) == (3, 2, True)


async def test_opening_from_another_tab_does_not_switch_tabs(make_app, project):
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        from textual.widgets import TabbedContent
        outer = app.query_one("#tabs", TabbedContent)
        assert outer.active == "train"
        tab = app.lazy_tab("dataset")  # never shown yet: built on demand, as the Train tab's Preview does
        assert isinstance(tab, DatasetTab)
        tab.open_file("dataset/sft_mini_512.jsonl")  # before its compose and mount: deferred until then
        await wait_for(pilot, lambda: tab.browser.jsonl is not None and tab.browser.sample is not None)
        await pilot.pause()
        assert outer.active == "train"


async def test_a_newly_opened_file_is_read_as_its_own_kind(tmp_path, sft_file, tiny_tokenizer):
    """The kind picked for one file is not forced on the next: typing another path detects its kind (DPO
    pairs included, each side's tokens shown); the same file again keeps the pick."""
    pairs = tmp_path / "pairs.jsonl"
    pair = {"chosen": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}],
            "rejected": [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "走开。"}]}
    pairs.write_text(json.dumps(pair, ensure_ascii=False) + "\n", encoding="utf-8")
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        await open_and_wait(pilot, tab, sft_file, kind="sft")  # picked by hand
        assert tab.browser.kind_choice == "sft"
        field = app.query_one("#ds-path", Input)
        field.value = str(pairs)
        field.focus()
        await pilot.press("enter")
        await wait_for(pilot, lambda: tab.browser.path == pairs and tab.browser.sample is not None, "pairs open")
        assert tab.browser.kind == "dpo" and "dpo" in str(app.query_one("#ds-status", Label).render())
        assert [b.border_title for b in app.query(Bubble)] == ["chosen · user", "chosen · assistant",
                                                               "rejected · user", "rejected · assistant"]
        await pilot.press("t")
        pane = app.query_one(TokenPane)
        await wait_for(pilot, lambda: pane.views, "token view")
        assert [name for name, _ in pane.views] == ["chosen", "rejected"]
        counts = str(pane.query_one("#ds-token-counts", Static).render())
        assert counts.startswith("chosen: tokens") and "\nrejected: tokens" in counts
        body = str(pane.query_one("#ds-token-text", Static).render())
        assert "══ chosen ══" in body and "══ rejected ══" in body and "走开。" in body
        # The same file again (after picking its kind by hand) keeps that pick.
        app.query_one("#ds-kind").value = "sft"
        await wait_for(pilot, lambda: tab.browser.kind_choice == "sft", "kind picked")
        assert tab.browser.kind_to_open(str(pairs)) == "sft" and tab.browser.kind_to_open(str(sft_file)) is None


async def test_token_counts_never_count_padding_as_trained(tmp_path, tiny_tokenizer):
    path = tmp_path / "question.jsonl"
    path.write_text(conv("只有问题") + "\n", encoding="utf-8")  # v1's mask runs on into padding
    app = Host(tmp_path, tiny_tokenizer.path)
    async with app.run_test(size=(110, 40)) as pilot:
        tab = app.query_one(DatasetTab)
        await open_and_wait(pilot, tab, path)
        app.query_one("#ds-maxlen", Input).value = "160"
        await pilot.press("t")
        pane = app.query_one(TokenPane)
        await wait_for(pilot, lambda: pane.view is not None and pane.view.max_seq_len == 160, "token view")
        assert pane.view.n_pad_trained > 0
        counts = str(pane.query_one("#ds-token-counts", Static).render())
        assert "trained 0 (and " in counts and "padding positions the loss counts" in counts
