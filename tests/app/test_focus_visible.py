"""Focus is visible on every focus stop in a 256-colour terminal (TERM=xterm-256color, tmux's default): each
widget is drawn focused and unfocused, both reduced to the 256-colour palette as such a terminal shows them,
and they must differ clearly (a changed character or text attribute, or a colour step a person sees)."""
from __future__ import annotations

import math
import os

import pytest
from canned import T0, make_run
from canned_curves import write_curve_run
from rich._palettes import EIGHT_BIT_PALETTE
from rich.color import ColorSystem
from testkit import wait_for

from minimind_tui.app.widgets.run_monitor import RunMonitor

# The least change in RGB distance that counts as visible: Textual's own 5% focus tint is a 17 here (one grey
# step); a tinted field is 80 and more.
VISIBLE = 60


def _rgb(color):
    if color is None:
        return None
    number = color.downgrade(ColorSystem.EIGHT_BIT).number
    return None if number is None else tuple(EIGHT_BIT_PALETTE[number])


def _cells(app, region) -> list[tuple]:
    """Each cell of `region` as a 256-colour terminal shows it: character, colours, bold/reverse/underline."""
    strips = app.screen._compositor.render_strips()
    out = []
    for y in range(region.y, region.bottom):
        for seg in strips[y].crop(region.x, region.right):
            st = seg.style
            look = (None,) * 5 if st is None else (_rgb(st.color), _rgb(st.bgcolor), st.bold, st.reverse,
                                                   st.underline)
            out += [(ch, *look) for ch in seg.text]
    return out


def _change(before: list[tuple], after: list[tuple]) -> float:
    most = 0.0
    for a, b in zip(before, after, strict=True):
        if a[0] != b[0] or a[3:] != b[3:]:
            return math.inf  # a cursor, reverse video, bold: plainly visible
        for x, y in ((a[1], b[1]), (a[2], b[2])):
            most = max(most, 0 if x == y else 255 if x is None or y is None else math.dist(x, y))
    return most


async def _faint_focus(pilot) -> list[str]:
    """The focus stops on screen whose focus a 256-colour terminal barely shows."""
    app = pilot.app
    faint = []
    for widget in [w for w in app.screen.query("*") if w.focusable and w.region.area]:
        app.set_focus(None)
        await pilot.pause()
        before = _cells(app, widget.region)
        widget.focus()
        await pilot.pause()
        if _change(before, _cells(app, widget.region)) < VISIBLE:
            faint.append(f"{type(widget).__name__}#{widget.id}")
    return faint


@pytest.mark.slow
async def test_every_focus_stop_of_the_train_runs_and_dataset_tabs_shows_its_focus(make_app, project):
    make_run(project, "20251101-100000-sft", steps=30, heartbeat_age=1.0, pid=os.getpid())  # Stop shown
    write_curve_run(project, "20251101-090000-pretrain", now=T0 - 1800)
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("1")
        assert not app.query_one("#train-form").focusable  # no invisible stop before the form's first field
        assert await _faint_focus(pilot) == []
        await pilot.press("2")
        await wait_for(pilot, lambda: app.query_one(RunMonitor).view is not None, "the monitor")
        assert app.query_one("#monitor-log").focusable and app.query_one("#stop").display
        assert await _faint_focus(pilot) == []
        app.query_one("#runs-table").focus()
        await pilot.press("m", "down", "m", "c")
        await wait_for(pilot, lambda: app.query_one("#compare-view").display, "the comparison")
        assert await _faint_focus(pilot) == []
        await pilot.press("3")
        tab = app.query_one("#dataset-tab")
        tab.open_file("dataset/sft_mini_512.jsonl")
        await wait_for(pilot, lambda: tab.browser.sample is not None, "a sample")
        assert await _faint_focus(pilot) == []
