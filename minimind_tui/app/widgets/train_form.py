"""The Train tab: choose data, model and hyper-parameters, see the exact shell command and a memory
estimate, launch. The form only posts `LaunchRequested`; the app does the launching."""
from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Button, Input, Label, Select, Static

from minimind_tui.gpu.mapping import free_gb_of, total_gb_of
from minimind_tui.gpu.monitor import GpuReading
from minimind_tui.runs import layout
from minimind_tui.runs.launcher import RUN_ENV, TrainSpec, shell_command
from minimind_tui.tokenizer_choice import choose_tokenizer_dir, find_weights
from minimind_tui.train.args import COMMON_DEFAULTS, MODE_DEFAULTS, default_text
from minimind_tui.train.memory_plan import plan_memory

from ..datasets import DemoData, demo_data, demo_mode_of, describe_file, flag_values, local_datasets
from ..presets import CUSTOM, PRESETS, tokenizer_vocab

MODE_FIELDS = ("learning_rate", "accumulation_steps")  # what choosing a mode resets to the trainer's default
DTYPES = ("bfloat16", "float16", "float32")
TRAINER_DEFAULT_INIT = "default"
DEMO_CHOICES = {"demo:pretrain": "demo pretrain corpus (bundled)", "demo:sft": "demo SFT corpus (bundled)"}
# Form fields a recipe (the demo's train flags) may set.
RECIPE_FIELDS = ("batch_size", "max_seq_len", "learning_rate", "epochs", "accumulation_steps")


def trainer_default(field: str, mode: str = "pretrain") -> str:
    """The trainer's own default for a flag, as the form shows it: the form starts where the CLI does."""
    return default_text({**COMMON_DEFAULTS, **MODE_DEFAULTS[mode]}[field])


class FormError(ValueError):
    pass


@dataclass
class _Choices:
    datasets: list[tuple[str, str]]
    checkpoints: list[tuple[str, str]]
    out_weights: set[str]          # names of out/*.pth: the trainer's default SFT init is looked up there
    demo: DemoData | None          # only when the app was opened with --demo


class TrainForm(VerticalScroll):
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

    def compose(self) -> ComposeResult:
        with Grid(id="form-grid"):
            yield Label("Mode")
            yield Select([("pretrain", "pretrain"), ("SFT", "sft")], value="sft" if self.demo else "pretrain",
                         allow_blank=False, compact=True, id="mode")
            yield Label("Model")
            yield Select([(p.label, k) for k, p in PRESETS.items()] + [("custom", CUSTOM)],
                         value="demo" if self.demo else "small", allow_blank=False, compact=True, id="preset")
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
            yield Select([(d, d) for d in DTYPES], value="bfloat16", allow_blank=False, compact=True, id="dtype")
            yield Label("device")
            yield Input("cuda:0", compact=True, id="device")
            yield Label("GPUs")
            yield Input("1", type="integer", compact=True, id="gpus")
            yield Label("more")
            yield Input(placeholder="other train flags, e.g. --save_interval 200 --warmup_iters 100", compact=True,
                        id="extra", classes="wide")
        yield Static("", id="command")
        with Horizontal(id="launch-row"):
            yield Static("", id="estimate")
            yield Button("Launch", id="launch", variant="success", compact=True)

    def on_mount(self) -> None:
        self._apply_mode(self._value("mode"))
        self._apply_preset(self._value("preset"))
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
        init = self.query_one("#init", Select)
        self._keep_choice(init, [("trainer default (out/pretrain_<dim>.pth)", TRAINER_DEFAULT_INIT),
                                 *choices.checkpoints], self._value("init") or TRAINER_DEFAULT_INIT)
        self.scans_done += 1
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
        self.query_one("#preset", Select).value = flag_values(recipe).get("preset", "demo")
        self._apply_preset(self.query_one("#preset", Select).value)
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
        for field in RECIPE_FIELDS:
            if field in values:
                self.query_one(f"#{field}", Input).value = values[field]

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
        elif self._demo_data is not None and self._value("data_path") in self._demo_paths():
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
        self.refresh_preview()

    @on(Input.Changed)
    @on(Select.Changed)
    def _any_changed(self) -> None:
        self.refresh_preview()

    def _apply_mode(self, mode: str) -> None:
        for field in MODE_FIELDS:
            self.query_one(f"#{field}", Input).value = trainer_default(field, mode)
        sft = mode == "sft"
        self.query_one("#init", Select).disabled = not sft
        self.query_one("#init_label", Label).update("Base" if sft else "Base (SFT)")
        self.refresh_preview()

    def _apply_preset(self, key: str) -> None:
        custom = key == CUSTOM
        for field in ("dim", "n_layers"):
            self.query_one(f"#{field}", Input).disabled = not custom
        if not custom:
            p = PRESETS[key]
            self.query_one("#dim", Input).value = str(p.dim)
            self.query_one("#n_layers", Input).value = str(p.n_layers)
            if p.max_seq_len:
                seq = self.query_one("#max_seq_len", Input)
                if not seq.value.isdigit() or int(seq.value) > p.max_seq_len:
                    seq.value = str(p.max_seq_len)
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

    def _int(self, widget_id: str, label: str, minimum: int = 1) -> int:
        text = self._value(widget_id)
        try:
            value = int(text)
        except ValueError:
            raise FormError(f"{label}: {text!r} is not a whole number") from None
        if value < minimum:
            raise FormError(f"{label}: must be at least {minimum}")
        return value

    def spec(self) -> TrainSpec:
        """The form as a TrainSpec; FormError names the field that is wrong."""
        mode = self._value("mode")
        data_path = self._value("data_path")
        if not data_path:
            raise FormError("dataset: choose a file or type a path")
        try:
            lr = float(self._value("learning_rate"))
        except ValueError:
            raise FormError(f"lr: {self._value('learning_rate')!r} is not a number") from None
        if not lr > 0:
            raise FormError("lr: must be positive")
        preset = self._value("preset")
        init = self._value("init") if mode == "sft" else TRAINER_DEFAULT_INIT
        device = self._value("device") or "cpu"
        try:
            extra = shlex.split(self._value("extra"))
        except ValueError as e:
            raise FormError(f"more flags: {e}") from None
        return TrainSpec(
            mode=mode, data_path=data_path, batch_size=self._int("batch_size", "batch"),
            learning_rate=lr, epochs=self._int("epochs", "epochs"),
            accumulation_steps=self._int("accumulation_steps", "accum"),
            dim=self._int("dim", "dim", 8), n_layers=self._int("n_layers", "layers"),
            max_seq_len=self._int("max_seq_len", "seq len", 2),
            use_moe=PRESETS[preset].use_moe if preset in PRESETS else False,
            dtype=self._value("dtype"), device=device,
            init=None if init == TRAINER_DEFAULT_INIT else init,
            gpus=self._int("gpus", "GPUs"), extra=extra)

    def refresh_preview(self) -> None:
        if not self.is_mounted:
            return
        command = self.query_one("#command", Static)
        estimate = self.query_one("#estimate", Static)
        try:
            spec = self.spec()
        except FormError as e:
            command.update(Text(f"⚠ {e}", style="yellow"))
            estimate.update("")
            return
        text = Text("$ " + shell_command(spec.train_args(), gpus=spec.gpus), style="bold")
        if spec.gpus > 1:
            text.append("\none node; its rendezvous listens on 127.0.0.1 only. Several nodes: run torchrun on each "
                        "(README), with the master port unreachable from outside the cluster", style="dim")
        missing = self._missing_init(spec)
        if missing:
            text.append(f"\n⚠ {missing} not found: run a pretrain first, or choose a Base checkpoint", style="yellow")
        command.update(text)
        estimate.update(self._estimate_text(spec))

    def _missing_init(self, spec: TrainSpec) -> str | None:
        """The trainer's default SFT init ({out_dir}/pretrain_{dim}[_moe].pth), when the scan did not find it."""
        if spec.mode != "sft" or spec.init or self._out_weights is None or spec.out_dir != "out":
            return None
        name = layout.weights_name("pretrain", spec.dim, spec.use_moe)
        return None if name in self._out_weights else f"out/{name}"

    def _estimate_text(self, spec: TrainSpec) -> Text:
        vocab = tokenizer_vocab(self._tokenizer_dir(spec))
        chunk = self._extra_flag("chunk_tokens")
        plan = plan_memory(spec.dim, spec.n_layers, spec.batch_size, spec.max_seq_len, use_moe=spec.use_moe,
                           vocab=vocab, dtype=spec.dtype, device=spec.device, world_size=spec.gpus,
                           chunk_tokens=int(chunk) if chunk and chunk.lstrip("-").isdigit() else None,
                           gpu_total_gb=self._gpu_gb(spec.device, spec.gpus, total_gb_of))
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
            max_seq_len: int | None = self._int("max_seq_len", "seq len", 2)
        except FormError:
            max_seq_len = None  # the Dataset tab keeps its own
        try:
            tokenizer = self._tokenizer_dir(self.spec())
        except FormError:
            tokenizer = self._tokenizer_dir(None)
        return self.PreviewRequested(path, self._value("mode"), max_seq_len, str(tokenizer))

    def _tokenizer_dir(self, spec: TrainSpec | None) -> Path:
        """The tokenizer the trainer will use for this form: --tokenizer, else (SFT) the one recorded with the
        base weights, else the project's or the bundled one. The preview and the estimate must use it too."""
        weights = None
        if spec is not None and spec.mode == "sft":
            base = spec.init or str(Path(spec.out_dir) / layout.weights_name("pretrain", spec.dim, spec.use_moe))
            weights = find_weights(self.root / base)
        return choose_tokenizer_dir(self.root, self._tokenizer_flag(), weights=weights)[0]

    def _tokenizer_flag(self) -> str | None:
        """--tokenizer DIR from the extra flags: the tokenizer the trainer will use instead of its default."""
        return self._extra_flag("tokenizer")

    def _extra_flag(self, name: str) -> str | None:
        """The value of --NAME (or its dash spelling) among the extra flags, or None."""
        try:
            extra = shlex.split(self._value("extra"))
        except ValueError:
            return None
        spellings = {f"--{name}", f"--{name.replace('_', '-')}"}
        for i, arg in enumerate(extra):
            if arg in spellings and i + 1 < len(extra):
                return extra[i + 1]
            flag, eq, value = arg.partition("=")
            if eq and flag in spellings:
                return value
        return None

    @on(Button.Pressed, "#launch")
    def request_launch(self) -> None:
        try:
            spec = self.spec()
        except FormError as e:
            self.app.notify(str(e), title="Cannot launch", severity="error")
            return
        self.post_message(self.LaunchRequested(spec))
