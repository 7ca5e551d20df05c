"""A run's curves are ordered by step: a resume's replayed steps replace the old ones and are marked; tokens seen
and the header's averaged throughput and ETA come from the same events."""
from __future__ import annotations

import math

import pytest

from minimind_tui.app.curves import RunSeries, loss_stats


def step(n: int, loss: float, **extra) -> dict:
    return {"event": "step", "step": n, "loss": loss, "lr": 1e-3, "grad_norm": 1.0, "tokens_per_s": 100.0,
            "step_s": 2.0, "mem_peak_gb": None, "rss_gb": 0.5, **extra}


def start(resumed_from=None) -> dict:
    return {"event": "start", "resumed_from": resumed_from}


def test_a_resume_from_an_earlier_checkpoint_replaces_the_steps_after_it_and_is_marked():
    s = RunSeries()
    s.add([start(), *(step(i, 10.0 - i) for i in range(1, 9))])          # first session: steps 1..8
    s.add([{"event": "end", "status": "stopped"}, start(resumed_from=5)])  # resumed from the step-5 checkpoint
    assert list(s.steps) == [1, 2, 3, 4, 5] and s.resumes == [5]
    s.add([step(i, 100.0 + i) for i in range(6, 11)])                      # replayed 6..8, then new 9..10
    c = s.snapshot()
    assert list(c.steps) == list(range(1, 11))
    assert list(c.values("loss")) == [9, 8, 7, 6, 5, 106, 107, 108, 109, 110]  # the old 6..8 are gone
    assert c.resumes == (5,)


def test_a_second_resume_from_before_the_first_drops_the_first_marker():
    s = RunSeries()
    s.add([start(), *(step(i, 1.0) for i in range(1, 11)), start(resumed_from=8),
           *(step(i, 2.0) for i in range(9, 13)), start(resumed_from=4)])
    assert s.resumes == [4] and list(s.steps) == [1, 2, 3, 4]


def test_steps_going_back_without_a_resume_event_still_end_up_in_step_order():
    s = RunSeries()
    s.add([step(1, 3.0), step(2, 2.0), step(3, 1.0), step(2, 5.0)])
    assert list(s.steps) == [1, 2] and list(s.columns["loss"]) == [3.0, 5.0]


def test_replaying_the_same_events_twice_changes_nothing():
    events = [start(), *(step(i, 1.0 / i) for i in range(1, 6)), start(resumed_from=3),
              *(step(i, 2.0) for i in range(4, 8))]
    once, twice = RunSeries(), RunSeries()
    once.add(events)
    twice.add(events)
    twice.add(events)
    assert list(once.steps) == list(twice.steps) and list(once.columns["loss"]) == list(twice.columns["loss"])
    assert once.resumes == twice.resumes == [3]


def test_missing_and_null_fields_are_gaps_and_junk_events_are_ignored():
    s = RunSeries()
    s.add([{"event": "step", "step": 1, "loss": None}, {"event": "step", "step": "2"}, {"event": "step"},
           {"event": "start", "resumed_from": True}, {"event": "other"}])
    assert list(s.steps) == [1] and math.isnan(s.columns["loss"][0]) and s.resumes == []
    s.add([step(2, 1.0, lr="fast"), step(3, 0.5)])  # a hand-edited line: NaN there, and no column skews
    assert [len(c) for c in s.columns.values()] == [3] * 6
    assert math.isnan(s.columns["lr"][1]) and s.columns["lr"][2] == 1e-3
    assert list(s.columns["loss"][1:]) == [1.0, 0.5] and list(s.columns["grad_norm"][1:]) == [1.0, 1.0]


def test_memory_is_the_gpu_peak_when_there_is_one_else_the_trainers_rss():
    cpu = RunSeries()
    cpu.add([step(1, 1.0)])
    assert list(cpu.snapshot().values("mem")) == [0.5] and cpu.snapshot().mem_label() == "host RSS GB"
    gpu = RunSeries()
    gpu.add([step(1, 1.0, mem_peak_gb=3.25)])
    assert list(gpu.snapshot().values("mem")) == [3.25] and gpu.snapshot().mem_label() == "GPU peak GB"


def test_tokens_seen_add_up_each_logging_window_including_after_a_resume():
    s = RunSeries()
    # Logged every 2 steps: each event covers 2 steps of 2 s at 100 tok/s = 400 tokens.
    s.add([start(), step(2, 1.0), step(4, 1.0), step(6, 1.0), start(resumed_from=4), step(6, 1.0),
           step(8, 1.0)])
    c = s.snapshot()
    assert c.tokens_seen() == [400.0, 800.0, 1200.0, 1600.0]
    assert c.x(by_tokens=True) == c.tokens_seen() and list(c.x(by_tokens=False)) == [2.0, 4.0, 6.0, 8.0]
    assert c.x_at_step(4, by_tokens=True) == 800.0 and c.x_at_step(4, by_tokens=False) == 4.0


def test_rates_average_the_last_minute_of_the_current_session():
    s = RunSeries()
    s.add([start(), *(step(i, 1.0, tokens_per_s=1000.0, step_s=1.0) for i in range(1, 101)),
           step(101, 1.0, tokens_per_s=10.0, step_s=100.0)])  # one slow step (a save): 100 s, 1000 tokens
    tokens_per_s, s_per_step = s.snapshot().rates(window_s=60)
    assert tokens_per_s == pytest.approx(1000.0 / 100.0)  # the window is filled by that step alone
    tokens_per_s, s_per_step = s.snapshot().rates(window_s=160)
    assert tokens_per_s == pytest.approx((60 * 1000 + 1000) / 160)  # 60 fast steps plus the slow one
    assert s_per_step == pytest.approx(160 / 61)
    s.add([start(resumed_from=101)])
    assert s.snapshot().rates() is None  # nothing timed since the resume yet: the header falls back


def test_snapshots_are_copies_and_reused_while_nothing_changed():
    s = RunSeries()
    s.add([step(1, 2.0)])
    first = s.snapshot()
    assert s.snapshot() is first
    s.add([step(2, 1.0)])
    second = s.snapshot()
    assert second is not first and len(first) == 1 and len(second) == 2


def test_loss_stats_are_the_final_and_lowest_loss():
    s = RunSeries()
    assert loss_stats(s.snapshot()) == (None, None)
    s.add([step(1, 3.0), step(2, 1.5), step(3, 2.0), step(4, math.nan)])
    assert loss_stats(s.snapshot()) == (2.0, 1.5)
