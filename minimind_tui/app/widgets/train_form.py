"""The Train tab: choose data, model and hyper-parameters, see the exact shell command and a memory
estimate, launch. The form only posts `LaunchRequested`; the app does the launching.

The form never launches what the trainer would refuse: the command it shows is parsed with the trainer's own
flags and checked by the trainer's own precheck (minimind_tui/train/precheck.py), numbers at once and files in a
worker; problems are listed under the command and their fields marked. Flags typed into "more" that have a field
update that field. Defaults the form applies (a mode's, a generation's, a recipe's) never overwrite what the
user typed, and the form says which fields it changed.

The MiniMind generation (v1, MiniMind2, minimind-3) decides the network, the presets offered and some
defaults. Every stage after pretraining (SFT, LoRA, DPO, distill) takes it from the base weights (their keys,
read in a worker); a new model's is picked."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, HorizontalScroll, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Input, Label, Select, Static

from minimind_tui.errors import UserError
from minimind_tui.gpu.mapping import free_gb_of, total_gb_of
from minimind_tui.gpu.monitor import GpuReading
from minimind_tui.runs import layout
from minimind_tui.runs.launcher import RUN_ENV, TrainSpec, shell_command
from minimind_tui.tokenizer_choice import choose_tokenizer_dir, find_weights
from minimind_tui.train import precheck
from minimind_tui.train.args import (
    COMMON_DEFAULTS,
    DATA_KIND,
    INIT_STAGE,
    MODE_DEFAULTS,
    PRESET_GENERATION,
    default_init_path,
    default_text,
    generation_defaults,
    generation_id,
    model_config,
    parse_flags,
    resolve,
)
from minimind_tui.train.memory_plan import plan_memory, teacher_config
from model.config import GENERATIONS

from ..base_weights import BaseWeights, read_base_weights
from ..datasets import DemoData, demo_data, demo_mode_of, describe_file, flag_values, local_datasets
from ..presets import CUSTOM, PRESETS, default_preset, preset_for, presets_of, tokenizer_vocab

# Fields a mode or generation sets to the trainer's default (where that default differs from the one before).
# The batch size is not among them: it is sized to the GPU, not to the recipe.
DEFAULT_FIELDS = ("learning_rate", "accumulation_steps", "epochs", "max_seq_len")
GENERATION_CHOICES = [("v1", "v1"), ("MiniMind2", "gen2"), ("minimind-3", "gen3")]
AUTO_DTYPE = "auto"  # no --dtype: the trainer picks per GPU (bfloat16, float16 before Ampere); the CPU has none
DTYPES = (AUTO_DTYPE, "bfloat16", "float16", "float32")
TRAINER_DEFAULT_INIT = "default"
# The modes offered, as the picker names them. Every mode but pretraining starts from weights (train.args.INIT_STAGE).
MODE_CHOICES = [("pretrain", "pretrain"), ("SFT", "sft"), ("LoRA", "lora"), ("DPO", "dpo"), ("distill", "distill")]
MODE_LABELS = {value: label for label, value in MODE_CHOICES}
# Each later stage's own flags: typed into "more"; the form's note says their defaults when the mode is chosen.
MODE_FLAGS = {"lora": ("lora_name",), "dpo": ("beta",), "distill": ("alpha", "temperature", "teacher_dim",
                                                                     "teacher_n_layers")}
RANDOM_INIT = "none"  # pretraining's only base, shown as such
DEMO_CHOICES = {"demo:pretrain": "demo pretrain corpus (bundled)", "demo:sft": "demo SFT corpus (bundled)"}
# Form fields a recipe (the demo's train flags) may set.
RECIPE_FIELDS = ("batch_size", "max_seq_len", "learning_rate", "epochs", "accumulation_steps")
# Flags typed into "more" that the form shows elsewhere: the value goes there (a field, or the spec itself),
# so the command never carries a flag twice.
FIELD_FLAGS = ("data_path", "batch_size", "learning_rate", "epochs", "accumulation_steps", "dim", "n_layers",
               "max_seq_len", "dtype", "device", "generation")
SPEC_FLAGS = ("init", "out_dir", "preset", "use_moe")
LABELS = {"learning_rate": "lr", "accumulation_steps": "accum", "batch_size": "batch", "max_seq_len": "seq len",
          "n_layers": "layers", "generation": "Gen"}


def trainer_default(field: str, mode: str = "pretrain", generation: str = "v1") -> str:
    """The trainer's own default for a flag, as the form shows it: the form starts where the CLI does."""
    return default_text({**COMMON_DEFAULTS, **MODE_DEFAULTS[mode], **generation_defaults(generation, mode)}[field])


def trainer_default_base(mode: str) -> str:
    """The base-weights picker's entry for the trainer's own default: the stage the mode starts from."""
    return f"trainer default (out/{INIT_STAGE.get(mode, 'pretrain')}_<dim>.pth)"


def mode_flags_text(mode: str, generation: str = "v1") -> str:
    """The mode's own flags with their trainer defaults, as "more" would take them: --beta 0.1."""
    return " ".join(f"--{f} {trainer_default(f, mode, generation)}" for f in MODE_FLAGS.get(mode, ()))


def changed_defaults(before: tuple[str, str] | None, after: tuple[str, str]) -> dict[str, str]:
    """The DEFAULT_FIELDS whose trainer default differs between two (mode, generation) pairs, with the new
    default: what switching from one to the other sets (all of them when there was none before)."""
    return {f: trainer_default(f, *after) for f in DEFAULT_FIELDS
            if before is None or trainer_default(f, *before) != trainer_default(f, *after)}


class FormError(ValueError):
    pass


def flag_groups(tokens: list[str]) -> list[tuple[str, list[str]]]:
    """["--epochs", "3", "--compile", "--lr=1"] -> [("epochs", [...]), ("compile", [...]), ("lr", [...])]: each
    flag with its value tokens (a leading single dash is a value: -1e-3)."""
    groups: list[tuple[str, list[str]]] = []
    for token in tokens:
        if token.startswith("--") or not groups:
            groups.append((token[2:].split("=", 1)[0].replace("-", "_"), [token]))
        else:
            groups[-1][1].append(token)
    return groups


@dataclass
class _Choices:
    datasets: list[tuple[str, str]]
    checkpoints: list[tuple[str, str]]
    out_weights: set[str]          # names of out/*.pth: the trainer's default SFT init is looked up there
    demo: DemoData | None          # only when the app was opened with --demo


class TrainForm(VerticalScroll, can_focus=False):  # its fields are the focus stops
    class LaunchRequested(Message):
        def __init__(self, spec: TrainSpec):
            super().__init__()
            self.spec = spec

    class PreviewRequested(Message):
        """Show the chosen file in the Dataset tab, read as this form would train on it."""

        def __init__(self, path: str, kind: str, max_seq_len: int | None, tokenizer: str | None):
            super().__init__()
            self.path, self.kind, self.max_seq_len, self.tokenizer = path, kind, max_seq_len, tokenizer

    class _Scanned(Message):
        def __init__(self, choices: _Choices):
            super().__init__()
            self.choices = choices

    class _DemoReady(Message):
        def __init__(self, mode: str, demo: DemoData | None):
            super().__init__()
            self.mode, self.demo = mode, demo

    class _Described(Message):
        def __init__(self, path: str, text: str):
            super().__init__()
            self.path, self.text = path, text

    class _Checked(Message):
        def __init__(self, key: tuple, problems: list):
            super().__init__()
            self.key, self.problems = key, problems

    class _BaseRead(Message):
        def __init__(self, key: tuple, weights: BaseWeights):
            super().__init__()
            self.key, self.weights = key, weights

    # Attributes set by the app from the GPU monitor.
    gpu_reading: reactive[GpuReading | None] = reactive(None)
    gpu_count: reactive[int | None] = reactive(None)

    def __init__(self, root: Path, demo: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.root = Path(root)
        self.demo = demo
        self._device_touched = False
        self._out_weights: set[str] | None = None
        self._recipe_after_mode: tuple[str, tuple[str, ...]] | None = None  # (mode, demo recipe flags)
        self._demo_data: DemoData | None = None   # known once the demo corpus was used
        # The dataset picker's value as the form last acted on it. When the picker holds another, its Changed
        # message is still on its way: a rescan landing first must keep that pick, not reset it.
        self._dataset_acted: object = Select.NULL
        self.scans_done = 0  # how many scans have been applied (tests wait on it)
        self._auto: dict[str, str] = {}  # field -> the value the form itself last put there (else: the user's)
        self._checkpoints: list[tuple[str, str]] = []  # the base weights found (besides the trainer's default)
        self._check_key: tuple = ()      # the argv whose file checks are shown
        self.problems: list[precheck.Problem] = []  # what the precheck found for the command shown
        self.checks_done = 0             # file checks applied (tests wait on it)
        self._mode: str | None = None    # the mode whose defaults the fields hold
        self._generation = "v1"          # the generation whose presets and defaults the form holds
        self._preset_of: dict[str, str] = {}  # generation -> the preset last chosen in it (restored on return)
        self._base_key: tuple | None = None  # (path, mtime, size) of the SFT base weights the form follows
        self._bases_read: dict[tuple, BaseWeights] = {}
        self._deciding = False           # applying what the base weights say (its own changes must not recurse)
        self.bases_read = 0              # base weights read (tests wait on it)

    def compose(self) -> ComposeResult:
        with Grid(id="form-grid"):
            yield Label("Mode")
            yield Select(MODE_CHOICES, value="sft" if self.demo else "pretrain",
                         allow_blank=False, compact=True, id="mode")
            yield Label("Model")
            yield Select([(p.label, p.key) for p in presets_of("v1")] + [("custom", CUSTOM)],
                         value="demo" if self.demo else "small", allow_blank=False, compact=True, id="preset")
            yield Label("Gen")
            yield Select(GENERATION_CHOICES, value="v1", allow_blank=False, compact=True, id="generation",
                         tooltip="which MiniMind: v1, MiniMind2 or minimind-3 (after pretrain: the base's own)")
            yield Static("", id="generation-note")
            yield Label("Dataset")
            yield Select([], prompt="scanning ./dataset …", compact=True, id="dataset", classes="wide")
            yield Label("Path")
            yield Input(placeholder="path to a .jsonl file (relative to the project folder)", compact=True,
                        id="data_path", classes="wide")
            yield Label("")
            with Horizontal(id="data-row", classes="wide"):
                yield Static("", id="data_info")
                yield Button("Preview", id="preview", compact=True,
                             tooltip="open this file in the Dataset tab (ctrl+o)")
            yield Label("dim")
            yield Input("512", type="integer", compact=True, id="dim")
            yield Label("layers")
            yield Input("8", type="integer", compact=True, id="n_layers")
            yield Label("Base", id="init_label")
            yield Select([("trainer default (out/pretrain_<dim>.pth)", TRAINER_DEFAULT_INIT)],
                         value=TRAINER_DEFAULT_INIT, allow_blank=False, compact=True, id="init", classes="wide")
            yield Label("batch")
            yield Input(trainer_default("batch_size"), type="integer", compact=True, id="batch_size")
            yield Label("seq len")
            yield Input(trainer_default("max_seq_len"), type="integer", compact=True, id="max_seq_len")
            yield Label("lr")
            yield Input(trainer_default("learning_rate"), type="number", compact=True, id="learning_rate")
            yield Label("epochs")
            yield Input(trainer_default("epochs"), type="integer", compact=True, id="epochs")
            yield Label("accum")
            yield Input(trainer_default("accumulation_steps"), type="integer", compact=True, id="accumulation_steps")
            yield Label("dtype")
            yield Select([(d, d) for d in DTYPES], value=AUTO_DTYPE, allow_blank=False, compact=True, id="dtype")
            yield Label("device")
            yield Input("cuda:0", compact=True, id="device")
            yield Label("GPUs")
            yield Input("1", type="integer", compact=True, id="gpus")
            yield Label("more")
            yield Input(placeholder="other train flags, e.g. --save_interval 200 --warmup_iters 100", compact=True,
                        id="extra", classes="wide")
        yield Static("", id="form-note")
        with HorizontalScroll(id="command-row"):
            yield Static("", id="command")  # one line, never wrapped: what a copy (ctrl+y) gives
        yield Static("", id="checks")
        with Horizontal(id="launch-row"):
            yield Static("", id="estimate")
            yield Button("Launch", id="launch", variant="success", compact=True)

    def on_mount(self) -> None:
        self._auto = {i.id: i.value for i in self.query(Input) if i.id}  # the composed values are the form's
        self._apply_mode(self._value("mode"))
        self._apply_preset(self._value("preset"))
        self.query_one("#form-note", Static).update("")
        self._show_generation_source()
        self.scan()

    # ---- background work -------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="train-form-scan")
    def scan(self) -> None:
        """List ./dataset/*.jsonl, checkpoints and out/*.pth off the UI thread; with --demo, write the demo
        corpus first (once)."""
        demo = demo_data(self.root) if self.demo and self._demo_data is None else None
        datasets = [(str(p.relative_to(self.root)), str(p.relative_to(self.root))) for p in local_datasets(self.root)]
        if demo is None and self._demo_data is None:  # once written, the demo files are listed as files
            datasets += [(label, value) for value, label in DEMO_CHOICES.items()]
        checkpoints = []
        for ck in layout.find_checkpoints(self.root):
            try:
                value = str(ck.path.relative_to(self.root))
            except ValueError:
                value = str(ck.path)
            checkpoints.append((ck.label, value))
        out = self.root / "out"
        out_weights = {p.name for p in out.glob("*.pth")} if out.is_dir() else set()
        self.post_message(self._Scanned(_Choices(datasets, checkpoints, out_weights, demo)))

    @work(thread=True, exclusive=True, group="train-form-demo")
    def fetch_demo(self, mode: str) -> None:
        self.post_message(self._DemoReady(mode, demo_data(self.root)))

    @work(thread=True, exclusive=True, group="train-form-describe")
    def describe(self, path: str) -> None:
        full = Path(path) if Path(path).is_absolute() else self.root / path
        self.post_message(self._Described(path, describe_file(full)))

    @on(_Scanned)
    def _scanned(self, message: _Scanned) -> None:
        choices = message.choices
        self._out_weights = choices.out_weights
        dataset = self.query_one("#dataset", Select)
        dataset.prompt = "choose a file, or type a path below" if choices.datasets else "no .jsonl in ./dataset"
        queued = dataset.value != self._dataset_acted and dataset.value != Select.NULL
        self._keep_choice(dataset, choices.datasets, str(dataset.value) if queued else self._value("data_path"))
        if not queued:  # set quietly to match the path: nothing on its way, and this is what the form shows
            self._dataset_acted = dataset.value
        self._checkpoints = choices.checkpoints
        if self._value("mode") != "pretrain":
            self._keep_choice(self.query_one("#init", Select), self._bases(self._value("mode")),
                              self._value("init") or TRAINER_DEFAULT_INIT)
        self.scans_done += 1
        self._check_key = ()  # files may have come or gone since (a finished run's weights): check again
        self._base_key = None  # and the base weights may have been rewritten: read them again
        if choices.demo is not None and self._demo_data is None:  # the first scan that has it (two may race)
            # Demo: SFT when the demo pretrain weights exist, else pretrain first (SFT starts from its weights).
            dim = PRESETS["demo"].dim
            mode = "sft" if f"pretrain_{dim}.pth" in choices.out_weights else "pretrain"
            self._use_demo(mode, choices.demo)
        self.refresh_preview()

    @on(_DemoReady)
    def _demo_ready(self, message: _DemoReady) -> None:
        if message.demo is None:
            self.app.notify("the bundled demo corpus is not available in this build", severity="warning")
            return
        self._use_demo(message.mode, message.demo)

    @staticmethod
    def _keep_choice(select: Select, options: list[tuple[str, str]], current: str) -> None:
        """New options (a rescan each time the tab is shown) without losing what was chosen or typed."""
        with select.prevent(Select.Changed):
            select.set_options(options)
            if any(value == current for _, value in options):
                select.value = current

    def _use_demo(self, mode: str, demo: DemoData) -> None:
        """Select the demo corpus for `mode` with the demo recipe (preset, lengths, lr, epochs)."""
        self._demo_data = demo
        path = demo.sft if mode == "sft" else demo.pretrain
        try:
            value = str(path.relative_to(self.root))
        except ValueError:
            value = str(path)
        recipe = demo.sft_flags if mode == "sft" else demo.pretrain_flags
        preset = flag_values(recipe).get("preset", "demo")
        self._set_generation(PRESET_GENERATION[preset])  # the demo's presets are v1's
        self.query_one("#preset", Select).value = preset
        self._apply_preset(preset)
        mode_select = self.query_one("#mode", Select)
        if mode_select.value != mode:
            self._recipe_after_mode = (mode, recipe)  # applied once the mode's own defaults are in
            mode_select.value = mode
        else:
            self._apply_recipe(recipe)
        self.query_one("#data_path", Input).value = value
        dataset = self.query_one("#dataset", Select)
        if any(v == value for _, v in dataset._options):
            dataset.value = value

    def _apply_recipe(self, flags: tuple[str, ...]) -> None:
        values = flag_values(flags)
        self._say("the demo recipe", *self._apply_defaults({f: values[f] for f in RECIPE_FIELDS if f in values}))

    # ---- defaults the form applies: never over what the user typed -------------------------------------
    def _edited(self, field: str) -> bool:
        """The user typed in this field: its value is not the one the form last put there."""
        value = self.query_one(f"#{field}", Input).value
        return value != self._auto.get(field, value)

    def _apply_defaults(self, values: dict[str, str]) -> tuple[list[str], list[str]]:
        """Put `values` into the fields the user has not edited: (fields changed, typed values kept), for
        _say to tell."""
        changed: list[str] = []
        kept: list[str] = []
        for field, value in values.items():
            box = self.query_one(f"#{field}", Input)
            if self._edited(field):
                if box.value != value:
                    kept.append(f"{LABELS.get(field, field)} {box.value}")
                continue
            if box.value != value:
                changed.append(f"{LABELS.get(field, field)} {box.value} → {value}")
                box.value = value
            self._auto[field] = value
        return changed, kept

    def _say(self, source: str, changed: list[str], kept: list[str], also: str = "") -> None:
        """Under the fields: which fields `source` changed, which typed values it kept, and `also`."""
        note = Text()
        if changed:
            note.append(f"{source} set " + ", ".join(changed), style="cyan")
        if kept:
            note.append(("; " if changed else f"{source}: ") + "kept what you typed: " + ", ".join(kept),
                        style="yellow")
        if also:
            note.append(("; " if note else f"{source}: ") + also, style="dim")
        if changed or kept or also:
            self.query_one("#form-note", Static).update(note)

    @on(_Described)
    def _described(self, message: _Described) -> None:
        if message.path == self.query_one("#data_path", Input).value.strip():
            self.query_one("#data_info", Static).update(message.text)

    # ---- reacting to edits ---------------------------------------------------------------------------
    @staticmethod
    def _superseded(event: Select.Changed) -> bool:
        """A change the select has already moved past. Changes of different selects reach the form in no fixed
        order, so acting on a stale one would undo a newer choice (SFT's corpus replaced by pretrain's)."""
        return event.value != event.select.value

    @on(Select.Changed, "#mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        if self._superseded(event):
            return
        mode = str(event.value)
        self._apply_mode(mode)
        pending, self._recipe_after_mode = self._recipe_after_mode, None
        if pending is not None and pending[0] == mode:
            self._apply_recipe(pending[1])
        elif (self._demo_data is not None and mode in ("pretrain", "sft")  # the demo has these two corpora
              and self._value("data_path") in self._demo_paths()):
            self._use_demo(mode, self._demo_data)  # pretrain -> SFT on the demo: its corpus and recipe

    def _demo_paths(self) -> set[str]:
        demo = self._demo_data
        if demo is None:
            return set()
        return {str(p.relative_to(self.root)) if p.is_relative_to(self.root) else str(p)
                for p in (demo.pretrain, demo.sft)}

    @on(Select.Changed, "#preset")
    def _preset_changed(self, event: Select.Changed) -> None:
        if self._superseded(event):
            return
        self._apply_preset(str(event.value))

    @on(Select.Changed, "#generation")
    def _generation_changed(self, event: Select.Changed) -> None:
        """Picked by the user (the form sets it quietly): its presets and defaults."""
        generation = str(event.value)
        if self._superseded(event) or generation == self._generation:  # (or its announcement after mount)
            return
        self._say(f"{GENERATIONS[generation]} defaults", *self._apply_generation(generation))
        self._show_generation_source()

    @on(Select.Changed, "#dataset")
    def _dataset_changed(self, event: Select.Changed) -> None:
        if self._superseded(event):
            return
        self._dataset_acted = event.value
        if event.value is Select.NULL:
            return
        if str(event.value) in DEMO_CHOICES:
            self.query_one("#data_info", Static).update("writing the demo corpus under dataset/ …")
            self.fetch_demo(str(event.value).split(":")[1])
            return
        self.query_one("#data_path", Input).value = str(event.value)
        demo_mode = demo_mode_of(self.root, str(event.value)) if self._demo_data is None else None
        if demo_mode is not None:  # the demo corpus picked without --demo: its recipe too, once
            self.fetch_demo(demo_mode)

    @on(Input.Changed, "#data_path")
    def _path_changed(self, event: Input.Changed) -> None:
        path = event.value.strip()
        self.query_one("#data_info", Static).update("…" if path else "")
        if path:
            self.describe(path)
        self.refresh_preview()

    @on(Input.Changed, "#device")
    def _device_changed(self, event: Input.Changed) -> None:
        self._device_touched = self._device_touched or self.is_mounted and self.app.focused is event.input
        self.query_one("#dtype", Select).disabled = event.value.strip().startswith("cpu")  # CPU: float32 only
        self.refresh_preview()

    @on(Input.Submitted, "#extra")
    @on(Input.Blurred, "#extra")
    def _extra_done(self) -> None:
        self.merge_extra()

    def merge_extra(self) -> None:
        """Move flags typed into "more" that have a field of their own into that field (as typed by the user),
        so the field shows what will run; the others stay."""
        box = self.query_one("#extra", Input)
        try:
            tokens = shlex.split(box.value)
            parse_flags(tokens)
        except (ValueError, UserError):
            return  # shown under the command; nothing is moved until it parses
        rest, moved = [], []
        for name, group in flag_groups(tokens):
            if name not in FIELD_FLAGS:
                rest += group
                continue
            value = group[0].split("=", 1)[1] if "=" in group[0] else " ".join(group[1:])
            if name == "generation":
                value = generation_id(value)  # MiniMind2 -> gen2: the picker's values (it parsed above)
            widget = self.query_one(f"#{name}")
            if isinstance(widget, Select):
                if not any(v == value for _, v in widget._options):
                    rest += group
                    continue
                widget.value = value
            else:
                widget.value = value  # typed by the user: the form's defaults leave it alone from now on
                if name == "device":
                    self._device_touched = True
            moved.append(f"{LABELS.get(name, name)} {value}")
        if moved:
            box.value = shlex.join(rest)
            self.query_one("#form-note", Static).update(Text("from more: " + ", ".join(moved), style="cyan"))

    @on(Input.Changed)
    @on(Select.Changed)
    def _any_changed(self) -> None:
        self.refresh_preview()

    def _bases(self, mode: str) -> list[tuple[str, str]]:
        return [(trainer_default_base(mode), TRAINER_DEFAULT_INIT), *self._checkpoints]

    def _apply_mode(self, mode: str) -> None:
        label = "pretraining defaults" if mode == "pretrain" else f"{MODE_LABELS[mode]} defaults"
        before = (self._mode, self._generation) if self._mode else None
        self._mode = mode
        flags = mode_flags_text(mode, self._generation)  # its own flags go through "more": say their defaults
        self._say(label, *self._apply_defaults(changed_defaults(before, (mode, self._generation))),
                  also=f"{flags} (change in more)" if flags else "")
        starts_from_weights = mode != "pretrain"
        init = self.query_one("#init", Select)
        init.disabled = not starts_from_weights
        if starts_from_weights:
            self._keep_choice(init, self._bases(mode), TRAINER_DEFAULT_INIT)
        else:  # pretraining starts from random weights: say so rather than show SFT's choice greyed out
            self._keep_choice(init, [("random init", RANDOM_INIT)], RANDOM_INIT)
        self.refresh_preview()
        self._show_generation_source()

    # ---- the generation: the base weights', else the one picked ---------------------------------------------
    def _apply_generation(self, generation: str) -> tuple[list[str], list[str]]:
        """Offer this generation's presets (the one last chosen in it, else its trainer's default; custom sizes
        stay custom) and put in its trainer's defaults: (changes, typed values kept)."""
        before, self._generation = self._generation, generation
        if before == generation:
            return [], []
        select = self.query_one("#preset", Select)
        current = self._value("preset")
        self._preset_of[before] = current
        choice = CUSTOM if current == CUSTOM else self._preset_of.get(generation) or default_preset(generation)
        with select.prevent(Select.Changed):
            select.set_options([(p.label, p.key) for p in presets_of(generation)] + [("custom", CUSTOM)])
            select.value = choice
        self._apply_preset(choice)
        # All of its defaults, not only those that differ: another generation is another recipe (a recipe's
        # values, the demo's, do not carry over); what the user typed stays.
        changed, kept = self._apply_defaults(changed_defaults(None, (self._mode or self._value("mode"), generation)))
        model = [f"model {PRESETS[choice].label}"] if choice != current else []
        return model + changed, kept

    def _set_generation(self, generation: str) -> tuple[list[str], list[str]]:
        """Set the generation from what the form reads (the base weights, the demo recipe's preset), quietly."""
        select = self.query_one("#generation", Select)
        if select.value != generation:
            with select.prevent(Select.Changed):
                select.value = generation
        return self._apply_generation(generation)

    def _base_file(self, spec: TrainSpec) -> Path | None:
        """The weights a run starts from (the trainer's default or the Base chosen), None for pretraining
        or when there is no such file."""
        if spec.mode == "pretrain":
            return None
        base = spec.init or str(default_init_path({"mode": spec.mode, "out_dir": spec.out_dir, "dim": spec.dim,
                                                   "use_moe": spec.use_moe}))
        found = find_weights(self.root / base)
        return found if found is not None and found.is_file() else None

    def _follow_base(self, spec: TrainSpec) -> None:
        """When the base weights change (another choice, or the file rewritten), read them in a worker."""
        if self._deciding:
            return
        base = self._base_file(spec)
        try:
            stat = base.stat() if base is not None else None
        except OSError:
            stat = None
        key = (str(base), stat.st_mtime_ns, stat.st_size) if base is not None and stat is not None else None
        if key == self._base_key:
            return
        self._base_key = key
        if key is None:
            self._decided_by(None)
        elif key in self._bases_read:
            self._decided_by(self._bases_read[key])
        else:
            self._show_generation_source("reading the base weights …")
            self.read_base(key)

    @work(thread=True, exclusive=True, group="train-form-base")
    def read_base(self, key: tuple) -> None:
        self.post_message(self._BaseRead(key, read_base_weights(Path(key[0]))))

    @on(_BaseRead)
    def _base_read(self, message: _BaseRead) -> None:
        self._bases_read[message.key] = message.weights
        self.bases_read += 1
        if message.key == self._base_key:
            self._decided_by(message.weights)

    def _decided_by(self, base: BaseWeights | None) -> None:
        """SFT from MiniMind weights: their generation, and their sizes (a preset of them, else custom), locked
        while they are the base. Without them (pretraining, no such file) the generation is the user's."""
        select = self.query_one("#generation", Select)
        select.disabled = base is not None and base.generation is not None
        if base is None or base.generation is None:
            self._show_generation_source()
            return
        self._deciding = True
        try:
            before = self._generation
            changed, kept = self._set_generation(base.generation)
            if before != base.generation:
                changed.insert(0, f"Gen {GENERATIONS[before]} → {GENERATIONS[base.generation]}")
            preset = PRESETS.get(self._value("preset"))
            sizes = (self._value("dim"), self._value("n_layers"), preset is not None and preset.use_moe)
            if sizes != (str(base.dim), str(base.n_layers), base.use_moe):
                changed += self._use_sizes(base)
            what = f"the base weights ({GENERATIONS[base.generation]}, {base.dim}×{base.n_layers})"
            self._say(what, changed, kept)
        finally:
            self._deciding = False
        self._show_generation_source()
        self.refresh_preview()

    def _use_sizes(self, base: BaseWeights) -> list[str]:
        """The preset of the base weights' sizes, else custom sizes: the network must be theirs to load them."""
        select = self.query_one("#preset", Select)
        choice = preset_for(base.generation or "v1", base.dim, base.n_layers, base.use_moe) or CUSTOM
        with select.prevent(Select.Changed):
            select.value = choice
        self._apply_preset(choice)
        if choice != CUSTOM:
            return [f"model {PRESETS[choice].label}"]
        for field, value in (("dim", base.dim), ("n_layers", base.n_layers)):
            self.query_one(f"#{field}", Input).value = self._auto[field] = str(value)
        return [f"model custom {base.dim}×{base.n_layers}"]

    def _show_generation_source(self, text: str | None = None) -> None:
        """Beside the generation: where it comes from."""
        if text is None:
            if self.query_one("#generation", Select).disabled:
                text = "read from the base weights"
            elif self._value("mode") != "pretrain":
                text = "no base weights found: choose"
            else:
                text = "a new model: choose"
        self.query_one("#generation-note", Static).update(Text(text, style="dim"))

    def _apply_preset(self, key: str) -> None:
        custom = key == CUSTOM
        for field in ("dim", "n_layers"):
            self.query_one(f"#{field}", Input).disabled = not custom
        if not custom:
            p = PRESETS[key]
            for field, value in (("dim", p.dim), ("n_layers", p.n_layers)):  # the preset is the user's choice
                self.query_one(f"#{field}", Input).value = self._auto[field] = str(value)
            if p.max_seq_len:
                seq = self.query_one("#max_seq_len", Input)
                if not seq.value.isdigit() or int(seq.value) > p.max_seq_len:  # the model's own cap
                    seq.value = self._auto["max_seq_len"] = str(p.max_seq_len)
        self.refresh_preview()

    def watch_gpu_count(self, count: int | None) -> None:
        if count is not None and not self._device_touched:
            self.query_one("#device", Input).value = "cuda:0" if count else "cpu"
        self.refresh_preview()

    def watch_gpu_reading(self) -> None:
        self.refresh_preview()

    @property
    def free_gb(self) -> float | None:
        """Free memory of the GPUs the form selects (the emptiest of them), None when unknown."""
        gpus = self._value("gpus")
        return self._free_gb(self._value("device") or "cpu", int(gpus) if gpus.isdigit() else 1)

    def _free_gb(self, device: str, gpus: int) -> float | None:
        return self._gpu_gb(device, gpus, free_gb_of)

    def _gpu_gb(self, device: str, gpus: int, measure) -> float | None:
        """`measure` (free or total GB) of the GPUs the run will use, the smallest of them."""
        if self.gpu_reading is None:
            return None
        # cuda:N the run will use: every rank its LOCAL_RANK under torchrun, else --device's index; numbered as
        # the trainer will number them (the launcher's environment: PCI order, CUDA_VISIBLE_DEVICES honoured).
        index = device.partition(":")[2]
        ordinals = list(range(gpus)) if gpus > 1 else [int(index) if index.isdigit() else 0]
        return measure(self.gpu_reading, ordinals, env={**os.environ, **RUN_ENV})

    # ---- the spec --------------------------------------------------------------------------------------
    def _value(self, widget_id: str) -> str:
        widget = self.query_one(f"#{widget_id}")
        value = widget.value  # type: ignore[attr-defined]
        return "" if value is Select.NULL else str(value).strip()

    def _int(self, widget_id: str, label: str) -> int:
        """A whole number from a field; its range is the precheck's to judge, as the trainer would."""
        text = self._value(widget_id)
        try:
            return int(text)
        except ValueError:
            raise FormError(f"{label}: {text!r} is not a whole number") from None

    def _extra(self) -> tuple[list[str], dict]:
        """("more" without the flags the form shows elsewhere, those flags' values): typed there, they win."""
        try:
            tokens = shlex.split(self._value("extra"))
            values = parse_flags(tokens)
        except ValueError as e:
            raise FormError(f"more flags: {e}") from None
        except UserError as e:
            raise FormError(f"more flags: {e}") from None
        rest = [t for name, group in flag_groups(tokens) if name not in FIELD_FLAGS + SPEC_FLAGS for t in group]
        return rest, {k: v for k, v in values.items() if k in FIELD_FLAGS + SPEC_FLAGS}

    def spec(self) -> TrainSpec:
        """The form as a TrainSpec (a flag in "more" over its field); FormError names what cannot be read."""
        mode = self._value("mode")
        extra, typed = self._extra()

        def number(field: str, label: str, kind=int):
            if field in typed:
                return typed[field]
            if kind is int:
                return self._int(field, label)
            try:
                return float(self._value(field))
            except ValueError:
                raise FormError(f"{label}: {self._value(field)!r} is not a number") from None

        data_path = typed.get("data_path") or self._value("data_path")
        if not data_path:
            raise FormError("dataset: choose a file or type a path")
        preset = typed.get("preset") or self._value("preset")
        # The generation typed, else that of a preset typed, else the picker's (which the preset menu follows).
        generation = (typed.get("generation") or PRESET_GENERATION.get(typed.get("preset") or "")
                      or self._value("generation"))
        device = typed.get("device") or self._value("device") or "cpu"
        dtype = typed.get("dtype") or self._value("dtype")
        init = self._value("init") if mode != "pretrain" else TRAINER_DEFAULT_INIT
        return TrainSpec(
            mode=mode, data_path=data_path, batch_size=number("batch_size", "batch"),
            learning_rate=number("learning_rate", "lr", float), epochs=number("epochs", "epochs"),
            accumulation_steps=number("accumulation_steps", "accum"),
            dim=number("dim", "dim"), n_layers=number("n_layers", "layers"),
            max_seq_len=number("max_seq_len", "seq len"),
            use_moe=typed.get("use_moe", PRESETS[preset].use_moe if preset in PRESETS else False),
            dtype=None if dtype == AUTO_DTYPE or device.startswith("cpu") else dtype, device=device,
            init=typed.get("init") or (None if init == TRAINER_DEFAULT_INIT else init),
            out_dir=typed.get("out_dir") or "out", gpus=self._int("gpus", "GPUs"), extra=extra,
            preset=preset if preset in PRESETS else None, generation=generation)

    def settings(self, spec: TrainSpec) -> dict:
        """The trainer's settings for this command: parsed with its flags, resolved with its defaults."""
        try:
            return resolve(spec.mode, parse_flags(spec.train_args()[1:]))
        except UserError as e:
            raise FormError(str(e)) from None

    def command_line(self) -> str | None:
        """The command shown (and launched): what ctrl+y copies. None while the form cannot make one."""
        try:
            spec = self.spec()
        except FormError:
            return None
        return shell_command(spec.train_args(), gpus=spec.gpus)

    def refresh_preview(self) -> None:
        if not self.is_mounted:
            return
        command = self.query_one("#command", Static)
        estimate = self.query_one("#estimate", Static)
        try:
            spec = self.spec()
            settings = self.settings(spec)
        except FormError as e:
            command.update("")
            self._show_problems([precheck.Problem("", str(e))])
            estimate.update("")
            return
        command.update(Text("$ " + shell_command(spec.train_args(), gpus=spec.gpus), style="bold", no_wrap=True))
        self._follow_base(spec)
        key = tuple(spec.train_args())
        numbers = precheck.number_problems(settings)
        files = self.problems if key == self._check_key else []
        self._show_problems(numbers + [p for p in files if p not in numbers], spec.gpus)
        if key != self._check_key:
            self.check_files(key, settings)
        estimate.update(self._estimate_text(spec, settings))

    @work(thread=True, exclusive=True, group="train-form-check")
    def check_files(self, key: tuple, settings: dict) -> None:
        """The precheck's file checks (data, base weights, tokenizer) off the UI thread: they read files."""
        self.post_message(self._Checked(key, precheck.problems(settings, cwd=self.root)))

    @on(_Checked)
    def _checked(self, message: _Checked) -> None:
        self._check_key, self.problems = message.key, message.problems
        self.checks_done += 1
        self.refresh_preview()

    def _show_problems(self, problems: list[precheck.Problem], gpus: int = 1) -> None:
        """Under the command, errors then warnings; the fields at fault marked."""
        text = Text()
        for p in sorted(problems, key=lambda p: p.warning):
            text.append(("\n" if text else "") + ("⚠ " if p.warning else "✗ ") + p.message,
                        style="yellow" if p.warning else "bold red")
        if gpus > 1:
            text.append(("\n" if text else "") + "one node; its rendezvous listens on 127.0.0.1 only. Several nodes: "
                        "run torchrun on each (README), with the master port unreachable from outside the cluster",
                        style="dim")
        checks = self.query_one("#checks", Static)
        checks.update(text)
        checks.display = bool(text)  # no blank line while there is nothing to say: 80x24 needs the row
        wrong = {p.flag for p in problems if not p.warning}
        for widget in self.query_one("#form-grid").query("Input, Select"):
            widget.set_class(widget.id in wrong, "-invalid")

    def _estimate_text(self, spec: TrainSpec, settings: dict) -> Text:
        vocab = tokenizer_vocab(self._tokenizer_dir(spec))
        try:  # the network of the settings' generation: its heads, FFN width rule, MoE layout
            config = model_config(settings, vocab)
        except UserError:  # sizes that would not build (the checks say why): counted with v1's arithmetic
            config = None
        plan = plan_memory(spec.dim, spec.n_layers, spec.batch_size, spec.max_seq_len, use_moe=spec.use_moe,
                           vocab=vocab, dtype=spec.dtype or "bfloat16", device=spec.device, world_size=spec.gpus,
                           chunk_tokens=self._extra_flag("chunk_tokens"),
                           gpu_total_gb=self._gpu_gb(spec.device, spec.gpus, total_gb_of), config=config,
                           mode=spec.mode, teacher=self._teacher(settings, vocab))
        params = f"{plan.params / 1e6:.1f}M params"
        if plan.device == "cpu":
            return Text(f"{params} · CPU run, ≈{plan.total_gb:.1f} GB RAM (estimate)", style="dim")
        free = self._free_gb(spec.device, spec.gpus)
        if free is None:
            return Text(f"{params} · ≈{plan.total_gb:.1f} GB per GPU (estimate); free GPU memory unknown")
        if plan.total_gb > free:
            return Text(f"⚠ {params} · ≈{plan.total_gb:.1f} GB per GPU (estimate) > {free:.1f} GB free: "
                        "lower batch, seq len or --chunk_tokens", style="bold red")
        return Text(f"{params} · ≈{plan.total_gb:.1f} GB per GPU (estimate) of {free:.1f} GB free", style="green")

    @staticmethod
    def _teacher(settings: dict, vocab: int):
        try:
            return teacher_config(settings, vocab)
        except UserError:  # teacher sizes that would not build: counted without it
            return None

    @on(Button.Pressed, "#preview")
    def request_preview(self) -> None:
        request = self.preview_request()
        if request is None:
            self.app.notify("choose a dataset file or type its path first", title="Nothing to preview",
                            severity="warning")
            return
        self.post_message(request)

    def preview_request(self) -> PreviewRequested | None:
        """The chosen file as this form would train on it (kind, seq len, tokenizer); None without a file."""
        path = self._value("data_path")
        if not path:
            return None
        try:
            max_seq_len: int | None = self._int("max_seq_len", "seq len")
        except FormError:
            max_seq_len = None
        if max_seq_len is not None and max_seq_len < 2:
            max_seq_len = None  # the Dataset tab keeps its own
        try:
            tokenizer = self._tokenizer_dir(self.spec())
        except FormError:
            tokenizer = self._tokenizer_dir(None)
        return self.PreviewRequested(path, DATA_KIND[self._value("mode")], max_seq_len, str(tokenizer))

    def _tokenizer_dir(self, spec: TrainSpec | None) -> Path:
        """The tokenizer the trainer will use for this form: --tokenizer, else (SFT) the one recorded with the
        base weights, else the project's or the bundled one. The preview and the estimate must use it too."""
        weights = self._base_file(spec) if spec is not None else None
        return choose_tokenizer_dir(self.root, self._tokenizer_flag(), weights=weights)[0]

    def _tokenizer_flag(self) -> str | None:
        """--tokenizer DIR from the extra flags: the tokenizer the trainer will use instead of its default."""
        return self._extra_flag("tokenizer")

    def _extra_flag(self, name: str):
        """The value of --NAME among the extra flags (as the trainer parses it), or None."""
        try:
            return parse_flags(shlex.split(self._value("extra"))).get(name)
        except (ValueError, UserError):
            return None

    @on(Button.Pressed, "#launch")
    def request_launch(self) -> None:
        """Launch, unless the precheck refuses the command (run here, so nothing stale decides)."""
        self.merge_extra()
        try:
            spec = self.spec()
            found = precheck.problems(self.settings(spec), cwd=self.root)
        except FormError as e:
            self.app.notify(str(e), title="Cannot launch", severity="error")
            return
        errors = [p for p in found if not p.warning]
        if errors:
            self.app.notify(errors[0].message, title="Cannot launch", severity="error")
            return
        self.post_message(self.LaunchRequested(spec))
