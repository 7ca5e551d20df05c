"""`minimind-tui runs list` and `minimind-tui runs stop RUN`: the Runs tab, for scripts and plain shells."""
from __future__ import annotations

import argparse
from pathlib import Path

from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.runs.control import STOP_TIMEOUT_S
from minimind_tui.runs.launcher import shell_quote


def register(subparsers) -> None:
    p = subparsers.add_parser("runs", help="list runs under runs/ or stop one")
    sub = p.add_subparsers(dest="runs_command", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="every run with status, mode, dataset, last loss, steps and duration")
    ls.add_argument("--root", default=argparse.SUPPRESS, help="project folder (default: .)")
    ls.set_defaults(func=list_runs)
    st = sub.add_parser("stop", help="graceful stop (the trainer saves and exits), kill after --timeout")
    st.add_argument("run", help="run id (a folder name under runs/) or path to a run directory")
    st.add_argument("--timeout", type=float, default=STOP_TIMEOUT_S,
                    help=f"seconds to wait before SIGKILL (default: {STOP_TIMEOUT_S:g})")
    st.add_argument("--root", default=argparse.SUPPRESS, help="project folder (default: .)")
    st.set_defaults(func=stop)


def list_runs(args) -> int:
    from minimind_tui.runs.summary import format_duration, summarize

    runs = layout.list_runs(Path(args.root))
    if not runs:
        print(f"no runs under {layout.runs_dir(args.root)}")
        return 0
    rows = [("RUN", "STATUS", "MODE", "DATASET", "LOSS", "STEP", "TIME", "REASON")]
    for run_dir in runs:
        s = summarize(run_dir)  # never raises: a bad folder is an "unreadable" row with the reason
        if s is None:
            continue  # deleted while we listed
        steps = f"{s.step}/{s.total}" if s.step is not None else "—"
        loss = f"{s.loss:.3f}" if isinstance(s.loss, (int, float)) else "—"
        # One row per run whatever its files hold: the id as `runs stop` takes it (quoted for the shell), the
        # rest with control characters (a newline in a reason or a dataset name) shown as escapes.
        rows.append((shell_quote(s.run_id), *map(_one_line, (s.status, s.mode or "?", s.dataset or "?", loss,
                                                             steps, format_duration(s.duration_s), s.reason))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


def _one_line(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in str(text))


def resolve_run(root: Path, run: str) -> Path:
    for candidate in (Path(run), layout.run_path(root, run)):
        if candidate.is_dir():
            return candidate
    raise UserError(f"{run}: no such run (looked in {layout.runs_dir(root)}); `minimind-tui runs list` shows them")


def stop(args) -> int:
    from minimind_tui.runs.control import stop_run

    run_dir = resolve_run(Path(args.root), args.run)
    outcome = stop_run(run_dir, timeout=args.timeout, progress=print)
    print(outcome.message)
    return 0 if outcome.result in ("stopped", "killed", "not_running") else 1
