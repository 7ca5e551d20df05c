"""`minimind-tui runs list|stop|export|rm|rename|note`: the Runs tab, for scripts and plain shells."""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.runs.control import STOP_TIMEOUT_S
from minimind_tui.runs.launcher import LAUNCHER_PID, shell_quote


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
    ex = _run_action(sub, "export", export, "a run's curves (one row per step: loss, validation loss, lr, "
                                            "grad norm, tokens/s, memory) as CSV or TensorBoard event files")
    ex.add_argument("--csv", nargs="?", const="", metavar="FILE", help="write a CSV file (default: RUN.csv here; "
                                                                     "- for standard output)")
    ex.add_argument("--tensorboard", nargs="?", const="", metavar="DIR",
                    help="write TensorBoard event files (default: tensorboard/RUN; needs `pip install tensorboard`)")
    rm = _run_action(sub, "rm", remove, "delete a run folder (checkpoints and all); refused while it runs")
    rm.add_argument("--yes", "-y", action="store_true", help="do not ask")
    rn = _run_action(sub, "rename", rename, "give a run folder another name; refused while it runs")
    rn.add_argument("new_name", help="the new folder name under runs/")
    nt = _run_action(sub, "note", note, "set a run's note (shown by `runs list`); without TEXT, print it")
    nt.add_argument("text", nargs="?", help="the note; \"\" removes it")


def _run_action(sub, name: str, func, help_text: str) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    p.add_argument("run", help="run id (a folder name under runs/) or path to a run directory")
    p.add_argument("--root", default=argparse.SUPPRESS, help="project folder (default: .)")
    p.set_defaults(func=func)
    return p


def list_runs(args) -> int:
    from minimind_tui.runs.summary import format_duration, summarize

    runs = layout.list_runs(Path(args.root))
    if not runs:
        print(f"no runs under {layout.runs_dir(args.root)} yet. To start one: `minimind-tui --demo` (the dashboard "
              f"with the bundled demo data), `minimind-tui demo` (the whole chain on a CPU), or fetch MiniMind's "
              f"data with `minimind-tui download quickstart` and open `minimind-tui`")
        return 0
    notes = {run_dir: layout.read_note(run_dir) for run_dir in runs}
    with_notes = any(notes.values())  # the column only when some run has a note
    rows = [("RUN", "STATUS", "MODE", "DATASET", "LOSS", "STEP", "TIME", *(("NOTE",) * with_notes), "REASON")]
    for run_dir in runs:
        s = summarize(run_dir)  # never raises: a bad folder is an "unreadable" row with the reason
        if s is None:
            continue  # deleted while we listed
        steps = f"{s.step}/{s.total}" if s.step is not None else "—"
        loss = f"{s.loss:.3f}" if isinstance(s.loss, (int, float)) else "—"
        shown_note = (_shorten(notes[run_dir], NOTE_WIDTH) or "—",) if with_notes else ()
        # One row per run whatever its files hold: the id as `runs stop` takes it (quoted for the shell), the
        # rest with control characters (a newline in a reason or a dataset name) shown as escapes.
        rows.append((shell_quote(s.run_id), *map(_one_line, (s.status, s.mode or "?", s.dataset or "?", loss,
                                                             steps, format_duration(s.duration_s), *shown_note,
                                                             s.reason))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    return 0


NOTE_WIDTH = 30  # characters of a note `runs list` shows (`runs note RUN` prints it whole)


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[:width - 1] + "…"


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


def _run_folder(root: Path, run: str) -> Path:
    """resolve_run, for the actions that change a folder: only a folder that holds a run (never any folder the
    name happens to match in the working directory)."""
    run_dir = resolve_run(root, run)
    if not any((run_dir / name).is_file() for name in (layout.CONFIG, layout.METRICS, LAUNCHER_PID)):
        raise UserError(f"{run_dir}: not a run folder (no {layout.CONFIG} or {layout.METRICS})")
    return run_dir


def _not_running(run_dir: Path, what: str) -> None:
    from minimind_tui.runs.summary import summarize

    status = summarize(run_dir).status
    if status.is_live:
        stop_it = f"minimind-tui runs stop {shell_quote(run_dir.name)}"
        raise UserError(f"{run_dir.name} is {status}: stop it first (`{stop_it}`), then {what}")


def export(args) -> int:
    from minimind_tui.runs.history import run_rows, tensorboard_available, write_csv, write_tensorboard

    run_dir = resolve_run(Path(args.root), args.run)
    if args.csv is None and args.tensorboard is None:
        raise UserError("runs export: say what to write: --csv [FILE] and/or --tensorboard [DIR]")
    if args.tensorboard is not None and not tensorboard_available():
        raise UserError("--tensorboard needs the tensorboard package: pip install tensorboard (or use --csv)")
    rows = run_rows(run_dir)
    if not rows:
        raise UserError(f"{run_dir.name}: no steps logged yet, nothing to export")
    if args.csv == "-":
        write_csv(rows, sys.stdout)
    elif args.csv is not None:
        target = Path(args.csv or f"{run_dir.name}.csv")
        from io import StringIO

        from dataset.atomic import write_atomic
        text = StringIO()
        write_csv(rows, text)
        write_atomic(target, text.getvalue())  # the user's umask: an export is for sharing
        print(f"{target}: {len(rows)} steps", file=sys.stderr)
    if args.tensorboard is not None:
        folder = Path(args.tensorboard or Path("tensorboard") / run_dir.name)
        write_tensorboard(rows, folder)
        print(f"{folder}: TensorBoard event files ({len(rows)} steps); view with: tensorboard --logdir "
              f"{shell_quote(folder.parent)}", file=sys.stderr)
    return 0


def remove(args) -> int:
    run_dir = _run_folder(Path(args.root), args.run)
    _not_running(run_dir, "remove it")
    checkpoints = len(layout.complete_checkpoints(run_dir))
    if not args.yes:
        if not sys.stdin.isatty():
            raise UserError(f"runs rm {shell_quote(run_dir.name)}: pass --yes to delete without asking")
        answer = input(f"delete {run_dir} ({checkpoints} checkpoint(s))? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("kept")
            return 1
    shutil.rmtree(run_dir)
    print(f"deleted {run_dir}")
    return 0


def rename(args) -> int:
    run_dir = _run_folder(Path(args.root), args.run)
    new = args.new_name
    if not new or new in (".", "..") or new.startswith(".") or "/" in new or "\\" in new or not new.isprintable():
        raise UserError(f"{new!r}: a run name is one folder name: no slash, not starting with a dot")
    target = run_dir.parent / new
    if target.exists():
        raise UserError(f"{target}: already exists; choose another name")
    _not_running(run_dir, "rename it")
    run_dir.rename(target)
    print(f"renamed {run_dir.name} to {shell_quote(new)}")
    return 0


def note(args) -> int:
    run_dir = _run_folder(Path(args.root), args.run)
    if args.text is None:
        text = layout.read_note(run_dir)
        if text:
            print(text)
        return 0
    layout.write_note(run_dir, args.text)
    return 0
