"""The CUDA step path, checked on the CPU: what the hot loop may and may not do between log steps."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from testkit import TINY, train_here, write_demo_corpus

from minimind_tui.runs import layout
from minimind_tui.runs.reader import read_all
from minimind_tui.train import loop

CPU = [*TINY, "--device", "cpu", "--batch_size", "8", "--accumulation_steps", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    return write_demo_corpus(tmp_path_factory.mktemp("data"))


@pytest.fixture
def fused_adamw(monkeypatch):
    """AdamW as it runs on CUDA (fused=True), here on the CPU."""
    real = torch.optim.AdamW
    monkeypatch.setattr(torch.optim, "AdamW", lambda params, **kw: real(params, **{**kw, "fused": True}))


def events(run: Path, kind: str) -> list[dict]:
    return [e for e in read_all(run / layout.METRICS) if e["event"] == kind]


def test_the_host_waits_for_the_device_only_at_log_steps(tmp_path, data, monkeypatch, fused_adamw):
    """.item(), float() and bool() on a tensor wait for the GPU; the loop calls them only to report."""
    trainers = []
    real_step = loop.Trainer.train_step

    def train_step(self, *a, **kw):
        trainers[:] = [self]
        return real_step(self, *a, **kw)
    monkeypatch.setattr(loop.Trainer, "train_step", train_step)
    syncs: list[tuple[str, int]] = []

    def recording(name):
        real = getattr(torch.Tensor, name)

        def call(t, *a, **kw):
            caller = sys._getframe(1)
            if caller.f_code.co_filename == loop.__file__ and trainers:
                syncs.append((caller.f_code.co_name, trainers[0].step))
            return real(t, *a, **kw)
        monkeypatch.setattr(torch.Tensor, name, call)
    for name in ("item", "__float__", "__bool__"):  # int() is left out: the collator's masks are host tensors
        recording(name)
    code = train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *CPU, "--log_interval", "5",
                      "--save_interval", "1000", "--run_dir", "r", monkeypatch=monkeypatch)
    assert code == 0
    logged = [e["step"] for e in events(tmp_path / "r", "step")]
    assert logged == [1, 5, 10, 12]
    assert syncs and {step for _, step in syncs} <= set(logged), syncs
    assert {name for name, _ in syncs} <= {"_global_loss", "_log_step", "_report_nonfinite"}, syncs


def test_ddp_does_not_broadcast_buffers(monkeypatch):
    seen = {}

    class FakeDDP(torch.nn.Module):
        def __init__(self, module, **kw):
            super().__init__()
            seen.update(kw)
            self.module = module
    monkeypatch.setattr(torch.nn.parallel, "DistributedDataParallel", FakeDDP)
    from minimind_tui.train.distributed import DistInfo
    trainer = loop.Trainer({"compile": False, "chunk_tokens": None}, Path("r"), DistInfo(0, 0, 2), "cpu",
                           None, None, resuming=False)
    from model import LMConfig, MiniMindLM
    trainer.config = LMConfig(dim=32, n_layers=1, n_heads=4, vocab_size=64)
    assert isinstance(trainer._parallelize(MiniMindLM(trainer.config)), FakeDDP)
    assert seen["broadcast_buffers"] is False  # the RoPE tables are the same on every rank


@pytest.mark.parametrize("optimizer", ["fused, as on CUDA", "foreach, as on the CPU"])
def test_a_nan_gradient_skips_the_step_and_is_reported(tmp_path, data, monkeypatch, request, optimizer):
    if optimizer.startswith("fused"):
        request.getfixturevalue("fused_adamw")
    code = train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *CPU, "--save_interval", "3",
                      "--run_dir", "r", env={"MINIMIND_TUI_NAN_GRAD_AT_STEP": "3", "MINIMIND_TUI_STOP_AT_STEP": "6"},
                      monkeypatch=monkeypatch)
    assert code == 0
    run = tmp_path / "r"
    nonfinite = events(run, "nonfinite")
    assert [(e["step"], e["count"], e["nonfinite_steps"]) for e in nonfinite] == [(3, 1, 1)]
    by_step = {e["step"]: e for e in events(run, "step")}
    assert by_step[3]["grad_norm"] is None and by_step[2]["nonfinite_steps"] == 0
    assert [by_step[k]["nonfinite_steps"] for k in (3, 4, 5, 6)] == [1, 1, 1, 1]
    assert all(e["loss"] is not None for e in by_step.values())  # training went on, unharmed
    from model.checkpoint import load_state_dict
    after_skip = load_state_dict(run / "checkpoints" / "step_00000003" / "model.pth")
    for w in load_state_dict(run / "checkpoints" / "step_00000006" / "model.pth").values():
        assert torch.isfinite(w).all()
    # The skipped step touched nothing: step 3's checkpoint equals what step 2 left (no step-2 checkpoint
    # exists, so compare with a run that stops after step 2).
    assert train_here(tmp_path, "pretrain", "--data_path", str(data["pretrain"]), *CPU, "--run_dir", "two",
                      env={"MINIMIND_TUI_STOP_AT_STEP": "2"}, monkeypatch=monkeypatch) == 0
    before = load_state_dict(tmp_path / "two" / "checkpoints" / "step_00000002" / "model.pth")
    assert all(torch.equal(before[k], after_skip[k]) for k in before)
    assert any("skipped" in line and "inf or NaN" in line for line in (run / layout.LOG).read_text().splitlines())


def test_optimizer_state_is_untouched_by_a_skipped_step():
    for fused in (True, False):
        model = torch.nn.Linear(4, 4)
        opt = torch.optim.AdamW(model.parameters(), lr=0.1, fused=fused or None)
        scaler = torch.amp.GradScaler("cuda", enabled=False)
        model(torch.randn(2, 4)).sum().backward()
        assert loop.optimizer_step(opt, scaler, torch.tensor(1.0)).item() == 0.0
        weights = [p.detach().clone() for p in model.parameters()]
        state = {k: v.clone() for k, v in opt.state[model.weight].items()}
        for p in model.parameters():
            p.grad.fill_(float("nan"))
        assert loop.optimizer_step(opt, scaler, torch.tensor(float("nan"))).item() == 1.0
        assert all(torch.equal(a, b) for a, b in zip(weights, model.parameters(), strict=True)), fused
        assert all(torch.equal(state[k], opt.state[model.weight][k]) for k in state), fused
