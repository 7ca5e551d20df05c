"""Scenario 13, the watchdog's rules on a fake clock: N x the usual step time with a floor, saves excluded,
one event per stalled step, and a GPU held at 0% utilisation (CUDA only in a real run)."""
from __future__ import annotations

from minimind_tui.runs.summary import RunState
from minimind_tui.train.watchdog import StallWatchdog


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def watchdog(clock, util=None, factor=10.0, min_s=5.0):
    events = []
    dog = StallWatchdog(lambda kind, **f: events.append((kind, f)), factor=factor, min_s=min_s, clock=clock,
                        gpu_util=util)
    return dog, events


def steady(dog, clock, n=20, step_s=2.0):
    for k in range(1, n + 1):
        clock.t += step_s
        dog.stepped(k)


def test_no_step_for_n_times_the_usual_step_time():
    clock = Clock()
    dog, events = watchdog(clock)
    steady(dog, clock)  # usual step 2 s -> threshold 20 s
    clock.t += 19
    assert not dog.check() and events == []
    clock.t += 2
    assert dog.check() and events[0][0] == "stall"
    assert events[0][1]["step"] == 20 and events[0][1]["seconds_since_step"] == 21 and events[0][1]["threshold_s"] == 20
    clock.t += 100
    assert not dog.check() and len(events) == 1  # once per stalled step
    dog.stepped(21)
    clock.t += 25
    assert dog.check() and events[-1][1]["step"] == 21


def test_the_floor_applies_to_fast_steps_and_saves_do_not_count():
    clock = Clock()
    dog, events = watchdog(clock, min_s=5.0)
    steady(dog, clock, step_s=0.01)
    dog.pause()  # a 60 s save
    clock.t += 60
    assert not dog.check()
    dog.resume()
    clock.t += 4.9
    assert not dog.check()
    clock.t += 0.2
    assert dog.check()
    assert dog.threshold() == 5.0  # the save's time did not enter the usual step time


def test_nothing_before_the_first_step():
    clock = Clock()
    dog, events = watchdog(clock)
    clock.t += 10_000  # tokenising a huge file is announced by `prepare`, not a stall
    assert not dog.check() and events == []


def test_a_gpu_held_at_zero_percent_is_a_stall_before_the_step_threshold():
    clock = Clock()
    util = {"value": 95}
    dog, events = watchdog(clock, util=lambda: util["value"], factor=100.0, min_s=5.0)
    steady(dog, clock, step_s=1.0)  # threshold 100 s
    util["value"] = 0
    for _ in range(6):  # sampled every second, idle throughout
        clock.t += 1
        dog.check()
    assert events and events[0][1]["reason"].startswith("GPU idle (0% utilisation) for 5 s")
    state = RunState(run_dir=__import__("pathlib").Path("."))
    state.add([{"event": "stall", "time": 1.0, **events[0][1]}])
    assert state.notes[-1].startswith("stalled at step 20: GPU idle")


def test_a_busy_or_unreadable_gpu_is_not_idle():
    clock = Clock()
    readings = iter([0, 0, 40, 0, 0, None, 0, 0, 0] + [97] * 20)
    dog, events = watchdog(clock, util=lambda: next(readings), factor=100.0, min_s=3.0)
    steady(dog, clock, n=5, step_s=1.0)
    for _ in range(8):
        clock.t += 1
        dog.check()
    assert events == []  # never three idle seconds in a row
