"""Validation loss: --eval_ratio holds out a seeded share of the data (never trained on), --eval_data evaluates
another file; `eval` events every --eval_interval steps and at the end, with the training loss function."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from testkit import TINY, train_here, write_demo_corpus

from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all
from minimind_tui.train.data import held_out_split


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_demo_corpus(tmp_path_factory.mktemp("data"))


def events(run_dir, kind):
    return [e for e in read_all(run_dir / layout.METRICS) if e["event"] == kind]


def test_the_held_out_share_is_fixed_by_the_seed_and_disjoint_from_training():
    train, held = held_out_split(96, 0.25, seed=7)
    assert len(held) == 24 and len(train) == 72
    assert sorted({*train.tolist(), *held.tolist()}) == list(range(96))
    again_train, again_held = held_out_split(96, 0.25, seed=7)
    assert np.array_equal(held, again_held) and np.array_equal(train, again_train)
    assert not np.array_equal(held, held_out_split(96, 0.25, seed=8)[1])
    assert len(held_out_split(10, 0.001, seed=1)[1]) == 1  # a tiny share still holds one sample


def test_eval_ratio_logs_the_held_out_loss_at_the_interval_and_at_the_end(tmp_path, data, monkeypatch):
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "8",
                      "--accumulation_steps", "1", "--eval_ratio", "0.25", "--eval_interval", "3",
                      "--seed", "7", "--run_dir", "r", "--tokenizer", str(_demo_tokenizer()),
                      monkeypatch=monkeypatch) == 0
    run = tmp_path / "r"
    start = events(run, "start")[0]
    assert start["total"] == 72 // 8  # only the 72 training samples make steps
    evals = events(run, "eval")
    assert [e["step"] for e in evals] == [3, 6, 9]  # step 9 is the last: evaluated once, at the end
    assert all(e["samples"] == 24 for e in evals)

    # The last eval is the final weights' loss over the held-out samples, summed then divided by the mask count.
    from dataset.datasets import PretrainDataset
    from model import Tokenizer
    from model.checkpoint import load_model

    model = load_model(layout.complete_checkpoints(run)[-1] / layout.MODEL_FILE, n_heads=4)
    model.eval()
    ds = PretrainDataset(data["pretrain"], Tokenizer.from_dir(_demo_tokenizer()), max_length=48)
    _, held = held_out_split(len(ds), 0.25, seed=7)
    ce = count = 0.0
    with torch.no_grad():
        for i in held:
            X, Y, mask = (torch.as_tensor(np.asarray(t))[None] for t in ds[int(i)])
            n = float(mask.sum())
            ce += float(model(X, labels=Y, loss_mask=mask).loss) * n
            count += n
    assert evals[-1]["tokens"] == count
    assert evals[-1]["loss"] == pytest.approx(ce / count, rel=1e-4)


def test_eval_data_evaluates_another_file(tmp_path, data, monkeypatch):
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *TINY, "--batch_size", "16",
                      "--accumulation_steps", "1", "--eval_data", str(data["pretrain"]), "--eval_interval", "2",
                      "--run_dir", "r", monkeypatch=monkeypatch) == 0
    evals = events(tmp_path / "r", "eval")
    assert [e["step"] for e in evals] == [2, 4, 6] and evals[0]["samples"] == 96
    assert events(tmp_path / "r", "start")[0]["total"] == 6  # nothing held out of the training file
    assert evals[-1]["loss"] < evals[0]["loss"]  # the training file itself: its loss falls


def _demo_tokenizer():
    from minimind_tui.demo import demo_tokenizer_dir
    return demo_tokenizer_dir()
