"""Dataset tab with a minimind-3-style tokenizer and data: tools, tool calls, tool responses and reasoning get
bubbles of their own, and the token view marks trained tokens by that generation's rule."""
import json

from testkit import wait_for
from textual.app import App

from dataset import SFTDataset
from minimind_tui.app.widgets.dataset_samples import Bubble
from minimind_tui.app.widgets.dataset_tab import DatasetTab
from minimind_tui.app.widgets.dataset_tokens import TokenPane

TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]
ROW = {"conversations": [
    {"role": "system", "content": "你可以调用工具。", "tools": json.dumps(TOOLS)},
    {"role": "user", "content": "上海天气？"},
    {"role": "assistant", "content": "", "tool_calls": json.dumps([{"name": "get_weather",
                                                                     "arguments": {"city": "上海"}}])},
    {"role": "tool", "content": '{"weather": "晴"}'},
    {"role": "assistant", "content": "晴天。", "reasoning_content": "看工具结果"}]}


class Host(App):
    def __init__(self, root, tokenizer_dir):
        super().__init__()
        self.root, self.tokenizer_dir = root, tokenizer_dir

    def compose(self):
        yield DatasetTab(self.root, tokenizer_dir=self.tokenizer_dir)


async def test_tool_and_reasoning_blocks_and_trained_tokens(tmp_path, chatml_tokenizer):
    path = tmp_path / "t2t.jsonl"
    path.write_text(json.dumps(ROW, ensure_ascii=False) + "\n", encoding="utf-8")
    app = Host(tmp_path, chatml_tokenizer.path)
    async with app.run_test(size=(110, 60)) as pilot:
        tab = app.query_one(DatasetTab)
        tab.open_file(path)
        b = tab.browser
        await wait_for(pilot, lambda: b.jsonl is not None and b.tokenizer is not None and b.sample is not None)
        bubbles = list(app.query(Bubble))
        assert [(b.role, b.border_title) for b in bubbles] == [
            ("system", "system"), ("tools", "tools (tools)"), ("user", "user"), ("tool_call", "tool call"),
            ("tool", "tool response"), ("reasoning", "reasoning"), ("assistant", "assistant")]
        assert str(bubbles[3].render()) == 'get_weather({"city": "上海"})'
        await pilot.press("t")
        pane = app.query_one(TokenPane)
        await wait_for(pilot, lambda: pane.view is not None)
        input_ids, labels = SFTDataset(path, chatml_tokenizer, max_length=tab.browser.max_seq_len)[0]
        assert pane.view.n_trained == int((labels[1:] != -100).sum())
        trained = [p.id for p in pane.view.pieces if p.trained]
        assert trained == input_ids[1:][labels[1:] != -100].tolist()
