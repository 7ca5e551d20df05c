"""The training loop: set-up, the step, logging, checkpoints, and how a run ends.

Read top to bottom: `train()` resolves settings and the run directory; `Trainer.run()` builds the
model, data and optimizer (`_build`), then loops: `train_step` computes and counts (a StepResult),
`_after_step` logs, saves and stops. metrics.py turns counts into events, checkpointing.py writes files.

No wasted work, same loss as MiniMind: batches come from the token cache (tokenised once); on the CPU
a dense model's batch is packed into one unpadded row (the model's packed-rows path), elsewhere it is split into
length-sorted passes padded only to their own longest sample (--chunk_tokens); every pass adds its
summed cross-entropy over the whole batch's mask count, so loss and gradients equal the reference's
one padded pass; the vocab projection runs only on loss-mask rows.

Fault-injection hooks (environment variables, listed in fault_hooks.py; one call before each step):
simulated out-of-memory at a step or above a batch size, a stop request after step k, a hang after step
k or in every save.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from dataset.atomic import stale_temps
from dataset.batching import (
    ChunkedCollator,
    Collator,
    PackedBatch,
    PackingCollator,
    PairCollator,
    batches_per_epoch,
    epoch_batches,
    iterate,
)
from minimind_tui.errors import UserError
from minimind_tui.runs import layout, pids
from minimind_tui.runs.events import SCHEMA_VERSION, EventWriter
from minimind_tui.runs.launcher import resume_command, shell_quote
from minimind_tui.tokenizer_choice import recorded_meta, sidecar_path
from model.config import GENERATIONS
from model.model import MiniMindLM

from . import (
    EXIT_DONE,
    EXIT_FAILED,
    EXIT_OOM,
    auto_batch,
    checkpointing,
    devices,
    distributed,
    fault_hooks,
    precheck,
    upstream_files,
)
from .args import conflicts_on_resume, export_path, model_config, resolve, teacher_path, upstream_resume_path
from .data import held_out_split, prepare
from .heartbeat import Heartbeat
from .lock import TrainerLock
from .logtee import LogTee
from .memory_plan import GiB, default_chunk_tokens
from .metrics import StepMeter, format_line, peak_allocated_gib
from .model_setup import (
    build_model,
    choose_generation,
    choose_tokenizer,
    init_weights_file,
    initial_weights,
    load_init,
    load_resumed,
    write_sidecar,
)
from .run_dir import check_new_run_dir, create, saved_settings, start_up_writes, write_config
from .schedule import learning_rate
from .signals import Stopped, StopRequest
from .stages import stage_for
from .trackers import open_trackers
from .watchdog import StallWatchdog


def samples_of(cache, mode: str) -> int:
    """What a run's batches draw from: the token cache's samples, or DPO's pairs (two side samples each,
    dataset.datasets.DPOSides)."""
    return len(cache) // 2 if mode == "dpo" else len(cache)


def samples_in(batch) -> int:
    return len(batch.spans) if isinstance(batch, PackedBatch) else len(batch.X)


def use_packing(settings: dict, device: str, use_moe: bool) -> bool:
    """Packed rows (no padding at all) on CPU for dense models, unless --chunk_tokens asks otherwise.
    On CUDA, length-sorted padded passes keep the GPU's kernels few and large. DPO and distillation run
    padded passes (stages.py says why)."""
    return (settings.get("chunk_tokens") is None and not device.startswith("cuda") and not use_moe
            and settings.get("mode") not in ("dpo", "distill"))


def make_collator(cache, settings: dict, device: str, pad_id: int, use_moe: bool):
    cuda = device.startswith("cuda")
    if settings.get("mode") == "dpo":  # both sides of each pair in one padded pass
        return PairCollator(Collator(cache, pad_id=pad_id, pin_memory=cuda))
    if use_packing(settings, device, use_moe):
        return PackingCollator(cache, pin_memory=cuda)
    return ChunkedCollator(Collator(cache, pad_id=pad_id, pin_memory=cuda), chunk_budget(settings, device))


def compute_module(model, settings: dict, device: str):
    """What the step calls: the model itself, whose forward takes packed batches as well."""
    return model


def chunk_budget(settings: dict, device: str) -> int | None:
    """Padded tokens per forward pass on the chunked path: None = the whole batch in one pass, 0 = one
    sample per pass (make_collator's passes). The CUDA default grows with the card (memory_plan)."""
    budget = settings.get("chunk_tokens")
    if budget is None:
        budget = default_chunk_tokens(gpu_total_gib(device)) if device.startswith("cuda") else 0
    return None if budget < 0 else budget


def gpu_total_gib(device: str) -> float | None:
    try:
        return torch.cuda.get_device_properties(torch.device(device)).total_memory / GiB
    except Exception:  # no such device (a plan made on a CPU box, a test): the smaller default
        return None


def rows_per_pass(settings: dict, device: str, use_moe: bool) -> int | None:
    """Samples of --max_seq_len tokens that one forward pass holds (None: the whole batch, as packing does)."""
    budget = chunk_budget(settings, device)
    if use_packing(settings, device, use_moe) or budget is None:
        return None
    return max(1, budget // settings["max_seq_len"])


def oom_advice(settings: dict, device: str, use_moe: bool) -> tuple[int | None, int | None]:
    """What to try after running out of memory: (a batch size, a --chunk_tokens), at most one of them.

    While a batch is split into passes of at most the chunk budget (batch x max_seq_len above it), a pass
    of the budget's size sets the peak, and halving the batch runs the same passes until the batch is
    below budget / max_seq_len: so the budget is what to halve. Passes of one sample each leave neither."""
    batch, seq = settings["batch_size"], settings["max_seq_len"]
    budget = chunk_budget(settings, device)
    if not use_packing(settings, device, use_moe) and budget is not None and batch * seq > budget:
        return None, (max(seq, budget // 2) if budget > seq else None)
    return batch // 2 or None, None  # None: even one sample does not fit


def optimizer_step(optimizer, scaler, grad_norm: torch.Tensor) -> torch.Tensor:
    """The optimizer step, skipped when the gradient norm is inf or NaN; returns 1.0 if it was skipped,
    as a tensor on the device (reading it waits for the GPU, so only reports do).

    One non-finite gradient would make AdamW write NaN into every weight, for good. The fp16 GradScaler
    skips such steps by itself. Otherwise fused AdamW (CUDA's) takes the same `found_inf` flag the scaler
    hands it and skips the update on the GPU, weights, moments and step count untouched, with no host
    sync; other optimizers (the CPU's) are asked on the host, which costs nothing there.
    """
    skipped = (~torch.isfinite(grad_norm)).float()
    if scaler.is_enabled():
        scaler.step(optimizer)
    elif optimizer.defaults.get("fused"):
        optimizer.found_inf = skipped
        try:
            optimizer.step()
        finally:
            del optimizer.found_inf
    elif not skipped:
        optimizer.step()
    scaler.update()
    return skipped


def train(mode: str, explicit: dict, root: str = ".") -> int:
    """Entry point of `minimind-tui train MODE`. Returns the exit status (user errors raise)."""
    device = devices.choose_device(explicit.get("device"))
    # No umask of our own: out/ weights are for sharing and follow the user's. Run folders are made 0700
    # (layout.create_run_dir, run_dir.create), which keeps the checkpoints and logs inside them private.
    info, device = distributed.init(device)
    stop = StopRequest().install()
    try:
        return _train(mode, explicit, root, info, device, stop)
    finally:
        stop.uninstall()
        distributed.shutdown(info)


def _train(mode, explicit, root, info, device, stop) -> int:
    resume_from = None
    if explicit.get("resume"):
        run_dir, resume_from = checkpointing.resolve_resume(Path(explicit["resume"]))
        if explicit.get("run_dir") and Path(explicit["run_dir"]).resolve() != run_dir.resolve():
            raise UserError("--resume continues in the run's own directory; drop --run_dir")
        saved = saved_settings(run_dir, mode)
        clashes = conflicts_on_resume(explicit, saved)
        if clashes:
            raise UserError(f"a resumed run keeps its own settings; these differ: {', '.join(clashes)}. "
                            f"Start a new run (with --init {shell_quote(run_dir)}) to change them")
        settings = resolve(mode, explicit, base=saved)
        precheck.check(settings, files=False)
        settings["resume"] = str(explicit["resume"])
    else:
        explicit = {**explicit, "generation": choose_generation(explicit, mode, log=print if info.is_main
                                                                else lambda _: None)}
        settings = resolve(mode, explicit)
        run_dir = Path(explicit["run_dir"]) if explicit.get("run_dir") else None
        # A mistake should not leave a new run folder behind. Into a given --run_dir (the dashboard made it)
        # the trainer records the same refusal, so the run says why it ended.
        warnings = precheck.check(settings, files=run_dir is None)
        for warning in warnings if info.is_main else ():
            print(f"warning: {warning}", file=sys.stderr, flush=True)
        if run_dir is None and info.is_main:
            with start_up_writes(layout.runs_dir(Path(root)), settings):
                run_dir = layout.create_run_dir(Path(root), mode)
        run_dir = Path(distributed.broadcast_object(str(run_dir), info))
        check_new_run_dir(run_dir)  # a run with checkpoints, or not a run folder at all: refused, nothing touched
    settings["device"] = device
    settings["run_dir"] = str(run_dir)
    if settings["dtype"] is None:  # a resumed run keeps the dtype it was saved with
        settings["dtype"] = devices.default_dtype(device)
        if settings["dtype"] == "float16" and info.is_main:
            print(f"dtype: float16 with loss scaling ({device} computes bfloat16 only by emulation; "
                  f"--dtype chooses)", flush=True)
    trainer = Trainer(settings, Path(run_dir), info, device, stop, resume_from if explicit.get("resume") else None,
                      resuming=bool(explicit.get("resume")))
    trainer.check_files = bool(explicit.get("run_dir")) and not explicit.get("resume")
    return trainer.run()


@dataclass
class StepResult:
    """What one optimizer step produced on this rank, before anything is reduced across ranks or
    turned into an event (metrics.py does that)."""
    loss_sum: torch.Tensor   # the micro-batches' losses summed, on the device
    n_micro: int             # micro-batches in the step
    grad_norm: torch.Tensor  # before clipping
    lr: float
    real_tokens: int
    padded_tokens: int       # tokens computed, padding included
    samples: int


class Trainer:
    """One run, split as torchtitan splits its trainer: `_build` (model, DDP, compile, optimizer, scaler,
    resume state), `train_step` (forward, backward and optimizer step; only computes and counts), and
    `_after_step` (log, save, stop)."""

    def __init__(self, settings: dict, run_dir: Path, info, device: str, stop: StopRequest,
                 resume_checkpoint: Path | None, resuming: bool):
        self.settings = settings
        self.run_dir = run_dir
        self.info = info
        self.device = device
        self.stop = stop
        self.resume_checkpoint = resume_checkpoint
        self.resuming = resuming
        self.events: EventWriter | None = None
        self._lock = self._tee = self._heartbeat = self._watchdog = None
        self.trackers = None
        self.faults = fault_hooks.FaultHooks.from_env()
        self.step = 0             # optimizer steps done; a resume starts at the checkpoint's
        self.total = 0            # optimizer steps in the whole run
        self.start_at = (0, 0)    # (epoch, step within the epoch) the loop begins at
        self.last_saved_step = -1
        self.loss_value = float("nan")  # the loss over all ranks at the last log or save step
        self._loss_at = (-1, self.loss_value)
        self.nonfinite_steps = 0  # optimizer steps skipped for an inf/NaN gradient (reported so far)
        self._writer = checkpointing.BackgroundWriter()
        self._upstream_resume: upstream_files.Resume | None = None  # --from_resume 1 found its file
        self._last_save_t = 0.0
        self.weights_file: Path | None = None  # the newest saved weights: out/<name>.pth, or a checkpoint's
        self.check_files = False  # precheck the files once the run directory records the outcome (--run_dir)

    # ----- output: only rank 0 writes to the run directory -----
    def emit(self, event: str, **fields) -> None:
        if self.events is not None:
            try:
                self.events.emit(event, **fields)
            except OSError:
                pass  # a full disk: the heartbeat going stale tells the dashboard

    def log(self, message: str) -> None:
        if self.info.is_main:
            print(message, flush=True)

    def _open_run_dir(self) -> None:
        if not self.info.is_main:
            return
        create(self.run_dir)
        self._lock = TrainerLock(self.run_dir).acquire()
        self._tee = LogTee(self.run_dir / layout.LOG).start()
        removed = checkpointing.clean_leftovers(self.run_dir)
        if removed:
            print(f"removed {len(removed)} interrupted checkpoint save(s): {', '.join(p.name for p in removed)}")
        self._remove_stale_exports()
        self._heartbeat = Heartbeat(self.run_dir).start()
        self.events = EventWriter(self.run_dir / layout.METRICS)
        self._watchdog = StallWatchdog(self.emit, gpu_util=self._gpu_util if self.device.startswith("cuda")
                                       else None).start()

    def _remove_stale_exports(self) -> None:
        """Temporary files of an export into --out_dir interrupted by a kill (dataset.atomic's names)."""
        out = Path(self.settings["out_dir"])
        for tmp in stale_temps(out, "*.pth", pids.alive) if out.is_dir() else []:
            tmp.unlink(missing_ok=True)

    def _gpu_util(self) -> int | None:
        """This device's utilisation in percent from NVML (None when NVML cannot tell)."""
        try:
            return int(torch.cuda.utilization(torch.device(self.device)))
        except Exception:
            return None

    def _close_run_dir(self) -> None:
        self._drain_writer()
        if self.trackers:
            self.trackers.finish()
        for closer in (self._watchdog and self._watchdog.stop, self._heartbeat and self._heartbeat.stop,
                       self.events and self.events.close,
                       self._tee and self._tee.stop, self._lock and self._lock.release):
            if closer:
                try:
                    closer()
                except Exception:
                    pass

    # ----- the whole run, and how it ends -----
    def run(self) -> int:
        try:
            with start_up_writes(self.run_dir, self.settings, undo=self._close_run_dir):
                self._open_run_dir()
            self.log(f"run directory: {self.run_dir}")
            if self.check_files:
                for warning in precheck.check(self.settings):
                    self.log(f"warning: {warning}")  # into train.log
            t_begin = time.time()
            self._build()
            self._announce(setup_s=time.time() - t_begin)
            return self._train_loop()
        except Stopped:
            self.emit("end", status="stopped", reason=f"{self.stop.signal_name} before training started", step=0)
            self.log("stopped before training started")
            return EXIT_DONE
        except torch.OutOfMemoryError as e:
            self._drain_writer()
            return self._out_of_memory(e)
        except Exception as e:
            self._drain_writer()
            if getattr(e, "user_facing", False):
                self.emit("end", status="failed", reason=str(e), step=self.step)
                raise
            if self.info.is_main:
                traceback.print_exc()  # into train.log while the tee is on
            self.emit("end", status="failed", reason=f"{type(e).__name__}: {e}", step=self.step)
            return EXIT_FAILED
        finally:
            self._close_run_dir()

    def _out_of_memory(self, e) -> int:
        s = self.settings
        mem = peak_allocated_gib(self.device)  # since the last step event
        batch, step = s["batch_size"], self.step
        suggestion, chunk = oom_advice(s, self.device, bool(s["use_moe"]))
        self.emit("oom", step=step, rank=self.info.rank, batch_size=batch, mem_gb=mem, suggestion=suggestion,
                  chunk_tokens=chunk_budget(s, self.device), suggest_chunk_tokens=chunk)
        if chunk:
            advice = f"try --chunk_tokens {chunk}"
            detail = (f"{advice} (each forward pass holds up to {chunk_budget(s, self.device)} tokens, and a "
                      f"smaller batch would run the same passes)")
        elif suggestion:
            advice = f"try --batch_size {suggestion}"
            detail = f"{advice} (with --accumulation_steps {s['accumulation_steps'] * 2} for the same effective batch)"
        else:
            advice = detail = "even one sample does not fit; try a smaller --max_seq_len or model"
        self.emit("end", status="oom", reason=f"out of memory at step {step} with batch size {batch}; {advice}",
                  step=step)
        print(f"out of memory at step {step} (batch size {batch}): {str(e).splitlines()[0]}\n{detail}",
              file=sys.stderr, flush=True)
        return EXIT_OOM

    def _check_stop(self) -> None:
        if self.stop.requested:
            raise Stopped()

    # ----- build: everything the loop needs, in the order it needs it -----
    def _build(self) -> None:
        s, info = self.settings, self.info
        self.stage = stage_for(s, log=self.log, reference_weights=self._starting_weights if self.resuming else None,
                               teacher_file=self._teacher_file() if s["mode"] == "distill" else None)
        model, loaded = self._setup_model()
        self.stage.after_init(model, self.device)
        self.model = model  # the plain MiniMindLM: what is saved and exported
        if s.get("auto_batch_size") and not self.resuming:  # a resumed run keeps the batch it chose
            self._choose_batch_size(model)
        if info.is_main and not self.resuming:
            write_config(self.run_dir, s, {"model_config": self.config.to_dict(), "world_size": info.world_size,
                                           "params": model.num_parameters()})
        self._prepare_data()
        self.params = self.stage.trainable(model)  # LoRA: the adapters only; frozen before DDP registers them
        self.module = self._parallelize(model)
        cuda = self.device.startswith("cuda")
        self.optimizer = torch.optim.AdamW(self.params, lr=s["learning_rate"], fused=cuda or None)
        self.scaler = torch.amp.GradScaler("cuda", enabled=cuda and s["dtype"] == "float16")
        devices.configure_precision(self.device, s["dtype"])
        self._nonfinite_window = torch.zeros((), device=self.device)  # skipped steps not yet reported
        if loaded is not None:
            self._restore(loaded.state)
            self.last_saved_step = self.step
        elif self._upstream_resume is not None:
            self._restore_upstream(self._upstream_resume)
        self.trackers = open_trackers(s, self.run_dir.name, log=self.log) if info.is_main else None
        self.autocast = self._autocast()

    def _setup_model(self):
        """The tokenizer, the model config, and the model with its starting weights: a checkpoint's on
        resume, else --init's. Returns (model, the loaded checkpoint or None)."""
        s = self.settings
        loaded, init_file, init_meta = None, None, {}
        if self.resuming:
            loaded = (checkpointing.load_checkpoint(self.resume_checkpoint) if self.resume_checkpoint
                      else checkpointing.load_latest(self.run_dir, log=self._fallback_message))
            init_meta = loaded.meta
        elif s.get("from_resume") == 1 and upstream_resume_path(s).is_file():
            self._upstream_resume = upstream_files.read_resume(upstream_resume_path(s), self.info.world_size)
        else:
            init_file = initial_weights(s, log=self._fallback_message)
            init_meta = recorded_meta(init_file) if init_file is not None else {}
            if s.get("from_resume") == 1:  # upstream starts afresh too when its file is missing
                self.log(f"--from_resume 1: no {upstream_resume_path(s)} yet; starting from the initial weights")
        self.tokenizer = choose_tokenizer(s["tokenizer"], init_meta, log=self.log, init_file=init_file)
        s["tokenizer"] = str(self.tokenizer.path.resolve()) if self.tokenizer.path else None
        self.config = model_config(s, self.tokenizer.vocab_size)
        model = build_model(self.config, s["seed"])
        if loaded is not None:
            self.stage.before_load(model)
            load_resumed(model, loaded, self.run_dir)
            self.log(f"resuming from {loaded.path} (step {loaded.state['step']})")
        elif self._upstream_resume is not None:
            load_init(model, self._upstream_resume.path, log=self.log, tokenizer_dir=s["tokenizer"],
                      state=self._upstream_resume.model)
        elif init_file is not None:
            load_init(model, init_file, log=self.log, tokenizer_dir=s["tokenizer"])
        return model, loaded

    def _starting_weights(self) -> MiniMindLM:
        """A resumed DPO run's reference model: the weights its --init named, as the run started from them."""
        model = build_model(self.config, self.settings["seed"])
        init = initial_weights(self.settings)
        if init is not None:
            load_init(model, init, log=lambda _: None, tokenizer_dir=self.settings["tokenizer"])
            self.log(f"DPO reference model: {init}")
        return model

    def _teacher_file(self) -> Path:
        """distill's teacher weights: a Hugging Face folder as it is, else the weights file in a run or
        checkpoint folder (as --init takes them)."""
        given = teacher_path(self.settings)
        if (given / "config.json").is_file():
            return given
        return init_weights_file(given)

    def _choose_batch_size(self, model) -> None:
        """--auto_batch_size: the largest batch up to --batch_size that fits; accumulation makes up the rest.
        When the chunk budget bounds a pass, the budget shrinks instead (auto_batch.py says why).
        Every rank probes its own device; all take the smallest answer so the data order stays shared."""
        s = self.settings
        requested = s["batch_size"]
        model.to(self.device)
        rows = rows_per_pass(s, self.device, self.config.use_moe)
        try:
            chosen, fit_rows = auto_batch.find_batch_size(model, requested, s["max_seq_len"],
                                                          self.config.vocab_size, self.device, rows,
                                                          self._autocast(), log=self.log)
        except torch.OutOfMemoryError:
            s["batch_size"] = 1  # the OOM report then says what did not fit: a single sample
            raise
        answers = distributed.gather_objects((chosen, fit_rows), self.info)
        chosen = min(b for b, _ in answers)
        factor = requested // chosen
        s["batch_size"], s["accumulation_steps"] = chosen, s["accumulation_steps"] * factor
        text = (f"auto batch size: {chosen} fits at {s['max_seq_len']} tokens" +
                (f" (asked {requested}; accumulation {s['accumulation_steps']} keeps the effective batch)"
                 if factor > 1 else ""))
        if rows is not None and any(r is not None and r < rows for _, r in answers):
            before = chunk_budget(s, self.device)
            s["chunk_tokens"] = min(r for _, r in answers) * s["max_seq_len"]
            text += (f" in forward passes of at most {s['chunk_tokens']} tokens "
                     f"(--chunk_tokens {s['chunk_tokens']}; was {before})")
        self.log(text)
        self.emit("log", level="info", message=text)

    def _fallback_message(self, text: str) -> None:
        self.log(text)
        self.emit("log", level="warning", message=text)

    def _prepare_data(self) -> None:
        """The token cache, the validation set, and how many optimizer steps the training samples make."""
        s, info = self.settings, self.info
        self.emit("prepare", stage="data", done=0, total=None)
        self.cache = prepare(s, self.tokenizer, info, emit=self.emit if info.is_main else None,
                             check_stop=self._check_stop)
        n = samples_of(self.cache, s["mode"])
        self.collate = make_collator(self.cache, s, self.device, self.tokenizer.pad_token_id, self.config.use_moe)
        self.train_index = None  # cache indices trained on, when some are held out (else all)
        self.eval_set = None     # (collator, cache indices) of the validation set
        if s.get("eval_ratio"):
            self.train_index, held = held_out_split(n, s["eval_ratio"], s["seed"])
            self.eval_set = (self.collate, held)
            n = len(self.train_index)
            self.log(f"validation: {len(held)} of {len(self.cache)} samples held out (--eval_ratio "
                     f"{s['eval_ratio']:g}, drawn by --seed {s['seed']}); training on {n}")
        elif s.get("eval_data"):
            cache = prepare({**s, "data_path": s["eval_data"]}, self.tokenizer, info, check_stop=self._check_stop)
            collate = make_collator(cache, s, self.device, self.tokenizer.pad_token_id, self.config.use_moe)
            self.eval_set = (collate, np.arange(samples_of(cache, s["mode"])))
        self.n_train = n
        self.batches_per_epoch = batches_per_epoch(n, s["batch_size"], info.world_size)
        if self.batches_per_epoch == 0:
            raise UserError(f"{s['data_path']}: {n} samples are fewer than one global batch "
                            f"({s['batch_size']} x {info.world_size} processes)"
                            + (" once --eval_ratio's share is held out" if self.train_index is not None else ""))
        self.steps_per_epoch = math.ceil(self.batches_per_epoch / s["accumulation_steps"])
        self.total = s["epochs"] * self.steps_per_epoch
        self.eval_interval = s.get("eval_interval") or max(1, self.total // 10)

    def _parallelize(self, model):
        """What the step calls: the model on its device, packed or not, wrapped in DDP, compiled."""
        model.to(self.device)
        module = compute_module(model, self.settings, self.device)
        if self.info.enabled:
            # MoE: an expert that got no tokens has no gradient this step, which DDP must be told to expect.
            module = torch.nn.parallel.DistributedDataParallel(
                module, device_ids=[torch.device(self.device).index] if self.device.startswith("cuda") else None,
                find_unused_parameters=self.config.use_moe,
                broadcast_buffers=False)  # the only buffers are the RoPE tables, equal on every rank
        if self.settings["compile"]:
            self.log("compiling the model (torch.compile)...")
            module = torch.compile(module, dynamic=True)  # every pass has its own length
        return module

    def _restore(self, state: dict) -> None:
        """Optimizer, scaler, position in the data and random state from a checkpoint's training state."""
        self.optimizer.load_state_dict(state["optimizer"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.nonfinite_steps = int(state.get("nonfinite_steps", 0))
        self.start_at = (int(state["epoch"]), int(state["next_group"]))
        rngs = state.get("rng") or []
        if rngs:
            checkpointing.set_rng_state(rngs[self.info.rank] if self.info.rank < len(rngs) else rngs[0],
                                        self.device)
        if state.get("world_size") != self.info.world_size:
            self.log(f"note: the checkpoint was written by {state.get('world_size')} processes, this run has "
                     f"{self.info.world_size}: the data order continues by global batch")

    def _restore_upstream(self, resume: upstream_files.Resume) -> None:
        """Optimizer, scaler and position from an upstream resume file (--from_resume 1). Its micro-batch count
        becomes whole optimizer steps of this run (a partial group is trained again); the data order is ours."""
        accum = self.settings["accumulation_steps"]
        if upstream_files.optimizer_fits(self.optimizer, resume.optimizer):
            self.optimizer.load_state_dict(resume.optimizer)
        else:
            self.log(f"{resume.path}: its optimizer state does not fit this model; AdamW starts afresh")
        if resume.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(resume.scaler)
        epoch, group = resume.epoch, min(resume.micro_batches // accum, self.steps_per_epoch)
        if group == self.steps_per_epoch:
            epoch, group = epoch + 1, 0
        self.start_at = (epoch, group)
        self.step = epoch * self.steps_per_epoch + group
        self.log(f"resuming from {resume.path}: epoch {epoch + 1}, {resume.micro_batches} micro-batches done "
                 f"(step {self.step} of {self.total})")

    def _autocast(self):
        if self.device.startswith("cuda") and self.settings["dtype"] in ("bfloat16", "float16"):
            return torch.autocast("cuda", dtype=getattr(torch, self.settings["dtype"]))
        return contextlib.nullcontext()  # CPU: fp32, as the reference effectively does there

    def _announce(self, setup_s: float) -> None:
        s, info = self.settings, self.info
        n_params, n = self.model.num_parameters(), samples_of(self.cache, s["mode"])
        self.emit("start", schema=SCHEMA_VERSION, run_id=self.run_dir.name, mode=s["mode"], pid=os.getpid(),
                  world_size=info.world_size, total=self.total, config=self.config.to_dict(), params=n_params,
                  resumed_from=self.step if self.resuming else None, batch_size=s["batch_size"],
                  accumulation_steps=s["accumulation_steps"], device=self.device,
                  dtype=s["dtype"] if self.device.startswith("cuda") else "float32", samples=n,
                  tokenizer=s["tokenizer"], data_path=s["data_path"], setup_s=round(setup_s, 3))
        self.log(f"{s['mode']} ({GENERATIONS[self.config.generation]}): {n_params / 1e6:.2f}M parameters, "
                 f"{n} {'pairs' if s['mode'] == 'dpo' else 'samples'}, {self.total} optimizer steps "
                 f"({s['epochs']} epoch(s) x {self.steps_per_epoch}), batch {s['batch_size']} x "
                 f"{s['accumulation_steps']} accumulation"
                 f"{f' x {info.world_size} processes' if info.enabled else ''}, device {self.device}")

    # ----- the loop -----
    def _train_loop(self) -> int:
        s = self.settings
        accum, nb = s["accumulation_steps"], self.batches_per_epoch
        self.meter = StepMeter(self.total, start_step=self.step)
        self._last_save_t = self._now()
        epoch0, step0 = self.start_at
        result = None  # a resumed run may have no step left
        for epoch in range(epoch0, s["epochs"]):
            batches = epoch_batches(self.n_train, epoch, s["batch_size"], s["seed"], bool(s["shuffle"]),
                                    self.info.world_size, self.info.rank)
            if self.train_index is not None:  # positions among the training samples -> cache indices
                batches = [self.train_index[b] for b in batches]
            first = step0 if epoch == epoch0 else 0
            workers = 0 if s["mode"] == "dpo" else s["num_workers"]  # pairs: small data, collated here
            stream = iterate(batches[first * accum:], self.collate, workers)
            for k in range(first, self.steps_per_epoch):
                self.faults.before_step(self.step, s["batch_size"], self.stop, self.model)
                result = self.train_step(stream, n_micro=min(accum, nb - k * accum))
                next_at = (epoch, k + 1) if k + 1 < self.steps_per_epoch else (epoch + 1, 0)
                status = self._after_step(result, epoch, next_at)
                if status is not None:
                    return status
        return self._finish(result)

    def train_step(self, stream, n_micro: int) -> StepResult:
        """One optimizer step over `n_micro` micro-batches, each a list of length-sorted forward passes."""
        s, info, model = self.settings, self.info, self.module
        lr = learning_rate(self.step, self.total, s["learning_rate"], s["warmup_iters"], self.config.generation)
        for pg in self.optimizer.param_groups:
            pg["lr"] = lr
        loss_sum = torch.zeros((), device=self.device)
        real = padded = samples = 0
        for micro in range(n_micro):
            passes = next(stream)
            n_mask = float(sum(int(p.loss_mask.sum()) for p in passes))
            rows = sum(samples_in(p) for p in passes)
            if info.enabled:  # normalise by the global batch's mask count (see pass_loss)
                n_mask = distributed.host_sum([n_mask], info)[0]
            for k, batch in enumerate(passes):
                final_pass = micro == n_micro - 1 and k == len(passes) - 1
                sync = model.no_sync() if info.enabled and not final_pass else contextlib.nullcontext()
                with sync:
                    with self.autocast:
                        loss = self.stage.pass_loss(model, batch, n_mask, samples_in(batch) / rows,
                                                    info.world_size, self.device)
                    self.scaler.scale(loss / n_micro).backward()
                loss_sum += loss.detach().float()
                real += batch.real_tokens
                padded += batch.padded_tokens
                samples += samples_in(batch)
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.params, s["grad_clip"] if s["grad_clip"] > 0 else math.inf)
        self._nonfinite_window += optimizer_step(self.optimizer, self.scaler, grad_norm)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return StepResult(loss_sum, n_micro, grad_norm, lr, real, padded, samples)

    def _after_step(self, result: StepResult, epoch: int, next_at: tuple[int, int]) -> int | None:
        """Everything around a step that is not training: log, save, stop. An exit status ends the run.

        Nothing here waits for the GPU except at log and save steps: the counters kept every step are
        host numbers, and the stop flag is agreed between ranks on the host (the control group)."""
        s = self.settings
        if self._watchdog:
            self._watchdog.stepped(self.step)
        self.meter.count(result.real_tokens, result.padded_tokens, result.samples)
        stop_now, save_due = distributed.host_any([self.stop.requested, self._save_due()], self.info)
        last = self.step == self.total
        if self.step % s["log_interval"] == 0 or last or stop_now or self.step == 1:
            self._log_step(epoch, result)
        if stop_now and not last:
            self._save(next_at, result, wait=True)
            reason = f"{self.stop.signal_name or 'stop requested'} at step {self.step}"
            self.emit("end", status="stopped", reason=reason, step=self.step)
            self.log(f"stopped: {reason}; resume with: {resume_command(s['mode'], self.run_dir)}")
            return EXIT_DONE
        if self.eval_set is not None and self.step % self.eval_interval == 0 and not last:
            self._evaluate()
        if save_due and not last:
            self._save(next_at, result)
        return None

    def _evaluate(self) -> None:
        """The validation loss: the training loss function (pass_loss) summed over the whole validation set,
        then divided by its mask count; in eval mode, without gradients. Every rank takes its share of the
        batches and the sums are added up on the host. Its time is left out of the step rates."""
        t0 = time.time()
        s, info = self.settings, self.info
        collate, indices = self.eval_set
        batches = [indices[i:i + s["batch_size"]] for i in range(0, len(indices), s["batch_size"])]
        module = compute_module(self.model, s, self.device)  # no DDP (no gradients to sync), not compiled
        ce_sum = torch.zeros((), device=self.device)
        n_mask = 0
        if self._watchdog:
            self._watchdog.pause()  # a long evaluation is not a stalled step
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for batch in batches[info.rank::info.world_size]:
                    for piece in collate(batch):
                        with self.autocast:  # the pass's summed loss and what it counts
                            value, count = self.stage.eval_pass(module, piece, self.device)
                        ce_sum += value
                        n_mask += count
        finally:
            self.model.train(was_training)
            if self._watchdog:
                self._watchdog.resume()
        total, count = distributed.host_sum([float(ce_sum.item()), float(n_mask)], info)
        loss = total / max(count, 1.0)
        seconds = time.time() - t0
        self.meter.exclude(seconds)
        self.emit("eval", step=self.step, loss=round(loss, 6), samples=len(indices), tokens=int(count),
                  seconds=round(seconds, 3))
        self.log(f"eval step {self.step}: loss {loss:.4f} over {len(indices)} held-out samples "
                 f"({int(count)} tokens, {seconds:.1f} s)")
        if self.trackers:
            self.trackers.log({"eval_loss": loss}, self.step)

    def _save_due(self) -> bool:
        """--save_interval steps, or --save_every_min minutes, since the last save (either when both are set)."""
        s = self.settings
        by_steps = bool(s["save_interval"]) and self.step % s["save_interval"] == 0
        by_time = bool(s["save_every_min"]) and self._now() - self._last_save_t >= s["save_every_min"] * 60
        return by_steps or by_time

    def _now(self) -> float:
        return time.monotonic()

    def _global_loss(self, result: StepResult) -> float:
        """The step's loss over all ranks: waits for the GPU, so only at log and save steps (which every
        rank reaches together)."""
        if self._loss_at[0] != self.step:
            local = result.loss_sum.item() / result.n_micro
            self._loss_at = (self.step, distributed.host_sum([local], self.info)[0] / self.info.world_size)
        self.loss_value = self._loss_at[1]
        return self.loss_value

    def _report_nonfinite(self) -> None:
        """Steps skipped for an inf/NaN gradient since the last report: a `nonfinite` event and a warning.
        (The gradient norm is the same on every rank, so every rank counts the same.)"""
        count = int(self._nonfinite_window.item())
        if count == 0:
            return
        self._nonfinite_window.zero_()
        self.nonfinite_steps += count
        text = (f"step {self.step}: {count} optimizer step(s) skipped since the last report, the gradient was "
                f"inf or NaN (weights untouched; {self.nonfinite_steps} in this run)")
        self.emit("nonfinite", step=self.step, count=count, nonfinite_steps=self.nonfinite_steps)
        self.log(text)

    def _log_step(self, epoch: int, result: StepResult) -> None:
        loss = self._global_loss(result)
        self._report_nonfinite()
        window = distributed.host_sum(self.meter.window(), self.info)  # tokens and samples of every rank
        fields = self.meter.event(self.step, epoch + 1, loss, result.lr, float(result.grad_norm), self.device, window)
        fields["nonfinite_steps"] = self.nonfinite_steps
        figures = self.stage.step_fields()  # DPO's rewards, distillation's two losses: every rank's mean
        totals = distributed.host_sum(list(figures.values()), self.info)
        fields.update({k: round(v / self.info.world_size, 6) for k, v in zip(figures, totals, strict=True)})
        self.emit("step", **fields)
        self.log(format_line(fields))
        if self.trackers:
            self.trackers.log(fields, self.step)

    def _finish(self, result: StepResult | None) -> int:
        if self.eval_set is not None:
            self._evaluate()
        ok = self._save((self.settings["epochs"], 0), result, wait=True)
        if not ok:
            self.emit("end", status="failed", reason="training finished but the final checkpoint could not be saved",
                      step=self.step)
            return EXIT_FAILED
        self.emit("end", status="done", reason="finished", step=self.step)
        weights = self.weights_file or self._export_path()  # None: nothing saved in this process (a resume)
        self.log(f"done: {self.step} steps, final loss {self.loss_value:.4f}, weights in {weights}" +
                 ("" if weights == self._export_path() else f" (not in {self._export_path()}: its export failed, "
                                                            f"see above)"))
        return EXIT_DONE

    # ----- checkpoints -----
    def _export_path(self) -> Path:
        return export_path(self.settings)

    def _save(self, next_at: tuple[int, int], result: StepResult | None = None, wait: bool = False) -> bool:
        """A checkpoint of this step: rank 0 snapshots into CPU memory and a side thread writes it while
        training goes on (all ranks take part in gathering RNG states). wait=True (the last save, a
        stop) also waits for the write and for every rank. `next_at` is where a resume continues: (epoch,
        step within the epoch). Returns False when the disk refused the write waited for."""
        if self.step == self.last_saved_step:
            return self._writer.wait() if wait and self.info.is_main else True
        if result is not None:
            self._global_loss(result)
        self._report_nonfinite()  # its count goes into the checkpoint
        rngs = distributed.gather_objects(checkpointing.rng_state(self.device), self.info)
        ok = True
        if self.info.is_main:
            if self._watchdog:
                self._watchdog.pause()  # waiting for a slow previous write is not a stalled step
            try:
                self._writer.wait()  # one write at a time; a failed one has reported itself
                self._writer.submit(self._snapshot(next_at, rngs))
                if wait:
                    ok = self._writer.wait()
            finally:
                if self._watchdog:
                    self._watchdog.resume()
        if wait:
            distributed.barrier(self.info)
        self.last_saved_step = self.step
        self._last_save_t = self._now()
        return ok

    def _snapshot(self, next_at: tuple[int, int], rngs: list):
        """Copies of everything a checkpoint holds, taken now; returns the function that writes them."""
        t0 = time.time()
        s, step, loss = self.settings, self.step, self.loss_value
        weights = checkpointing.plain_state_dict(self.model)
        state = {"step": step, "epoch": next_at[0], "next_group": next_at[1], "total": self.total,
                 "optimizer": checkpointing.cpu_copy(self.optimizer.state_dict()),
                 "scaler": self.scaler.state_dict(), "rng": rngs, "world_size": self.info.world_size,
                 "nonfinite_steps": self.nonfinite_steps}
        meta = {"mode": s["mode"], "config": self.config.to_dict(), "tokenizer": s["tokenizer"],
                "loss": loss if loss == loss else None, "run_id": self.run_dir.name,
                "epoch": next_at[0], "total": self.total}
        target = self._export_path()
        blocked = time.time() - t0

        def write() -> bool:  # on the writer thread: touches no live training state
            t1 = time.time()
            try:
                fault_hooks.hang_in_save()
                folder = checkpointing.save_checkpoint(self.run_dir, step, weights, state, meta)
                checkpointing.prune(self.run_dir, s["keep_last"])
            except OSError as e:
                reason = f"{type(e).__name__}: {e}"
                self.emit("checkpoint_failed", step=step, reason=reason)
                print(f"checkpoint at step {step} FAILED ({reason}); the previous checkpoint is untouched, "
                      f"training continues", file=sys.stderr, flush=True)
                return False
            exported = self._export(folder, weights, target, {**meta, "step": step})
            self.weights_file = exported or folder / layout.MODEL_FILE
            if s.get("from_resume") is not None:
                self._write_upstream_resume(weights, state, next_at)
            seconds = time.time() - t1
            self.emit("ckpt", step=step, path=str(folder.relative_to(self.run_dir)), seconds=round(seconds, 3),
                      blocked_s=round(blocked, 3), weights=exported and str(exported))
            self.log(f"saved {folder}{f' and {exported}' if exported else ''} ({seconds:.1f} s, training paused "
                     f"{blocked:.2f} s)")
            return True
        return write

    def _export(self, folder: Path, weights: dict, target: Path, meta: dict) -> Path | None:
        """Refresh MiniMind's out/<name>.pth (in the generation's format) and its sidecar from a saved
        checkpoint; returns `target`, or None when the disk refused the weights. The checkpoint is saved
        either way (resume, chat and --init use it), so a failed export is a warning naming where the weights
        are, not a checkpoint_failed."""
        try:
            if target.is_file():
                previous = recorded_meta(target).get("run_id")
                if previous != self.run_dir.name:  # said once per run, naming what is replaced
                    self.log(f"replacing {target} " + (f"(from run {previous}, whose checkpoints keep it)"
                                                       if previous else "(not written by minimind-tui)"))
            upstream_files.export(folder, weights, target, self.config.generation,
                                  adapter=self.settings["mode"] == "lora")
        except OSError as e:
            self._fallback_message(f"checkpoint at step {meta['step']} saved, but exporting it to {target} FAILED "
                                   f"({type(e).__name__}: {e}); its weights are in {folder / layout.MODEL_FILE}")
            return None
        try:
            write_sidecar(target, {**meta, "run_dir": str(self.run_dir.resolve())})
        except OSError:
            with contextlib.suppress(OSError):  # a stale one would describe the previous weights
                sidecar_path(target).unlink(missing_ok=True)
        return target

    def _write_upstream_resume(self, weights: dict, state: dict, next_at: tuple[int, int]) -> None:
        """--from_resume: upstream's resume file beside --out_dir, like the export a copy outside the run
        folder, so a disk that refuses it is a warning and the run's own checkpoint stands."""
        s = self.settings
        path = upstream_resume_path(s)
        try:
            upstream_files.write_resume(path, weights, self.config.generation, state["optimizer"], state["scaler"],
                                        state["epoch"], state["next_group"] * s["accumulation_steps"],
                                        self.info.world_size)
        except OSError as e:
            self._fallback_message(f"checkpoint at step {state['step']} saved, but writing upstream's resume file "
                                   f"{path} FAILED ({type(e).__name__}: {e})")

    def _drain_writer(self) -> None:
        """Let a checkpoint being written finish before the run's end is recorded: a crash elsewhere does
        not cut it short, and no `ckpt` event lands after the `end` event."""
        try:
            self._writer.wait()
        except Exception:
            if self.info.is_main:
                traceback.print_exc()
