"""The `step` event's arithmetic: memory peaks per reporting interval."""
from __future__ import annotations

import torch

from minimind_tui.train.metrics import GIB, StepMeter


def test_memory_peaks_are_per_interval_allocated_and_reserved_in_gib(monkeypatch):
    allocated = iter([1.5 * GIB, 0.25 * GIB])  # the second interval's peak is lower: a reset must show it
    reserved = iter([2 * GIB, 1 * GIB])
    resets = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: next(allocated))
    monkeypatch.setattr(torch.cuda, "max_memory_reserved", lambda device=None: next(reserved))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: resets.append(device))
    meter = StepMeter(total=10, clock=iter(range(100)).__next__)
    first = meter.event(1, 0, 2.0, 1e-3, 1.0, "cuda:1")
    second = meter.event(2, 0, 2.0, 1e-3, 1.0, "cuda:1")
    assert (first["mem_peak_gb"], first["mem_reserved_gb"]) == (1.5, 2.0)
    assert (second["mem_peak_gb"], second["mem_reserved_gb"]) == (0.25, 1.0)
    assert resets == ["cuda:1", "cuda:1"]


def test_no_memory_fields_off_cuda():
    fields = StepMeter(total=1).event(1, 0, 2.0, 1e-3, 1.0, "cpu")
    assert fields["mem_peak_gb"] is None and fields["mem_reserved_gb"] is None
