"""Chat logic without UI: prompts, history, stats, checkpoint/tokenizer resolution, probes and the CLI."""
import io
import json
import threading
from pathlib import Path

import pytest
import torch

from minimind_tui.chat.loading import load_session, resolve_tokenizer_dir, weights_for_mode
from minimind_tui.chat.probes import Probe, probes
from minimind_tui.chat.session import ChatSession
from minimind_tui.chat.settings import CHAT, CONTINUE, GenerationSettings, mode_for_training_mode
from minimind_tui.cli import main
from minimind_tui.errors import UserError
from model import LMConfig, MiniMindLM, Tokenizer
from model.tokenizer import render_chat

DEMO_TOKENIZER = Path(__file__).resolve().parents[2] / "minimind_tui" / "assets" / "demo_tokenizer"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    if not (DEMO_TOKENIZER / "tokenizer.json").is_file():
        pytest.skip("bundled demo tokenizer not built yet")
    return Tokenizer.from_dir(DEMO_TOKENIZER)


def tiny_model(vocab: int, max_seq_len: int = 256) -> MiniMindLM:
    torch.manual_seed(0)
    return MiniMindLM(LMConfig(dim=64, n_layers=2, vocab_size=vocab, max_seq_len=max_seq_len)).eval()


@pytest.fixture
def session(tokenizer) -> ChatSession:
    settings = GenerationSettings(temperature=0, max_new_tokens=12)
    return ChatSession(tiny_model(tokenizer.vocab_size), tokenizer, settings=settings)


@pytest.fixture
def root(tmp_path, tokenizer) -> Path:
    """A project folder with MiniMind-style out/*.pth files (no metadata)."""
    (tmp_path / "out").mkdir()
    state = tiny_model(tokenizer.vocab_size).state_dict()
    torch.save(state, tmp_path / "out" / "full_sft_64.pth")
    torch.save(state, tmp_path / "out" / "pretrain_64.pth")
    return tmp_path


def test_chat_prompt_is_the_template_with_system_prompt(session, tokenizer):
    session.settings.system_prompt = "Be brief."
    expected = render_chat([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
    assert session.prompt_ids("hi") == tokenizer.encode(expected)
    session.settings.system_prompt = ""
    assert tokenizer.decode(session.prompt_ids("hi")).startswith("<s>system\n你是 MiniMind")


def test_history_turns_decide_what_is_sent_again(session, tokenizer):
    session.answer("first question")
    session.answer("second question")
    assert [m["role"] for m in session.history] == ["user", "assistant"] * 2
    single = tokenizer.decode(session.prompt_ids("third"))
    assert "first question" not in single and "second question" not in single
    session.settings.history_turns = 1
    one = tokenizer.decode(session.prompt_ids("third"))
    assert "second question" in one and "first question" not in one
    assert session.history[-1]["content"] in one
    session.new_chat()
    assert session.history == [] and "second" not in tokenizer.decode(session.prompt_ids("third"))


def test_oldest_turns_are_dropped_when_the_context_is_full(tokenizer):
    settings = GenerationSettings(temperature=0, max_new_tokens=32, history_turns=10)
    s = ChatSession(tiny_model(tokenizer.vocab_size, max_seq_len=128), tokenizer, settings=settings)
    s.history = sum(([{"role": "user", "content": f"question {i} " + "word " * 8},
                      {"role": "assistant", "content": f"answer {i}"}] for i in range(6)), [])
    ids = s.prompt_ids("last")
    text = tokenizer.decode(ids)
    assert len(ids) <= 128 - 32
    assert "question 5" in text and "question 0" not in text and text.endswith("last</s>\n<s>assistant\n")


def test_continuation_mode_starts_from_bos_without_template(session, tokenizer):
    session.mode = CONTINUE
    assert session.prompt_ids("北京是") == [tokenizer.bos_token_id] + tokenizer.encode("北京是")
    session.answer("北京是")
    assert session.history == []  # continuation has no conversation


def test_reply_streams_the_greedy_tokens_and_counts_them(session, tokenizer):
    ids = session.prompt_ids("hello")
    text = session.answer("hello", remember=False)
    new = session.model.generate(ids, max_new_tokens=12, temperature=0,
                                 eos_token_id=tokenizer.eos_token_id)[0, len(ids):].tolist()
    if tokenizer.eos_token_id in new:
        new = new[:new.index(tokenizer.eos_token_id)]
    assert text == tokenizer.decode(new, skip_special_tokens=True)
    stats = session.last_stats
    assert stats.prompt_tokens == len(ids) and 1 <= stats.new_tokens <= 12
    assert stats.tokens_per_s > 0 and stats.first_token_s is not None and not stats.stopped
    assert session.history == []


def test_stopping_keeps_the_partial_answer_in_history(session):
    session.settings.max_new_tokens = 200
    session.settings.temperature = 1.0
    session.settings.seed = 0
    stop = threading.Event()
    pieces = []
    for piece in session.reply("tell me a story", stop=stop):
        pieces.append(piece)
        stop.set()
    assert session.last_stats.stopped and session.last_stats.new_tokens < 200
    assert session.history[-1]["content"] == "".join(pieces).strip()


def test_settings_validation_names_the_setting():
    with pytest.raises(ValueError, match="top_p"):
        GenerationSettings(top_p=0).validate()
    with pytest.raises(ValueError, match="temperature"):
        GenerationSettings(temperature=-1).validate()


def test_mode_from_training_mode_or_file_name():
    assert mode_for_training_mode("pretrain") == CONTINUE
    assert mode_for_training_mode("sft") == CHAT
    assert mode_for_training_mode(None, "pretrain_512.pth") == CONTINUE
    assert mode_for_training_mode(None, "full_sft_512_moe.pth") == CHAT


def test_weights_naming_follows_minimind(tmp_path):
    assert weights_for_mode(tmp_path, 0, 512, False).name == "pretrain_512.pth"
    assert weights_for_mode(tmp_path, 1, 640, True).name == "full_sft_640_moe.pth"
    with pytest.raises(UserError):
        weights_for_mode(tmp_path, 3, 512, False)


def test_tokenizer_resolution_order(root, tokenizer, tmp_path):
    weights = root / "out" / "full_sft_64.pth"
    assert resolve_tokenizer_dir(weights, root)[1] == "the bundled demo tokenizer"
    tokenizer.save(root / "model" / "minimind_tokenizer")
    assert resolve_tokenizer_dir(weights, root)[0] == root / "model" / "minimind_tokenizer"
    # A run checkpoint: meta.json's tokenizer wins over the root's.
    recorded = tmp_path / "recorded_tok"
    tokenizer.save(recorded)
    ck = make_run_checkpoint(root, tokenizer, meta_tokenizer=str(recorded))
    assert resolve_tokenizer_dir(ck, root) == (recorded, "recorded with the weights")
    assert resolve_tokenizer_dir(ck, root, explicit="elsewhere") == (Path("elsewhere"), "--tokenizer")


def make_run_checkpoint(root: Path, tokenizer, meta_tokenizer: str | None, mode: str = "sft") -> Path:
    run = root / "runs" / "20260101-000000-sft"
    ck = run / "checkpoints" / "step_00000010"
    ck.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"mode": mode, "settings": {"tokenizer": None}}))
    model = tiny_model(tokenizer.vocab_size, max_seq_len=200)
    torch.save(model.state_dict(), ck / "model.pth")
    meta = {"mode": mode, "step": 10, "tokenizer": meta_tokenizer, "config": model.config.to_dict()}
    (ck / "meta.json").write_text(json.dumps(meta))
    (ck / "COMPLETE").write_text("")
    return ck / "model.pth"


def test_load_session_uses_recorded_config_and_mode(root, tokenizer):
    ck = make_run_checkpoint(root, tokenizer, meta_tokenizer=None, mode="pretrain")
    s = load_session(ck, root=root, device="cpu")
    assert s.mode == CONTINUE and s.model.config.max_seq_len == 200  # not inferable from shapes
    assert "0.2M params, continue, on cpu" in s.describe()


def test_mismatched_tokenizer_is_refused_with_advice(root, tmp_path, shared_dir):
    with pytest.raises(UserError, match="has 6400 tokens but full_sft_64.pth was trained with") as e:
        load_session(root / "out" / "full_sft_64.pth", root=root, tokenizer_dir=shared_dir / "minimind_tokenizer")
    assert "--tokenizer DIR" in str(e.value)


def test_missing_weights_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no such weights file"):
        load_session(tmp_path / "out" / "full_sft_512.pth", root=tmp_path)


def test_probe_sets_and_checking():
    assert len(probes(CHAT)) >= 5 and len(probes(CONTINUE)) >= 5
    demo = probes(CHAT, demo=True)
    scored = [p for p in demo if p.expected is not None]
    assert scored and all(p.prompt.endswith(("？", "?")) for p in scored)
    assert all(p.prompt.endswith(("等于", "equals")) for p in probes(CONTINUE, demo=True) if p.expected)
    assert Probe("2 加 7 等于多少？", "9").check("2 加 7 等于 9。然后 3 加 6 等于 9。") is True
    assert Probe("q", "9").check("等于 8。 9 plus 0 equals 9.") is False  # only the first sentence counts
    assert Probe("q").check("anything") is None


def test_cli_reads_prompts_from_stdin(root, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("你好\n\nWhat is 2 plus 7?\n"))
    code = main(["--root", str(root), "chat", "--dim", "64", "--max_new_tokens", "5", "--temperature", "0",
                 "--device", "cpu", "--int8"])
    out = capsys.readouterr()
    assert code == 0
    assert out.out.count("👶: ") == 2 and "👶: What is 2 plus 7?" in out.out
    assert "tok/s" in out.out and "full_sft_64.pth: 0.2M params, chat, on cpu, int8" in out.err


def test_cli_auto_runs_probes_and_scores_demo_questions(root, capsys):
    code = main(["--root", str(root), "chat", "--model_mode", "0", "--dim", "64", "--auto", "--demo_probes",
                 "--max_new_tokens", "3", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("👶: ") == len(probes(CONTINUE, demo=True))
    assert "held-out questions answered correctly:" in out


def test_cli_missing_weights_exits_2_with_one_line(tmp_path, capsys):
    code = main(["--root", str(tmp_path), "chat", "--dim", "768", "--auto"])
    err = capsys.readouterr().err
    assert code == 2 and "full_sft_768.pth: no such weights file" in err and "Traceback" not in err


def test_cli_ckpt_accepts_a_run_folder(root, tokenizer, capsys):
    ck = make_run_checkpoint(root, tokenizer, meta_tokenizer=None, mode="pretrain")
    code = main(["--root", str(root), "chat", "--ckpt", str(ck.parents[2]), "--auto", "--max_new_tokens", "2",
                 "--device", "cpu"])
    captured = capsys.readouterr()
    assert code == 0 and "model.pth: 0.2M params, continue, on cpu" in captured.err
    assert captured.out.count("👶: ") == len(probes(CONTINUE))


def test_a_failed_reply_does_not_join_the_history(session, monkeypatch):
    from model.generate import GenerationError

    def failing(*args, **kwargs):
        raise GenerationError("the prompt has too many tokens")
        yield  # a generator, like the real one

    monkeypatch.setattr("minimind_tui.chat.session.generate", failing)
    with pytest.raises(GenerationError):
        session.answer("hello")
    assert session.history == []
