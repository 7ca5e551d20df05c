"""What the Runs tab's charts draw: downsampling, EMA, the y range after the opening drop, log scale, ticks."""
from __future__ import annotations

import math

import pytest

from minimind_tui.app.plotting import (
    ChartSettings,
    Series,
    clamp,
    downsample,
    ema,
    labels,
    log10s,
    log_ticks,
    nice_ticks,
    plan,
    y_range,
)


def test_downsampling_keeps_each_buckets_extremes_and_mean():
    xs = list(range(100))
    ys = [float(i % 10) for i in xs]
    ys[42] = 1000.0  # a spike a mean alone would hide
    b = downsample(xs, ys, 10)
    assert len(b.x) == 10
    assert b.hi[4] == 1000.0 and b.lo[4] == 0.0
    assert b.mean[0] == pytest.approx(4.5) and b.x[0] == pytest.approx(4.5)
    assert max(b.hi) == 1000.0 and min(b.lo) == 0.0


def test_downsampling_buckets_by_x_not_by_count_and_skips_gaps_and_nans():
    xs = [1, 2, 3, 4, 100, 101]  # a gap (a resume's replay, a log interval change): its buckets stay empty
    ys = [1.0, math.nan, 3.0, 4.0, 5.0, 6.0]
    b = downsample(xs, ys, 4)
    assert b.x == [pytest.approx(8 / 3), 100.5] and b.mean == [pytest.approx(8 / 3), 5.5]


def test_short_series_come_back_as_they_are():
    b = downsample([1, 2, 3], [3.0, 2.0, math.nan], 10)
    assert b.x == [1, 2] and b.lo == b.hi == b.mean == [3.0, 2.0]
    assert downsample([], [], 10).x == []


def test_downsampling_100k_points_gives_one_bucket_per_column():
    xs = list(range(100_000))
    ys = [math.sin(i / 1000) for i in xs]
    b = downsample(xs, ys, 150)
    assert len(b.x) == 150 and b.x == sorted(b.x)
    assert all(lo <= m <= hi for lo, m, hi in zip(b.lo, b.mean, b.hi, strict=True))


def test_ema_is_debiased_and_zero_weight_is_the_raw_series():
    assert ema([5.0, 5.0, 5.0], 0.9) == pytest.approx([5.0, 5.0, 5.0])  # not pulled toward 0 at the start
    assert ema([1.0, 2.0], 0.0) == [1.0, 2.0]
    smoothed = ema([0.0, 10.0, 0.0, 10.0, 0.0, 10.0], 0.6)
    assert max(smoothed[2:]) - min(smoothed[2:]) < 10 * 0.6  # the saw-tooth is damped
    assert smoothed[1] == pytest.approx(10 * 0.4 / (1 - 0.6 ** 2))


def test_ema_carries_over_nan_points():
    out = ema([1.0, math.nan, 1.0], 0.5)
    assert out[0] == pytest.approx(1.0) and out[1] == pytest.approx(1.0) and out[2] == pytest.approx(1.0)


def loss_curve(n: int) -> tuple[list[float], list[float]]:
    xs = [float(i) for i in range(1, n + 1)]
    return xs, [2.0 + 6.8 * math.exp(-x / (n / 30)) + 0.3 * (1 - x / n) for x in xs]


def test_the_opening_drop_does_not_flatten_the_rest_of_the_run():
    xs, ys = loss_curve(1000)
    lo, hi = y_range(xs, ys)
    tail = ys[250:]
    assert (max(tail) - min(tail)) / (hi - lo) > 0.5  # the slow part gets most of the height...
    assert hi < ys[0] and lo <= min(ys)                 # ...the opening drop leaves through the top
    whole = (max(tail) - min(tail)) / (max(ys) - min(ys))
    assert whole < 0.1                                   # (scaled to everything, it would be a flat line)


def test_a_spike_is_cut_but_the_newest_value_always_shows():
    xs = [float(i) for i in range(200)]
    ys = [1.0 + 0.01 * (i % 5) for i in range(200)]
    ys[150] = 50.0
    assert y_range(xs, ys)[1] < 2
    ys[-1] = 40.0  # diverging right now: must be in view
    assert y_range(xs, ys)[1] >= 40.0
    assert y_range(xs, ys, keep=[60.0])[1] >= 60.0  # another compared run's newest value


def test_short_or_flat_series_get_their_whole_range_with_room():
    lo, hi = y_range([1, 2, 3], [8.0, 5.0, 3.0])
    assert lo < 3.0 and hi > 8.0
    lo, hi = y_range([1, 2, 3], [1.0, 1.0 + 1e-12, 1.0])  # float noise on a constant: a flat line
    assert hi - lo >= 0.02
    assert y_range([], []) == (0.0, 1.0)


def test_clamp_puts_points_outside_the_range_on_its_edge():
    out = clamp([0.0, 5.0, 10.0, math.nan], 1.0, 9.0)
    assert out[:3] == [1.0, 5.0, 9.0] and math.isnan(out[3])


def test_log_scale_drops_values_it_cannot_draw():
    out = log10s([100.0, 0.0, -1.0, 0.01])
    assert out[0] == 2.0 and out[3] == -2.0 and math.isnan(out[1]) and math.isnan(out[2])


@pytest.mark.parametrize("lo, hi, most", [(0, 100, 6), (1.95, 2.9, 4), (2.2e-5, 5.5e-5, 4), (1, 1e5, 8)])
def test_nice_ticks_are_round_inside_the_range_and_not_too_many(lo, hi, most):
    ticks = nice_ticks(lo, hi, most)
    assert 1 <= len(ticks) <= most and all(lo <= t <= hi for t in ticks)
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None
    if step:
        mantissa = step / 10 ** math.floor(math.log10(step))
        assert round(mantissa, 6) in (1, 2, 5)


def test_labels_are_short_and_tell_neighbours_apart():
    assert labels([0, 200, 400]) == ["0", "200", "400"]
    assert labels([10_000, 12_000, 14_000]) == ["10k", "12k", "14k"]
    assert labels([1_500_000, 2_000_000]) == ["1.5M", "2M"]
    assert labels([3e-5, 4e-5]) == ["3e-5", "4e-5"]
    assert labels([2.0, 2.05, 2.1]) == ["2.00", "2.05", "2.10"]


def test_log_ticks_use_1_2_5_then_decades_then_round_values():
    assert labels(log_ticks(math.log10(1.5), math.log10(9), 5), log=True) == ["2", "5"]
    assert labels(log_ticks(math.log10(2e-6), math.log10(6e-4), 4), log=True) == ["1e-5", "1e-4"]
    assert labels(log_ticks(math.log10(2.0), math.log10(2.5), 4), log=True) == ["2.0", "2.2", "2.4"]


def test_a_plan_downsamples_to_the_width_smooths_over_the_raw_band_and_marks_resumes():
    xs, ys = loss_curve(100_000)
    p = plan([Series(xs, ys, "bold cyan", "grey", marks=(60_000.0,))], columns=70, rows=8, smoothing=0.6,
             log=False)
    raw, smooth = p.lines
    assert raw.style == "grey" and smooth.style == "bold cyan"
    assert len(smooth.x) == 140 and len(raw.x) == 280  # two dots a column; the band visits min and max
    assert p.x_range == (1.0, 100_000.0) and p.marks == (60_000.0,)
    assert all(p.y_range[0] <= y <= p.y_range[1] for y in smooth.y + raw.y)  # clamped into view
    assert len(p.y_ticks) == len(p.y_labels) >= 2 and len(p.x_ticks) <= 7


def test_without_smoothing_only_the_raw_line_is_drawn_and_log_plots_log10():
    p = plan([Series([1, 2, 3], [10.0, 100.0, 1000.0], "cyan", "grey")], columns=40, rows=6, smoothing=0.0,
             log=True)
    (line,) = p.lines
    assert line.y == pytest.approx([1.0, 2.0, 3.0], abs=0.2) and "1k" in p.y_labels


def test_compared_runs_share_the_axes():
    a = Series([1, 2, 3], [3.0, 2.0, 1.0], "red", None)
    b = Series([1, 2, 3, 4, 5, 6], [6.0, 5.0, 4.0, 3.0, 2.0, 1.5], "blue", None)
    p = plan([a, b], columns=40, rows=6, smoothing=0.6, log=False)
    assert [ln.style for ln in p.lines] == ["red", "blue"]  # no raw band when comparing
    assert p.x_range == (1, 6)
    assert all(p.y_range[0] < y < p.y_range[1] for ln in p.lines for y in ln.y)  # nothing clamped
    assert plan([], 40, 6, 0.6, False).lines == ()


def test_a_series_that_is_not_smoothed_is_drawn_as_measured_with_its_markers():
    train = Series(list(range(1, 101)), [5.0 - i / 50 + (0.3 if i % 2 else -0.3) for i in range(100)], "cyan", "grey")
    val = Series([25, 50, 75, 100], [4.3, 3.9, 3.5, 3.2], "pink", None, smooth=False, marker="◆")
    p = plan([train, val], columns=40, rows=8, smoothing=0.9, log=False)
    raw, smoothed, drawn = p.lines
    assert drawn.x == [25, 50, 75, 100] and drawn.y == [4.3, 3.9, 3.5, 3.2]  # not pulled toward earlier points
    assert drawn.marker == "◆" and drawn.style == "pink" and smoothed.marker is None
    assert p.y_range[0] < 3.2 and p.x_range == (1, 100)


def test_smoothing_steps_cycle_and_the_settings_describe_themselves():
    s = ChartSettings()
    assert s.describe() == "EMA 0.6 · linear · by step"
    seen = [s.smoothing]
    for _ in range(6):
        s = s.next_smoothing()
        seen.append(s.smoothing)
    assert seen == [0.6, 0.8, 0.9, 0.95, 0.99, 0.0, 0.6]
    assert ChartSettings(smoothing=0.0, log=True, by_tokens=True).describe() == "raw · log · by tokens"
