"""DPO pairs in `data inspect` and the sample view: each side rendered and masked exactly as DPODataset does it,
by the tokenizer generation's rule; statistics count both sides, and trained tokens never exceed tokens."""
from __future__ import annotations

import json

import numpy as np
import pytest

from dataset import DPODataset
from dataset.jsonl import JsonlFile
from dataset.preview import sample_from_raw, token_views
from dataset.stats import detect_file_kind
from minimind_tui.cli import main


def side(*turns: str, reasoning: str | None = None) -> list[dict]:
    roles = ["user", "assistant"] * len(turns)
    out = [{"role": r, "content": t} for r, t in zip(roles, turns, strict=False)]
    if reasoning is not None:
        out[-1]["reasoning_content"] = reasoning
    return out


PAIRS = [
    {"chosen": side("你好", "你好！很高兴见到你。"), "rejected": side("你好", "走开。")},
    {"chosen": side("讲个故事", "从前有座山，山里有座庙。" * 8), "rejected": side("讲个故事", "不讲。")},
    {"chosen": side("a", "b", "c", "d"), "rejected": side("a", "b", "c", "e")},
    {"chosen": side("only a question"), "rejected": side("q", "a")},  # a side with nothing to train
]


@pytest.fixture
def dpo_file(tmp_path):
    path = tmp_path / "dpo.jsonl"
    path.write_text("".join(json.dumps(p, ensure_ascii=False) + "\n" for p in PAIRS), encoding="utf-8")
    return path


@pytest.fixture(params=["v1", "gen2", "gen3"])
def tokenizer(request, tiny_tokenizer, chatml2_tokenizer, chatml_tokenizer):
    return {"v1": tiny_tokenizer, "gen2": chatml2_tokenizer, "gen3": chatml_tokenizer}[request.param]


@pytest.mark.parametrize("max_len", [24, 96])
def test_each_sides_view_is_what_dpodataset_trains(dpo_file, tokenizer, max_len):
    assert detect_file_kind(JsonlFile(dpo_file)) == "dpo"
    ds = DPODataset(dpo_file, tokenizer, max_length=max_len)
    for i in range(len(PAIRS)):
        sample = sample_from_raw(JsonlFile(dpo_file).line(i), i, "dpo")
        sides = [b.title.split(" · ")[0] for b in sample.blocks]
        assert sides == sorted(sides) and sides[0] == "chosen" and sides[-1] == "rejected"
        views = token_views(sample, tokenizer, max_len)
        assert [name for name, _ in views] == ["chosen", "rejected"]
        item = ds[i]
        for name, tv in views:
            kept = [p for p in tv.pieces if not p.cut]
            ids = np.asarray([p.id for p in kept])
            x, y, mask = (item[f"{k}_{name}"].numpy() for k in ("x", "y", "mask"))
            padded = np.concatenate([x, y[-1:]])  # DPODataset's ids, padded to max_len
            assert (ids == padded[:len(ids)]).all() and (padded[len(ids):] == tokenizer.pad_token_id).all()
            # mask[t] says whether y[t] = ids[t + 1] is a target: the view marks position t + 1.
            assert [k for k, p in enumerate(kept) if p.trained] == list(np.flatnonzero(mask) + 1)
            assert tv.n_trained_tokens <= tv.n_kept and tv.n_trained == int(mask.sum())


def test_inspect_a_dpo_line_shows_both_sides_with_their_trained_tokens(dpo_file, chatml_tokenizer, capsys):
    assert main(["data", "inspect", str(dpo_file), "--tokenizer", str(chatml_tokenizer.path), "--line", "1",
                 "--max-seq-len", "96"]) == 0
    out = capsys.readouterr().out
    assert "(dpo, minimind-3 tokenizer)" in out and "── chosen · user ──\n你好" in out
    assert "── rejected · assistant ──\n走开。" in out
    chosen, rejected = out.split("══ chosen ══\n")[1].split("══ rejected ══\n")
    assert "[<think>\n\n</think>\n\n你好！很高兴见到你。<|im_end|>\n]" in chosen
    assert "[<think>\n\n</think>\n\n走开。<|im_end|>\n]" in rejected
    assert main(["data", "inspect", str(dpo_file), "--tokenizer", str(chatml_tokenizer.path), "--line", "1",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "dpo" and d["chosen"]["n_trained_tokens"] > d["rejected"]["n_trained_tokens"] > 0


def test_dpo_statistics_count_both_sides_and_never_more_trained_than_tokens(dpo_file, tokenizer, capsys):
    assert main(["data", "inspect", str(dpo_file), "--tokenizer", str(tokenizer.path), "--json",
                 "--max-seq-len", "128"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kind"] == "dpo" and d["samples"] == 4
    assert d["padded_tokens_per_epoch"] == 2 * 4 * 128  # two sequences a pair
    views = [token_views(sample_from_raw(JsonlFile(dpo_file).line(i), i, "dpo"), tokenizer, 128) for i in range(4)]
    assert d["tokens_per_epoch"] == sum(tv.n_kept for pair in views for _, tv in pair)
    assert d["trained_tokens_per_epoch"] == sum(tv.n_trained_tokens for pair in views for _, tv in pair)
    assert 0 < d["trained_tokens_per_epoch"] <= d["tokens_per_epoch"]
    # Its chosen side ends on a question: nothing to train (a v1 template's mask runs into padding instead).
    assert d["no_reply_examples"] == [4] and 4 in d["zero_trained_examples"] + d["pad_trained_examples"]
    assert main(["data", "inspect", str(dpo_file), "--tokenizer", str(tokenizer.path), "--max-seq-len", "128"]) == 0
    report = capsys.readouterr().out
    assert "token figures count each pair's chosen and rejected sides" in report
    assert f"truncated: {d['truncated']} sequences" in report
    assert main(["data", "validate", str(dpo_file)]) == 0
    assert "4 dpo samples, no bad lines, 1 with no reply" in capsys.readouterr().out
