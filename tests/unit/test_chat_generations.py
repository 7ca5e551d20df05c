"""`chat` for MiniMind2 and minimind-3: eval_llm.py's flags and defaults, Hugging Face folders, the thinking
switch through the template, replies with reasoning and tool calls, and the history as the template expects it."""
from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from minimind_tui.chat.session import ChatSession
from minimind_tui.chat.settings import CHAT, CONTINUE, GenerationSettings
from minimind_tui.cli import main
from model import MiniMindLM, make_config
from model.generations import minimind_state_dict, save_minimind


def tiny(generation: str, vocab: int, max_positions: int = 256) -> MiniMindLM:
    torch.manual_seed(0)
    return MiniMindLM(make_config(generation, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                  num_key_value_heads=2, vocab_size=vocab,
                                  max_position_embeddings=max_positions)).eval()


def fake_generation(monkeypatch, tokenizer, text: str, prompts: list | None = None) -> None:
    """The model "generates" `text` then eos; the prompts it was given are recorded."""
    def generate(model, ids, **kwargs):
        if prompts is not None:
            prompts.append(tokenizer.decode(ids))
        yield from tokenizer.encode(text) + [tokenizer.eos_token_id]

    monkeypatch.setattr("minimind_tui.chat.session.generate", generate)


@pytest.fixture
def project(tmp_path, chatml_tokenizer) -> Path:
    """A minimind-3 checkout: its tokenizer in model/, out/full_sft_768.pth and out/pretrain_768.pth (a tiny
    model under the file name eval_llm.py's default hidden size gives)."""
    shutil.copytree(chatml_tokenizer.path, tmp_path / "model")
    model = tiny("gen3", chatml_tokenizer.vocab_size)
    for name in ("full_sft_768.pth", "pretrain_768.pth"):
        save_minimind(model, tmp_path / "out" / name)
    return tmp_path


def run_chat(project: Path, *flags: str, stdin: str = "你好\n", monkeypatch) -> tuple[int, str, str]:
    import sys

    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    out, err = io.StringIO(), io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    code = main(["--root", str(project), "chat", "--device", "cpu", "--max_new_tokens", "4", *flags])
    return code, out.getvalue(), err.getvalue()


def test_minimind3_defaults_come_from_its_eval_llm(project, monkeypatch):
    loaded = {}
    real = __import__("minimind_tui.chat.loading", fromlist=["load_session"]).load_session

    def spy(*args, **kwargs):
        session = real(*args, **kwargs)
        loaded.update(weights=args[0], config=kwargs.get("config"), session=session)
        return session

    monkeypatch.setattr("minimind_tui.chat.loading.load_session", spy)
    code, out, err = run_chat(project, "--inference_rope_scaling", monkeypatch=monkeypatch)
    assert code == 0 and "👶: 你好" in out
    # No --hidden_size: model/'s tokenizer is minimind-3's, so its eval_llm.py's 768 names the file.
    assert loaded["weights"].name == "full_sft_768.pth" and "tokenizer" in err and "model/ folder" in err
    session = loaded["session"]
    assert session.model.generation == "gen3" and session.mode == CHAT
    assert loaded["config"] == {"inference_rope_scaling": True} and session.model.config.rope_scaling
    s = session.settings
    assert (s.top_p, s.max_new_tokens, s.thinking) == (0.95, 4, False)


def test_generation_defaults_of_each_eval_script():
    from argparse import Namespace

    from minimind_tui.commands.chat import settings

    flags = Namespace(temperature=0.85, top_p=None, top_k=0, repetition_penalty=1.0, max_new_tokens=None,
                      historys=4, system="", seed=None, int8=False, open_thinking=None)
    got = {g: settings(flags, g) for g in ("v1", "gen2", "gen3")}
    assert [(s.top_p, s.max_new_tokens, s.thinking) for s in got.values()] == [
        (0.85, 512, None), (0.85, 8192, None), (0.95, 8192, False)]
    assert got["gen3"].history_turns == 2  # --historys counts messages, as eval_llm.py
    assert settings(flags, "gen2", "reason").thinking is True  # eval_llm.py: enable_thinking for reason
    flags.open_thinking, flags.top_p = 1, 0.5
    assert (settings(flags, "gen3").thinking, settings(flags, "gen3").top_p) == (True, 0.5)


def test_open_thinking_reaches_the_template_and_the_reply_is_shown_in_parts(project, monkeypatch,
                                                                            chatml_tokenizer):
    prompts = []
    reply = "Let me think.\n</think>\n\nIt is sunny." \
            '<tool_call>\n{"name": "get_weather", "arguments": {"city": "上海"}}\n</tool_call>'
    fake_generation(monkeypatch, chatml_tokenizer, reply, prompts)
    code, out, _ = run_chat(project, "--open_thinking", "1", monkeypatch=monkeypatch)
    assert code == 0 and prompts[0].endswith("<|im_start|>assistant\n<think>\n")  # open_thinking=True
    assert "💭 Let me think.\n\nIt is sunny." in out and '🔧 get_weather({"city": "上海"})' in out
    assert "<think>" not in out and "</think>" not in out and "<tool_call>" not in out and "\x1b" not in out

    prompts.clear()
    assert run_chat(project, "--open_thinking", "0", "--show_speed", "0", monkeypatch=monkeypatch)[0] == 0
    assert prompts[0].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    out = run_chat(project, "--show_speed", "0", monkeypatch=monkeypatch)[1]
    assert "tok/s" not in out and "tok/s" in run_chat(project, monkeypatch=monkeypatch)[1]


def test_pretrain_weights_continue_bos_plus_prompt_without_template(project, monkeypatch, chatml_tokenizer):
    prompts = []
    fake_generation(monkeypatch, chatml_tokenizer, "world", prompts)
    code, out, err = run_chat(project, "--weight", "pretrain", stdin="hello\n", monkeypatch=monkeypatch)
    assert code == 0 and "pretrain_768.pth" in err and ", continue," in err
    assert prompts == ["<|im_start|>hello"] and "🤖️: helloworld" in out


def test_load_from_a_hugging_face_folder_uses_its_weights_and_tokenizer(project, tmp_path, monkeypatch,
                                                                         chatml_tokenizer):
    from safetensors.torch import save_file

    from model.config import upstream_config

    model = tiny("gen3", chatml_tokenizer.vocab_size)
    folder = tmp_path / "MiniMind-HF"
    shutil.copytree(chatml_tokenizer.path, folder)
    state = minimind_state_dict(model)
    del state["lm_head.weight"]  # transformers saves a tied matrix once
    save_file(state, str(folder / "model.safetensors"))
    config = {"model_type": "minimind", "architectures": ["MiniMindForCausalLM"], **upstream_config(model.config)}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    shutil.rmtree(project / "out")  # nothing else to load
    code, out, err = run_chat(project, "--load_from", str(folder), monkeypatch=monkeypatch)
    assert code == 0 and "MiniMind-HF: 0.0M params, chat" in err and "the model folder's own" in err
    assert "👶: 你好" in out


@pytest.fixture(params=["gen2", "gen3"])
def reference_session(request, shared_dir):
    """A tiny model of the generation with its real tokenizer (../shared/tokenizers)."""
    from model import Tokenizer

    path = shared_dir / "tokenizers" / request.param
    if not (path / "tokenizer.json").is_file():
        pytest.skip(f"reference {request.param} tokenizer absent")
    tokenizer = Tokenizer.from_dir(path)
    model = tiny(request.param, tokenizer.vocab_size, max_positions=512)
    settings = GenerationSettings(history_turns=1, thinking=request.param == "gen3" or None)
    return ChatSession(model, tokenizer, settings=settings)


def test_the_history_renders_each_reply_as_the_model_produced_it(reference_session, monkeypatch):
    """The next prompt holds the earlier exchange exactly as it was generated: minimind-3's template gets the
    reasoning as `reasoning_content` (its own rules place it), MiniMind2's the text with its think block."""
    session, tok = reference_session, reference_session.tokenizer
    thinking = session.tokenizer.generation == "gen3"  # the prompt opens the think block
    reply = ("I should greet back.\n</think>\n\nHello!" if thinking else
             "<think>\nI should greet back.\n</think>\n\nHello!")
    prompts = []
    fake_generation(monkeypatch, tok, reply, prompts)
    session.answer("hi")
    assert session.parsed.parts().answer == "Hello!" and session.parsed.parts().thinking == "I should greet back."
    if thinking:
        assert session.history[-1] == {"role": "assistant", "content": "\n\nHello!",
                                       "reasoning_content": "I should greet back.\n"}
    else:
        assert session.history[-1] == {"role": "assistant", "content": reply}
    session.answer("and now?")
    assert prompts[1].startswith(prompts[0] + reply + tok.eos_token + "\n")


def test_minimind2s_switch_is_enable_thinking(shared_dir):
    from model import Tokenizer

    path = shared_dir / "tokenizers" / "gen2"
    if not (path / "tokenizer.json").is_file():
        pytest.skip("reference gen2 tokenizer absent")
    tok = Tokenizer.from_dir(path)
    session = ChatSession(tiny("gen2", tok.vocab_size), tok, settings=GenerationSettings(thinking=False))
    assert tok.thinking_switch == "enable_thinking" and not tok.takes_reasoning
    assert tok.decode(session.prompt_ids("hi")).endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    session.settings.thinking = None  # nothing passed: MiniMind2's eval_llm.py default
    assert tok.decode(session.prompt_ids("hi")).endswith("<|im_start|>assistant\n")


def test_v1_tokenizers_have_no_thinking_switch_and_continue_as_before(tiny_tokenizer, monkeypatch):
    session = ChatSession(tiny("gen2", tiny_tokenizer.vocab_size), tiny_tokenizer,
                          settings=GenerationSettings(thinking=True))
    assert tiny_tokenizer.thinking_switch is None and session.template_kwargs() == {}
    fake_generation(monkeypatch, tiny_tokenizer, " <think>x</think> y ")
    session.answer("hi")
    assert session.history[-1] == {"role": "assistant", "content": "<think>x</think> y"}
    session.mode = CONTINUE
    assert session.prompt(" hi") == ([tiny_tokenizer.bos_token_id] + tiny_tokenizer.encode(" hi"), False)


def test_a_minimind3_run_checkpoint_loads_with_what_its_meta_recorded(tmp_path, chatml_tokenizer):
    from minimind_tui.chat.loading import load_session

    model = tiny("gen3", chatml_tokenizer.vocab_size, max_positions=200)  # not told by the shapes
    ck = tmp_path / "runs" / "r" / "checkpoints" / "step_00000010"
    save_minimind(model, ck / "model.pth")
    meta = {"mode": "sft", "step": 10, "tokenizer": str(chatml_tokenizer.path), "config": model.config.to_dict()}
    (ck / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
    session = load_session(ck / "model.pth", root=tmp_path, device="cpu")
    assert session.model.generation == "gen3" and session.model.config.max_seq_len == 200
    assert session.mode == CHAT and session.tokenizer.path == chatml_tokenizer.path
