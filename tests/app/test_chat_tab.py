"""The Chat tab driven with Pilot on a tiny random model: load, talk, stop, new chat, probe, copy, errors."""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
import torch
from testkit import Posted, wait_for
from textual.app import App, ComposeResult
from textual.widgets import Collapsible, Input, Select, Static

from minimind_tui.app.widgets.chat_tab import ChatMessage, ChatTab
from model import LMConfig, MiniMindLM, Tokenizer

REPO = Path(__file__).resolve().parents[2]
DEMO_TOKENIZER = REPO / "minimind_tui" / "assets" / "demo_tokenizer"


class Host(App):
    def __init__(self, root: Path):
        super().__init__()
        self.root = root
        self.copied: list[str] = []

    def compose(self) -> ComposeResult:
        yield ChatTab(root=self.root)

    def copy_to_clipboard(self, text: str) -> None:  # record instead of writing OSC 52 to the test terminal
        self.copied.append(text)


def save_tiny(path: Path, vocab: int) -> None:
    torch.manual_seed(0)
    model = MiniMindLM(LMConfig(dim=64, n_layers=2, vocab_size=vocab, max_seq_len=256))
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)


@pytest.fixture(scope="module")
def vocab() -> int:
    if not (DEMO_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip("bundled demo tokenizer not built yet")
    return Tokenizer.from_dir(DEMO_TOKENIZER).vocab_size


@pytest.fixture
def root(tmp_path, vocab) -> Path:
    """out/full_sft_64.pth, then (newer) a pretrain run checkpoint with meta.json."""
    save_tiny(tmp_path / "out" / "full_sft_64.pth", vocab)
    ck = tmp_path / "runs" / "20260101-000000-pretrain" / "checkpoints" / "step_00000040"
    save_tiny(ck / "model.pth", vocab)
    (ck.parents[1] / "config.json").write_text(json.dumps({"mode": "pretrain", "settings": {}}))
    (ck / "meta.json").write_text(json.dumps({"mode": "pretrain", "step": 40, "tokenizer": None}))
    (ck / "COMPLETE").write_text("")
    return tmp_path


def status(app) -> str:
    return str(app.query_one("#chat-status", Static).render())


async def load(pilot, app, index: int = 0):
    tab = app.query_one(ChatTab)
    select = app.query_one("#chat-ckpt", Select)
    select.value = tab.checkpoints[index].path.as_posix()
    await pilot.pause()
    await pilot.click("#chat-load")
    await wait_for(pilot, lambda: tab.session is not None and not tab.has_class("-loading"), "model loaded")
    return tab


async def send(pilot, app, text: str):
    tab = app.query_one(ChatTab)
    box = app.query_one("#chat-input", Input)
    box.focus()
    box.value = text
    await pilot.press("enter")
    await wait_for(pilot, lambda: not tab.generating, "reply finished")
    await pilot.pause()


def messages(app, role=None) -> list[ChatMessage]:
    return [m for m in app.query(ChatMessage) if role is None or m.role == role]


async def test_picker_lists_checkpoints_newest_first_and_loads_in_a_worker(root):
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = app.query_one(ChatTab)
        labels = [tab._option_label(c) for c in tab.checkpoints]
        assert labels == ["20260101-000000-pretrain step 40 (pretrain)", "out/full_sft_64.pth (sft)"]
        assert app.query_one("#chat-mode", Select).value == "continue"  # follows the newest (pretrain)
        assert "no model loaded" in status(app)
        await load(pilot, app, index=1)
        assert app.query_one("#chat-mode", Select).value == "chat"
        assert tab.session.mode == "chat"
        assert "full_sft_64.pth" in status(app) and "on cpu" in status(app)


async def test_chat_streams_a_reply_with_stats_and_new_chat_clears(root):
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = await load(pilot, app, index=1)
        app.query_one("#chat-temperature", Input).value = "0"
        app.query_one("#chat-max_new_tokens", Input).value = "8"
        app.query_one("#chat-history_turns", Input).value = "1"
        await send(pilot, app, "你好")
        assert [m.text for m in messages(app, "user")] == ["你好"]
        reply = messages(app, "assistant")[0]
        assert reply.text and "tok/s" in reply.note
        assert tab.session.settings.max_new_tokens == 8 and tab.session.settings.temperature == 0
        assert [m["role"] for m in tab.session.history] == ["user", "assistant"]
        assert "tok/s" in status(app)
        # Greedy: the streamed text is exactly what the session produces for the same prompt.
        expected = tab.session.answer("你好", remember=False)
        assert reply.text == expected

        await pilot.press("ctrl+y")
        assert app.copied == [reply.text.strip()]  # the answer, without reasoning (a v1 model has none)

        app.query_one("#chat-int8").value = True  # CPU int8 decoding for the next reply
        await send(pilot, app, "再见")
        assert tab.session.settings.int8 and ", int8" in status(app)
        assert len(messages(app, "assistant")) == 2

        await pilot.press("ctrl+n")
        await pilot.pause()
        assert messages(app) == [] and tab.session.history == []


async def test_escape_stops_a_streaming_reply(root, monkeypatch):
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = await load(pilot, app, index=1)
        started = threading.Event()
        word = tab.session.tokenizer.encode("字")

        def endless(model, ids, stop=None, **kwargs):  # a model that never ends by itself
            for _ in range(100_000):
                if stop.is_set():
                    return
                started.set()
                stop.wait(0.001)
                yield from word

        monkeypatch.setattr("minimind_tui.chat.session.generate", endless)
        box = app.query_one("#chat-input", Input)
        box.focus()
        box.value = "write forever"
        await pilot.press("enter")
        await wait_for(pilot, lambda: started.is_set() and messages(app, "assistant")[0].text, "streaming")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not tab.generating, "stopped")
        reply = messages(app, "assistant")[0]
        assert 0 < len(reply.text) < 100_000 and set(reply.text) == {"字"}
        assert "stopped" in reply.note


async def test_bad_settings_are_reported_and_nothing_is_sent(root):
    app, seen = Host(root), Posted()
    async with app.run_test(size=(120, 40), message_hook=seen) as pilot:
        await load(pilot, app, index=1)
        app.query_one("#chat-top_p", Input).value = "lots"
        box = app.query_one("#chat-input", Input)
        box.focus()
        box.value = "hello"
        await pilot.press("enter")
        await wait_for(pilot, lambda: seen.notices(), "the refusal")
        assert messages(app) == []
        assert any("top p: 'lots' is not a number" in n for n in seen.notices())


async def test_probe_answers_every_prompt_and_scores_demo_questions(root):
    from minimind_tui.chat.probes import probes

    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = await load(pilot, app, index=0)  # the pretrain checkpoint: continuation probes
        assert tab.session.mode == "continue"
        # Named as in the picker (every run's weights file is called model.pth).
        assert status(app).startswith("20260101-000000-pretrain step 40 (pretrain): ")
        app.query_one("#chat-max_new_tokens", Input).value = "2"
        await pilot.press("ctrl+o")
        await wait_for(pilot, lambda: not tab.generating, "probes finished")
        await pilot.pause()
        expected = probes("continue", demo=True)  # the demo tokenizer is in use, so held-out sums are added
        answers = messages(app, "assistant")
        assert len(answers) == len(expected)
        assert all(a.note for a in answers)
        assert [a.text[:len(p.prompt)] for a, p in zip(answers, expected, strict=False)] == [p.prompt for p in expected]
        assert "held-out questions correct:" in status(app)
        assert tab.session.history == []  # probes never join the conversation


async def test_a_checkpoint_that_cannot_load_is_reported_without_crashing(root, tmp_path):
    save_tiny(root / "out" / "full_sft_32.pth", 300)  # vocabulary the demo tokenizer does not match
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = app.query_one(ChatTab)
        index = next(i for i, c in enumerate(tab.checkpoints) if c.path.name == "full_sft_32.pth")
        app.query_one("#chat-ckpt", Select).value = tab.checkpoints[index].path.as_posix()
        await pilot.click("#chat-load")
        await wait_for(pilot, lambda: "load failed" in status(app), "load failure shown")
        assert tab.session is None and "trained with 300" in status(app)
        assert not app.query_one("#chat-load").disabled


async def test_the_dashboard_mounts_the_chat_tab(make_app, project, vocab):
    save_tiny(project / "out" / "full_sft_64.pth", vocab)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("4")
        await pilot.pause()
        tab = app.query_one(ChatTab)  # not the "tab is not available" placeholder
        assert [c.path.name for c in tab.checkpoints] == ["full_sft_64.pth"]


async def test_new_checkpoints_appear_when_the_tab_is_shown_again_keeping_the_choice(root, vocab):
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = app.query_one(ChatTab)
        sft = str(root / "out" / "full_sft_64.pth")
        app.query_one("#chat-ckpt", Select).value = sft
        await pilot.pause()
        app.query_one("#chat-mode", Select).value = "continue"  # the user's choice for this checkpoint
        save_tiny(root / "out" / "full_sft_99.pth", vocab)
        tab.display = False
        await pilot.pause()
        tab.display = True
        await pilot.pause()
        assert "full_sft_99.pth" in [c.path.name for c in tab.checkpoints]
        assert app.query_one("#chat-ckpt", Select).value == sft
        assert app.query_one("#chat-mode", Select).value == "continue"


async def test_no_checkpoints_and_no_model_are_explained(tmp_path):
    app, seen = Host(tmp_path), Posted()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        await pilot.click("#chat-load")
        box = app.query_one("#chat-input", Input)
        box.focus()
        box.value = "hello"
        await pilot.press("enter")
        await wait_for(pilot, lambda: len(seen.notices()) >= 2, lambda: f"two notices ({seen.notices()})")
        assert len([n for n in seen.notices() if "No checkpoint found under out/ or runs/" in n]) == 2
        assert box.value == "hello"  # nothing to load it into: the question stays where it was typed
        assert messages(app) == []


async def test_a_question_typed_before_loading_loads_the_picked_checkpoint_then_is_asked(root, vocab):
    import os
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = app.query_one(ChatTab)
        await pilot.pause()
        app.query_one("#chat-input", Input).focus()
        await pilot.press(*"hi")
        await pilot.press("enter")
        await wait_for(pilot, lambda: tab.session is not None, "model loaded")
        await wait_for(pilot, lambda: not tab.generating and messages(app, "assistant"), "reply")
        assert [m.text for m in messages(app, "user")] == ["hi"]
        assert tab.loaded_path == tab.checkpoints[0].path and app.query_one("#chat-input", Input).value == ""
        # A newer checkpoint appearing does not move the picker off the model being chatted with.
        newer = root / "out" / "full_sft_98.pth"
        save_tiny(newer, vocab)
        os.utime(newer, (2e9, 2e9))
        tab.refresh_checkpoints()
        await pilot.pause()
        assert tab.checkpoints[0].path == newer and app.query_one("#chat-ckpt", Select).value == str(tab.loaded_path)


async def test_until_the_user_picks_one_the_picker_follows_the_newest_checkpoint(root, vocab):
    import os
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = app.query_one(ChatTab)
        picker = app.query_one("#chat-ckpt", Select)
        await pilot.pause()
        assert picker.value == str(tab.checkpoints[0].path)  # the run's step-40 checkpoint: the newest
        newer = root / "out" / "full_sft_99.pth"
        save_tiny(newer, vocab)
        os.utime(newer, (2e9, 2e9))  # newer than everything else, whatever the file system's clock
        tab.display = False
        await pilot.pause()
        tab.display = True  # shown again: a run has saved a newer checkpoint meanwhile
        await wait_for(pilot, lambda: picker.value == str(newer), "newest checkpoint picked")
        await pilot.pause()
        assert app.query_one("#chat-mode", Select).value == "chat"  # an SFT file: chat mode
        # Shown again with focus in the message field: Enter loads the picked checkpoint.
        assert app.focused is app.query_one("#chat-input")


async def test_escape_leaves_the_message_field_when_no_reply_streams(make_app, project):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("4")
        await wait_for(pilot, lambda: app.query(ChatTab) and app.query_one(ChatTab).is_mounted, "Chat tab")
        app.query_one("#chat-input", Input).focus()
        await pilot.press("escape")  # nothing to stop: the app's "leave field" runs, so digit keys work again
        assert app.focused is None
        await pilot.press("1")
        assert app.query_one("#tabs").active == "train"


async def test_an_adapter_beside_the_weights_can_be_put_on_and_taken_off(root):
    from model import apply_lora, load_minimind, save_lora
    from model.lora import lora_targets

    base = apply_lora(load_minimind(root / "out" / "full_sft_64.pth"))
    with torch.no_grad():
        for _, layer in lora_targets(base):
            layer.lora.B.weight.normal_()
    adapter = root / "out" / "lora" / "lora_identity_64.pth"
    save_lora(base, adapter)
    app = Host(root)
    async with app.run_test(size=(120, 40)) as pilot:
        tab = await load(pilot, app, index=0)  # the run checkpoint: no adapter beside it, no picker
        assert not tab.has_class("-adapters") and not app.query_one("#chat-lora", Select).display
        app.query_one("#chat-ckpt", Select).value = tab.checkpoints[1].path.as_posix()
        await pilot.pause()
        tab.action_load()  # (the Load button itself is tested above; its spot moves as the adapter picker shows)
        await wait_for(pilot, lambda: tab.loaded_path == tab.checkpoints[1].path and not tab.has_class("-loading"),
                       "out/full_sft_64.pth loaded")
        select = app.query_one("#chat-lora", Select)
        assert tab.has_class("-adapters") and select.display
        select.value = str(adapter)
        await wait_for(pilot, lambda: tab.session.adapter == adapter and not tab.has_class("-loading"), "adapter on")
        assert "+ LoRA lora_identity_64.pth" in status(app)
        select.clear()
        await wait_for(pilot, lambda: tab.session.adapter is None and not tab.has_class("-loading"), "adapter off")
        assert "LoRA" not in status(app)


@pytest.fixture
def gen3_root(tmp_path, chatml_tokenizer) -> Path:
    """A minimind-3 project: its tokenizer in model/ (as an upstream checkout), a tiny model in out/."""
    import shutil

    from model import make_config
    from model.generations import save_minimind

    shutil.copytree(chatml_tokenizer.path, tmp_path / "model")
    torch.manual_seed(0)
    model = MiniMindLM(make_config("gen3", hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                   num_key_value_heads=2, vocab_size=chatml_tokenizer.vocab_size,
                                   max_position_embeddings=256))
    save_minimind(model, tmp_path / "out" / "full_sft_768.pth")
    return tmp_path


REASONED = ("The user greets me.\n</think>\n\nHello!\n"
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "上海"}}\n</tool_call>')


async def test_minimind3_thinking_switch_and_a_reply_in_parts(gen3_root, chatml_tokenizer, monkeypatch):
    prompts = []

    def generate(model, ids, stop=None, **kwargs):  # the model's reply, once its prompt is recorded
        prompts.append(chatml_tokenizer.decode(ids))
        thinking = prompts[-1].endswith("<think>\n")
        cut = "cut me off" in prompts[-1].rsplit("<|im_start|>user", 1)[-1]
        yield from chatml_tokenizer.encode("Still thinking" if cut else REASONED if thinking else "Hi.")
        yield chatml_tokenizer.eos_token_id

    monkeypatch.setattr("minimind_tui.chat.session.generate", generate)
    app, seen = Host(gen3_root), Posted()
    async with app.run_test(size=(80, 24), message_hook=seen) as pilot:
        tab = await load(pilot, app)
        switch = app.query_one("#chat-thinking")
        assert tab.session.model.generation == "gen3" and switch.display and switch.value is False
        await send(pilot, app, "你好")
        assert prompts[-1].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # open_thinking off
        assert not messages(app, "assistant")[0].has_class("-thinking")

        await pilot.press("ctrl+t")  # thinking on, from the keyboard, while typing
        assert switch.value is True and any("Thinking on" in n for n in seen.notices())
        await send(pilot, app, "hi")
        assert prompts[-1].endswith("<|im_start|>assistant\n<think>\n")
        reply = messages(app, "assistant")[-1]
        shown = str(reply.query_one(".chat-body", Static).render())
        assert shown.startswith("model: Hello!") and '🔧 get_weather({"city": "上海"})' in shown
        assert "<tool_call>" not in shown and "</think>" not in shown and "The user greets me" not in shown
        block = reply.query_one(Collapsible)
        assert reply.has_class("-thinking")
        await wait_for(pilot, lambda: block.collapsed, "the reasoning folded away once the answer came")
        assert block.title.startswith("thought") and "The user greets me." in str(
            reply.query_one(".chat-thinking-text", Static).render())
        await pilot.press("ctrl+r")  # the last reply's reasoning, shown again
        await wait_for(pilot, lambda: not block.collapsed, "the reasoning shown again")
        await pilot.press("ctrl+y")
        assert app.copied[-1].startswith("Hello!") and "greets" not in app.copied[-1]
        # The history keeps the reasoning where minimind-3's template reads it.
        assert tab.session.history[-1]["reasoning_content"] == "The user greets me.\n"
        await send(pilot, app, "cut me off")  # the reply ends before its reasoning does
        cut = messages(app, "assistant")[-1]
        assert "cut off" in cut.query_one(Collapsible).title and not cut.query_one(Collapsible).collapsed


async def test_a_model_without_a_thinking_template_shows_no_switch(root):
    app = Host(root)
    async with app.run_test(size=(80, 24)) as pilot:
        tab = await load(pilot, app, index=1)
        assert tab.session.tokenizer.thinking_switch is None
        assert not app.query_one("#chat-thinking").display
        assert tab.check_action("toggle_thinking", ()) is False  # the key is not offered either
        await send(pilot, app, "hi")
        assert tab.session.settings.thinking is None
