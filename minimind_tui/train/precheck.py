"""What the trainer would reject at start-up, found before anything starts: the one list of those checks.

`problems(settings)` looks at resolved settings (args.resolve) and returns every problem it finds, each naming
the flag at fault; `check(settings)` raises the first as a one-line user error. The CLI calls `check` before it
creates a run folder (so a typo leaves nothing behind); the Train tab calls `problems` while the user edits
the form, from the very argv it would launch, and marks the fields named. Torch-free and Textual-free.

Data files are checked on their first lines (HEAD_LINES, HEAD_BYTES): a file of the other kind, or broken from
the start, is refused at once. A bad line further on is still found by the trainer while it tokenises (and
recorded in the run).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from minimind_tui.errors import UserError
from minimind_tui.tokenizer_choice import DEMO_TOKENIZER_WHY, choose_tokenizer_dir, demo_tokenizer_hint, find_weights
from model.config import GENERATION_PRESETS, GENERATIONS

from .args import DATA_KIND, PRESET_GENERATION, default_init_path, teacher_path

HEAD_LINES = 2000
HEAD_BYTES = 8 << 20
# (flag, the smallest value it takes): every whole-number setting the trainer divides or loops by.
AT_LEAST = (("epochs", 1), ("batch_size", 1), ("accumulation_steps", 1), ("dim", 1), ("n_layers", 1),
            ("n_heads", 1), ("n_kv_heads", 1), ("max_seq_len", 2), ("log_interval", 1), ("save_interval", 1),
            ("keep_last", 1), ("eval_interval", 1), ("warmup_iters", 0), ("num_workers", 0), ("chunk_tokens", -1))
KIND_SHAPES = {"pretrain": '{"text": ...}', "sft": '{"conversations": [...]}',
               "dpo": '{"chosen": [...], "rejected": [...]}'}


@dataclass(frozen=True)
class Problem:
    flag: str              # the flag at fault, without dashes ("learning_rate"): the form marks its field
    message: str           # one line: what is wrong and what to do
    warning: bool = False  # worth saying, but the run would work

    def __str__(self) -> str:
        return self.message


class PrecheckError(UserError):
    pass


def check(settings: dict, cwd: Path | str = ".", files: bool = True) -> list[Problem]:
    """Raise the first problem as a user error; return the warnings (the caller says them)."""
    found = problems(settings, cwd, files)
    errors = [p for p in found if not p.warning]
    if errors:
        more = f" ({len(errors) - 1} more problem(s) after this one)" if len(errors) > 1 else ""
        raise PrecheckError(f"{errors[0].message}{more}")
    return found


def problems(settings: dict, cwd: Path | str = ".", files: bool = True) -> list[Problem]:
    """Every problem with these settings. `files`: also look at the data, init and tokenizer files (a new run;
    a resumed one has its own). Relative paths are taken from `cwd`, where the trainer will run."""
    found = number_problems(settings)
    if files:
        cwd = Path(cwd)
        found += data_problems(settings, cwd)
        found += [p for p in (init_problem(settings, cwd), ) if p is not None]
        found += tokenizer_problems(settings, cwd)
    return found


def number_problems(s: dict) -> list[Problem]:
    out = []
    for name, least in AT_LEAST:
        value = s.get(name)
        if value is not None and value < least:
            out.append(Problem(name, f"--{name} must be at least {least} (got {value})"))
    for name, zero_ok in (("learning_rate", False), ("grad_clip", True), ("save_every_min", False)):
        value = s.get(name)
        if value is not None and not (math.isfinite(value) and (value >= 0 if zero_ok else value > 0)):
            out.append(Problem(name, f"--{name} must be {'0 or more' if zero_ok else 'above 0'} (got {value:g})"))
    ratio = s.get("eval_ratio")
    if ratio is not None and not 0 < ratio < 1:
        out.append(Problem("eval_ratio", f"--eval_ratio is the share of the data held out, between 0 and 1 "
                                         f"(got {ratio:g}); e.g. 0.01"))
    if ratio is not None and s.get("eval_data"):
        out.append(Problem("eval_ratio", "--eval_data and --eval_ratio both choose the validation set: give one"))
    return out + shape_problems(s) + generation_problems(s)


def generation_problems(s: dict) -> list[Problem]:
    """A preset of another MiniMind generation than the one asked for."""
    preset, generation = s.get("preset"), s.get("generation")
    owner = PRESET_GENERATION.get(preset or "")
    if owner and generation and owner != generation:
        return [Problem("preset", f"--preset {preset} is a {GENERATIONS[owner]} preset, but --generation is "
                                  f"{generation}; pick one of {', '.join(GENERATION_PRESETS[generation])}")]
    return []


def shape_problems(s: dict) -> list[Problem]:
    """Attention's arithmetic: heads split dim evenly, key/value heads are shared by equal groups of query
    heads, and RoPE rotates pairs of dimensions within a head."""
    dim, heads, kv = s.get("dim"), s.get("n_heads"), s.get("n_kv_heads")
    if not all(isinstance(v, int) and v >= 1 for v in (dim, heads, kv)):
        return []  # reported above
    if dim % heads:
        near = max(heads * 2, round(dim / (heads * 2)) * heads * 2)
        return [Problem("dim", f"--dim {dim} is not divisible by --n_heads {heads} (e.g. --dim {near})")]
    if (dim // heads) % 2:
        return [Problem("dim", f"--dim {dim} / --n_heads {heads} = {dim // heads} per head, an odd number; RoPE "
                               f"needs an even head size (e.g. --dim {(dim // heads + 1) * heads})")]
    if heads % kv:
        return [Problem("n_kv_heads", f"--n_heads {heads} is not divisible by --n_kv_heads {kv}")]
    return []


def data_problems(s: dict, cwd: Path) -> list[Problem]:
    out = []
    for flag in ("data_path", "eval_data"):
        if s.get(flag):
            problem = data_file_problem(Path(s[flag]), DATA_KIND[s["mode"]], bool(s.get("skip_bad_lines")), cwd,
                                        flag)
            if problem is not None:
                out.append(problem)
    return out


def data_file_problem(path: Path, mode: str, skip_bad_lines: bool, cwd: Path, flag: str) -> Problem | None:
    """A missing or empty file, data of the other kind, or a bad line among the first ones. `mode`: the kind
    of data wanted (train.args.DATA_KIND)."""
    from dataset import DataError
    from dataset.jsonl import check_data_file
    from dataset.preview import head_lines
    from dataset.stats import detect_kind
    from dataset.validate import parse_line

    full = path if path.is_absolute() else cwd / path
    try:
        check_data_file(full)  # missing, a folder (naming its .jsonl files), or empty
        lines, _ = head_lines(full, HEAD_LINES, HEAD_BYTES)
    except DataError as e:
        return Problem(flag, f"{str(e).replace(str(full), str(path), 1)} (--{flag})")
    except OSError as e:
        return Problem(flag, f"{path}: {e.strerror or e} (--{flag})")
    kind = detect_kind(lines)
    if kind is not None and kind != mode:
        return Problem(flag, f"{path} holds {kind} data ({KIND_SHAPES[kind]} lines), not {mode} data "
                             f"({KIND_SHAPES[mode]}): train {kind}, or choose another --{flag}")
    if skip_bad_lines:
        return None
    for number, raw in enumerate(lines, 1):
        try:
            parse_line(raw, mode)
        except ValueError as e:
            verdict = whole_file_verdict(full, mode)  # the trainer's own message, with every bad line counted
            return Problem(flag, verdict.replace(str(full), str(path), 1) if verdict else
                           f"{path}:{number}: {e}. Fix the file, or pass --skip_bad_lines to train without such lines")
    return None


def whole_file_verdict(path: Path, mode: str) -> str | None:
    """What the trainer's strict reading says of the whole file (first bad line and how many in all), read
    only once a bad line is already known, so a good file costs nothing more. None if it reads clean."""
    from dataset import DataError
    from dataset.jsonl import JsonlFile
    from dataset.validate import checked_lines

    try:
        checked_lines(JsonlFile(path), mode)
    except DataError as e:
        return str(e)
    return None


def init_problem(s: dict, cwd: Path) -> Problem | None:
    """The weights --init names (SFT's default: {out_dir}/pretrain_{dim}.pth; the later stages': full_sft) must
    exist, and distillation's teacher."""
    if s.get("init") == "none" or (s["mode"] == "pretrain" and not s.get("init")):
        return None
    given = s.get("init") or str(default_init_path(s))
    full = Path(given) if Path(given).is_absolute() else cwd / given
    found = find_weights(full)
    if found is None:
        return Problem("init", f"{given}: no model.pth and no complete checkpoint inside (--init)")
    if not found.is_file():
        return Problem("init", init_missing_message(given, default=s.get("init") is None, mode=s["mode"]))
    return teacher_problem(s, cwd)


def teacher_problem(s: dict, cwd: Path) -> Problem | None:
    if s["mode"] != "distill":
        return None
    given = teacher_path(s)
    full = given if given.is_absolute() else cwd / given
    found = full if (full / "config.json").is_file() else find_weights(full)  # a Hugging Face folder, or ours
    if found is None or not found.exists():
        return Problem("teacher", f"{given}: the teacher's weights are not there; pass --teacher PATH (or "
                                  f"--teacher_dim/--teacher_n_layers for {s['out_dir']}/full_sft_<dim>.pth)")
    return None


def init_missing_message(path: Path | str, default: bool, mode: str = "sft") -> str:
    """What to say when the initial weights are missing (the trainer says the same if they vanish later)."""
    before = "pretrain" if mode == "sft" else "sft"
    return f"{path}: initial weights not found; " + (
        f"run `minimind-tui train {before}` first, or pass --init PATH (or --init none for random weights)"
        if default else "check the path (--init)")


def tokenizer_problems(s: dict, cwd: Path) -> list[Problem]:
    explicit = s.get("tokenizer")
    if explicit:
        folder = Path(explicit) if Path(explicit).is_absolute() else cwd / explicit
        if not (folder / "tokenizer.json").is_file():
            return [Problem("tokenizer", f"{explicit}: no tokenizer.json there (--tokenizer)")]
        return []
    if s.get("preset") == "demo":
        return []  # the demo tokenizer is the demo preset's own
    weights = None
    if s.get("init") != "none" and (s["mode"] != "pretrain" or s.get("init")):
        given = Path(s.get("init") or default_init_path(s))
        weights = find_weights(given if given.is_absolute() else cwd / given)
    _, why = choose_tokenizer_dir(cwd, None, weights=weights if weights is not None and weights.is_file() else None)
    if why == DEMO_TOKENIZER_WHY:
        return [Problem("tokenizer", demo_tokenizer_hint(), warning=True)]
    return []
