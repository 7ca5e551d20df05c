"""Snapshots of the Dataset and Chat tabs inside the dashboard, one class per tab, at fixed terminal sizes.
Canned data only: a CJK/emoji JSONL file inside the project (shown by its project-relative path), the bundled
demo tokenizer (shown by name), canned checkpoint files with fixed mtimes, and a stand-in chat session whose
replies and speed figures are fixed, so no snapshot depends on model weights, timing or temp paths.
Regenerate deliberately: pytest tests/app/test_tab_snapshots.py --snapshot-update, then read the diff report."""
from __future__ import annotations

import json
import os
from types import SimpleNamespace

import pytest
from canned import T0, make_run
from testkit import wait_for
from textual.widgets import DataTable, Input

from minimind_tui.app.widgets.chat_tab import ChatTab
from minimind_tui.app.widgets.dataset_stats import StatsPane
from minimind_tui.app.widgets.dataset_tab import DatasetTab
from minimind_tui.app.widgets.dataset_tokens import TokenPane
from minimind_tui.chat.reply import ReplyStream
from minimind_tui.chat.settings import GenerationSettings

SIZES = [(80, 24), (120, 40)]


def conversation(*turns) -> str:
    roles = ["system", "user", "assistant"] if len(turns) == 3 else ["user", "assistant"]
    return json.dumps({"conversations": [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]},
                      ensure_ascii=False)


ROWS = [conversation("你是一个乐于助人的助手。", "请用一句话介绍长城。🏯",
                     "长城是中国古代修建的军事防御工程，东起山海关，西至嘉峪关，全长两万多公里。"),
        conversation("你好", "你好！有什么可以帮你？😀"),
        "{broken json",
        conversation("讲个故事", "从前有座山，山里有座庙，庙里有个老和尚在给小和尚讲故事。" * 6),
        conversation("你好", "你好！有什么可以帮你？😀")]


class TestDatasetTab:
    @pytest.fixture
    def app(self, make_app, project):
        (project / "dataset" / "sft_cjk.jsonl").write_text("\n".join(ROWS) + "\n", encoding="utf-8")
        return make_app()

    @staticmethod
    async def open_cjk(pilot) -> DatasetTab:
        await pilot.press("3")
        tab = pilot.app.query_one(DatasetTab)
        tab.open_file("dataset/sft_cjk.jsonl", max_seq_len=96)
        b = tab.browser
        await wait_for(pilot, lambda: b.jsonl is not None and b.tokenizer is not None and b.sample is not None,
                       "file indexed and tokenizer loaded")
        await pilot.pause()
        return tab

    @pytest.mark.parametrize("size", SIZES)
    def test_samples_as_chat_bubbles(self, snap_compare, app, size):
        assert snap_compare(app, terminal_size=size, run_before=self.open_cjk)

    def test_tokens_with_trained_tokens_and_truncation(self, snap_compare, app):
        async def run_before(pilot):
            tab = await self.open_cjk(pilot)
            tab.go_to_line(4)  # longer than max_seq_len 96: the cut is marked
            await pilot.press("t")
            pane = pilot.app.query_one(TokenPane)
            await wait_for(pilot, lambda: pane.view is not None and pane.view.n_truncated > 0, "token view")
            await pilot.pause()
        assert snap_compare(app, terminal_size=(120, 40), run_before=run_before)

    @pytest.mark.parametrize("size", SIZES)
    def test_statistics_with_bad_line_and_duplicates(self, snap_compare, app, size):
        async def run_before(pilot):
            await self.open_cjk(pilot)
            await pilot.press("i")
            pane = pilot.app.query_one(StatsPane)
            table = pane.query_one(DataTable)
            await wait_for(pilot, lambda: pane.stats is not None and table.row_count == 2, "statistics and their table")
            await pilot.pause()
        assert snap_compare(app, terminal_size=size, run_before=run_before)


class CannedStats:
    def summary(self) -> str:
        return "21 tokens, 38.5 tok/s, first token 42 ms"


class CannedSession:
    """Stands in for a loaded ChatSession: canned replies, streamed piece by piece like the real one."""

    tokenizer = SimpleNamespace(thinking_switch=None)  # a v1 template: no thinking switch
    model = SimpleNamespace(generation="v1")

    def __init__(self, replies: list[str], thinking: bool = False):
        self.thinking = thinking  # a minimind-3 template whose prompt opens the think block
        if thinking:
            self.tokenizer = SimpleNamespace(thinking_switch="open_thinking")
            self.model = SimpleNamespace(generation="gen3")
        self.mode = "chat"
        self.settings = GenerationSettings()
        self.history: list[dict] = []
        self.last_stats = None
        self.parsed = None
        self._replies = iter(replies)

    def reply(self, prompt: str, stop=None, remember: bool = True):
        text = next(self._replies)
        self.parsed = ReplyStream(starts_in_thinking=self.thinking and bool(self.settings.thinking))
        for i in range(0, len(text), 3):
            self.parsed.feed(text[i:i + 3])
            yield text[i:i + 3]
        self.parsed.close()
        self.last_stats = CannedStats()
        if remember:
            self.history += [{"role": "user", "content": prompt}, {"role": "assistant", "content": text}]

    def describe(self) -> str:
        return "full_sft_128.pth: 1.6M params, chat, on cpu"

    def new_chat(self) -> None:
        self.history = []


def canned_checkpoints(project) -> None:
    run = make_run(project, "20251101-090000-pretrain", mode="pretrain", steps=20, end="done", ckpt_at=(20,),
                   dataset="dataset/demo_pretrain.jsonl", now=T0 - 7200)
    for marker in run.glob("checkpoints/*/COMPLETE"):
        os.utime(marker, (T0 - 7200, T0 - 7200))
    weights = project / "out" / "full_sft_128.pth"
    weights.parent.mkdir(exist_ok=True)
    weights.write_bytes(b"")
    os.utime(weights, (T0 - 60, T0 - 60))


class TestChatTab:
    def test_nothing_to_load_yet(self, snap_compare, make_app):
        async def run_before(pilot):
            await pilot.press("4")
            await wait_for(pilot, lambda: pilot.app.query(ChatTab) and pilot.app.query_one(ChatTab).is_mounted,
                           "Chat tab")
            await pilot.pause()
        assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)

    def test_reasoning_folded_away_and_a_tool_call(self, snap_compare, make_app, project):
        canned_checkpoints(project)
        reply = ("用户想知道上海的天气，我应该调用天气工具。\n</think>\n\n我来查一下上海的天气。\n<tool_call>\n"
                 '{"name": "get_weather", "arguments": {"city": "上海"}}\n</tool_call>')

        async def run_before(pilot):
            await pilot.press("4")
            await wait_for(pilot, lambda: pilot.app.query(ChatTab) and pilot.app.query_one(ChatTab).is_mounted,
                           "Chat tab")
            tab = pilot.app.query_one(ChatTab)
            await wait_for(pilot, lambda: tab.checkpoints, "checkpoints listed")
            tab._loaded(CannedSession([reply], thinking=True), tab.checkpoints[0].path, [])  # no LoRA adapters
            box = pilot.app.query_one("#chat-input", Input)
            box.cursor_blink = False
            pilot.app.query_one("#chat-thinking").value = True  # the switch shown for this template
            box.value = "上海天气怎么样？"
            await pilot.press("enter")
            await wait_for(pilot, lambda: not tab.generating, "reply streamed")
            await pilot.pause()
        assert snap_compare(make_app(), terminal_size=(80, 24), run_before=run_before)

    @pytest.mark.parametrize("size", SIZES)
    def test_a_conversation_in_cjk(self, snap_compare, make_app, project, size):
        canned_checkpoints(project)

        async def run_before(pilot):
            await pilot.press("4")
            await wait_for(pilot, lambda: pilot.app.query(ChatTab) and pilot.app.query_one(ChatTab).is_mounted,
                           "Chat tab")
            tab = pilot.app.query_one(ChatTab)
            await wait_for(pilot, lambda: tab.checkpoints, "checkpoints listed")
            tab.session = CannedSession(["我是 MiniMind，一个很小的语言模型。😊", "1+1 等于 2。"])
            box = pilot.app.query_one("#chat-input", Input)
            box.cursor_blink = False  # a blinking cursor would make the snapshot depend on timing
            for question in ("你好，请介绍一下你自己。", "1+1等于几？"):
                box.focus()
                box.value = question
                await pilot.press("enter")
                await wait_for(pilot, lambda: not tab.generating, "reply streamed")
            await pilot.pause()
        assert snap_compare(make_app(), terminal_size=size, run_before=run_before)
