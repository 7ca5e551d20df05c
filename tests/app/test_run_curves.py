"""The Runs tab's loss curve stays readable after the opening drop."""
from __future__ import annotations

import math

from minimind_tui.app.widgets.run_monitor import readable_loss, readable_lr


def spread(values: list[float], start: int) -> float:
    """Share of the curve's height that the points from `start` on cover."""
    tail = values[start:]
    return (max(tail) - min(tail)) / (max(values) - min(values))


def test_the_slow_tail_of_a_run_gets_most_of_the_height():
    loss = [2.0 + 6.8 * math.exp(-i / 12) + 0.3 * (1 - i / 400) for i in range(400)]
    shown = readable_loss(tuple(loss))
    assert spread(loss, 100) < 0.05  # scaled to the whole run: the last 3/4 is one flat bar
    assert spread(shown, 100) > 0.4  # ...cut at the 90th percentile: nearly half the height
    assert shown[100:] == loss[100:] and min(shown) == min(loss)  # only the opening drop is cut
    assert shown[:5] == [max(shown)] * 5


def test_short_curves_are_shown_as_they_are():
    assert readable_loss((8.0, 5.0, 3.0)) == [8.0, 5.0, 3.0]
    assert readable_loss(()) == []


def test_a_constant_lr_is_a_flat_line_and_a_cosine_keeps_its_shape():
    constant = tuple(5e-4 * (1 + 1e-6 * (i % 3)) for i in range(50))
    assert len(set(readable_lr(constant))) == 1  # not a saw-tooth spanning the whole height
    cosine = tuple(5e-5 + 2.5e-4 * (1 + math.cos(math.pi * i / 99)) for i in range(100))
    shown = readable_lr(cosine)
    assert shown[0] == 1.0 and shown[-1] == round(cosine[-1] / cosine[0], 2) == 0.09
    assert shown == sorted(shown, reverse=True) and len(set(shown)) > 50
    assert readable_lr(()) == []
