"""The training loop: set-up, the step, logging, checkpoints, and how a run ends.

Read top to bottom: `train()` resolves settings and the run directory, `Trainer.run()` builds the
model, data and optimizer, then loops over optimizer steps. The step only computes and counts;
metrics.py turns counts into events, checkpointing.py writes files.

No wasted work, same loss as MiniMind: batches come from the token cache (tokenised once); on the CPU
a dense model's batch is packed into one unpadded row (packed.py), elsewhere it is split into
length-sorted passes padded only to their own longest sample (--chunk_tokens); every pass adds its
summed cross-entropy over the whole batch's mask count, so loss and gradients equal the reference's
one padded pass; the vocab projection runs only on loss-mask rows.

Fault-injection hooks (environment variables, listed in fault_hooks.py): simulated out-of-memory at a
step or above a batch size, a stop request after step k, a hang after step k or in every save.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import time
import traceback
from pathlib import Path

import torch

from dataset.batching import (
    ChunkedCollator,
    Collator,
    PackedBatch,
    PackingCollator,
    batches_per_epoch,
    epoch_batches,
    iterate,
)
from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from minimind_tui.runs.events import SCHEMA_VERSION, EventWriter
from minimind_tui.tokenizer_choice import recorded_meta
from model.checkpoint import CheckpointError

from . import EXIT_DONE, EXIT_FAILED, EXIT_OOM, auto_batch, checkpointing, distributed, fault_hooks
from .args import conflicts_on_resume, default_init_path, resolve
from .data import prepare
from .fault_hooks import FAKE_OOM_ENV, STOP_AT_ENV
from .heartbeat import Heartbeat
from .lock import TrainerLock
from .logtee import LogTee
from .metrics import StepMeter, format_line
from .model_setup import build_model, choose_tokenizer, init_weights_file, load_init, model_config, write_sidecar
from .run_dir import create, new_run_dir, saved_settings, write_config
from .schedule import learning_rate
from .signals import Stopped, StopRequest
from .trackers import open_trackers
from .watchdog import StallWatchdog


def pass_loss(model, batch, n_mask: float, row_share: float, world_size: int = 1, device="cpu"):
    """One forward pass's share of the batch loss: its summed cross-entropy over the batch's mask count.

    Summed over the passes of a batch this is MiniMind's (CE * mask).sum() / mask.sum() over the whole
    batch (plus the MoE aux loss, weighted by each pass's share of rows). Under DDP, n_mask is the
    global batch's count and the world size undoes DDP's gradient averaging, so the gradient equals one
    process's over the whole global batch.
    """
    X = batch.X.to(device, non_blocking=True)
    Y = batch.Y.to(device, non_blocking=True)
    # The loss-mask rows come from the collator: no nonzero() on the device, so no wait for it.
    rows = batch.loss_rows.to(device, non_blocking=True)
    packed: dict = {}
    if isinstance(batch, PackedBatch):  # one unpadded row: RoPE positions and attention restart per sample
        packed = dict(positions=batch.positions.to(device, non_blocking=True), spans=batch.spans)
    out = model(X, labels=Y, loss_rows=rows, return_logits=False, **packed)  # vocab projection on mask rows only
    n_here = max(len(batch.loss_rows), 1)
    ce_sum = (out.loss - out.aux_loss) * n_here
    return ce_sum * (world_size / max(n_mask, 1.0)) + out.aux_loss * row_share


def samples_in(batch) -> int:
    return len(batch.spans) if isinstance(batch, PackedBatch) else len(batch.X)


def use_packing(settings: dict, device: str, use_moe: bool) -> bool:
    """Packed rows (no padding at all) on CPU for dense models, unless --chunk_tokens asks otherwise.
    On CUDA, length-sorted padded passes keep the GPU's kernels few and large."""
    return settings.get("chunk_tokens") is None and not device.startswith("cuda") and not use_moe


def make_collator(cache, settings: dict, device: str, pad_id: int, use_moe: bool):
    cuda = device.startswith("cuda")
    if use_packing(settings, device, use_moe):
        return PackingCollator(cache, pin_memory=cuda)
    budget = settings["chunk_tokens"] if settings.get("chunk_tokens") is not None else (8192 if cuda else 0)
    return ChunkedCollator(Collator(cache, pad_id=pad_id, pin_memory=cuda), None if budget < 0 else budget)


def compute_module(model, settings: dict, device: str):
    """What the step calls: the model itself, whose forward takes packed batches as well."""
    return model


def default_device() -> str:
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def train(mode: str, explicit: dict, root: str = ".") -> int:
    """Entry point of `minimind-tui train MODE`. Returns the exit status (user errors raise)."""
    device = explicit.get("device") or default_device()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA GPU is visible to PyTorch here; use --device cpu")
    old_umask = os.umask(0o077)  # run folders, checkpoints and weights are private to the user
    info, device = distributed.init(device)
    stop = StopRequest().install()
    try:
        return _train(mode, explicit, root, info, device, stop)
    finally:
        os.umask(old_umask)
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
                            f"Start a new run (with --init {run_dir}) to change them")
        settings = resolve(mode, explicit, base=saved)
        settings["resume"] = str(explicit["resume"])
    else:
        settings = resolve(mode, explicit)
        run_dir = Path(explicit["run_dir"]) if explicit.get("run_dir") else None
        if run_dir is None:
            _precheck(settings)  # a typo should not leave a new run folder behind
            if info.is_main:
                run_dir = new_run_dir(Path(root), mode)
        run_dir = Path(distributed.broadcast_object(str(run_dir), info))
        if (Path(run_dir) / layout.METRICS).exists() and layout.complete_checkpoints(run_dir):
            raise UserError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                            f"or pick a new --run_dir")
    settings["device"] = device
    settings["run_dir"] = str(run_dir)
    trainer = Trainer(settings, Path(run_dir), info, device, stop, resume_from if explicit.get("resume") else None,
                      resuming=bool(explicit.get("resume")))
    return trainer.run()


def _precheck(settings: dict) -> None:
    """The mistakes that cost nothing to catch before a run folder exists: a missing data or init file.
    (With an explicit --run_dir, e.g. from the dashboard, the same errors are also recorded in the run.)"""
    from dataset import DataError
    from dataset.jsonl import check_data_file

    try:
        check_data_file(Path(settings["data_path"]))  # missing, a folder (naming its .jsonl files), or empty
    except DataError as e:
        raise DataError(f"{e} (--data_path)") from None
    if settings["init"] != "none":
        init = init_weights_file(settings["init"] or default_init_path(settings))
        if not init.is_file():
            raise CheckpointError(f"{init}: initial weights not found; " + (
                "run `minimind-tui train pretrain` first, or pass --init PATH (or --init none for random weights)"
                if settings["init"] is None else "check the path"))


class Trainer:
    def __init__(self, settings: dict, run_dir: Path, info, device: str, stop: StopRequest,
                 resume_checkpoint: Path | None, resuming: bool):
        self.s = settings
        self.run_dir = run_dir
        self.info = info
        self.device = device
        self.stop = stop
        self.resume_checkpoint = resume_checkpoint
        self.resuming = resuming
        self.events: EventWriter | None = None
        self._lock = self._tee = self._heartbeat = self._watchdog = None
        self.trackers = None
        self.last_saved_step = -1

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
        """Temporary files of an export into --out_dir interrupted by a kill (named .NAME.tmpPID)."""
        out = Path(self.s["out_dir"])
        for tmp in out.glob(".*.pth.tmp*") if out.is_dir() else []:
            pid = tmp.name.rsplit(".tmp", 1)[-1]
            if pid.isdigit() and not layout.pid_exists(int(pid)):
                tmp.unlink(missing_ok=True)

    def _gpu_util(self) -> int | None:
        """This device's utilisation in percent from NVML (None when NVML cannot tell)."""
        try:
            return int(torch.cuda.utilization(torch.device(self.device)))
        except Exception:
            return None

    def _close_run_dir(self) -> None:
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
            self._open_run_dir()
            self.log(f"run directory: {self.run_dir}")
            return self._run()
        except Stopped:
            self.emit("end", status="stopped", reason=f"{self.stop.signal_name} before training started", step=0)
            self.log("stopped before training started")
            return EXIT_DONE
        except torch.OutOfMemoryError as e:
            return self._out_of_memory(e)
        except Exception as e:
            if getattr(e, "user_facing", False):
                self.emit("end", status="failed", reason=str(e), step=getattr(self, "step", 0))
                raise
            if self.info.is_main:
                traceback.print_exc()  # into train.log while the tee is on
            self.emit("end", status="failed", reason=f"{type(e).__name__}: {e}", step=getattr(self, "step", 0))
            return EXIT_FAILED
        finally:
            self._close_run_dir()

    def _out_of_memory(self, e) -> int:
        mem = None
        if self.device.startswith("cuda"):
            mem = round(torch.cuda.max_memory_allocated(self.device) / 1e9, 3)
        batch = self.s["batch_size"]
        step = getattr(self, "step", 0)
        suggestion = batch // 2 or None  # None: even one sample does not fit
        self.emit("oom", step=step, rank=self.info.rank, batch_size=batch, mem_gb=mem, suggestion=suggestion)
        advice = (f"try --batch_size {suggestion}" if suggestion else
                  "even one sample does not fit; try a smaller --max_seq_len or model")
        self.emit("end", status="oom", reason=f"out of memory at step {step} with batch size {batch}; {advice}",
                  step=step)
        print(f"out of memory at step {step} (batch size {batch}): {str(e).splitlines()[0]}\n" +
              (f"{advice} (with --accumulation_steps {self.s['accumulation_steps'] * 2} for the same effective batch)"
               if suggestion else advice), file=sys.stderr, flush=True)
        return EXIT_OOM

    def _check_stop(self) -> None:
        if self.stop.requested:
            raise Stopped()

    # ----- set-up -----
    def _setup_model(self):
        s = self.s
        loaded = None
        init_meta, init_file = {}, None
        if self.resuming:
            loaded = (checkpointing.load_checkpoint(self.resume_checkpoint) if self.resume_checkpoint
                      else checkpointing.load_latest(self.run_dir, log=self._fallback_message))
            init_meta = loaded.meta
        elif s["init"] != "none":
            init_file = init_weights_file(s["init"] or default_init_path(s))
            if not init_file.is_file():
                hint = ("run `minimind-tui train pretrain` first, or pass --init PATH (or --init none for random "
                        "weights)") if s["init"] is None else "check the path"
                raise CheckpointError(f"{init_file}: initial weights not found; {hint}")
            init_meta = recorded_meta(init_file)
        self.tokenizer = choose_tokenizer(s["tokenizer"], init_meta, log=self.log, init_file=init_file)
        s["tokenizer"] = str(self.tokenizer.path.resolve()) if self.tokenizer.path else None
        self.config = model_config(s, self.tokenizer.vocab_size)
        model = build_model(self.config, s["seed"])
        if loaded is not None:
            model.load_state_dict(loaded.weights)
            self.log(f"resuming from {loaded.path} (step {loaded.state['step']})")
        elif init_file is not None:
            load_init(model, init_file, log=self.log, tokenizer_dir=s["tokenizer"])
        return model, loaded

    def _choose_batch_size(self, model) -> None:
        """--auto_batch_size: the largest batch up to --batch_size that fits; accumulation makes up the rest.
        Every rank probes its own device; all take the smallest answer so the data order stays shared."""
        s = self.s
        requested = s["batch_size"]
        model.to(self.device)
        budget = s["chunk_tokens"] if s.get("chunk_tokens") is not None else (8192 if self.device.startswith("cuda")
                                                                              else 0)
        rows = max(1, budget // s["max_seq_len"]) if budget > 0 else None
        try:
            chosen = auto_batch.find_batch_size(model, requested, s["max_seq_len"], self.config.vocab_size,
                                                self.device, rows, self._autocast(), log=self.log)
        except torch.OutOfMemoryError:
            s["batch_size"] = 1  # the OOM report then says what did not fit: a single sample
            raise
        chosen = min(distributed.gather_objects(chosen, self.info))
        factor = requested // chosen
        s["batch_size"], s["accumulation_steps"] = chosen, s["accumulation_steps"] * factor
        text = (f"auto batch size: {chosen} fits at {s['max_seq_len']} tokens" +
                (f" (asked {requested}; accumulation {s['accumulation_steps']} keeps the effective batch)"
                 if factor > 1 else ""))
        self.log(text)
        self.emit("log", level="info", message=text)

    def _fallback_message(self, text: str) -> None:
        self.log(text)
        self.emit("log", level="warning", message=text)

    def _autocast(self):
        if self.device.startswith("cuda") and self.s["dtype"] in ("bfloat16", "float16"):
            return torch.autocast("cuda", dtype=getattr(torch, self.s["dtype"]))
        return contextlib.nullcontext()  # CPU: fp32, as the reference effectively does there

    # ----- the run -----
    def _run(self) -> int:
        s, info = self.s, self.info
        t_begin = time.time()
        model, loaded = self._setup_model()
        n_params = model.num_parameters()
        if s.get("auto_batch_size") and not self.resuming:  # a resumed run keeps the batch it chose
            self._choose_batch_size(model)
        if info.is_main and not self.resuming:
            write_config(self.run_dir, s, {"model_config": self.config.to_dict(), "world_size": info.world_size,
                                           "params": n_params})
        self.emit("prepare", stage="data", done=0, total=None)
        cache = prepare(s, self.tokenizer, info, emit=self.emit if info.is_main else None,
                        check_stop=self._check_stop)
        n = len(cache)
        accum = s["accumulation_steps"]
        nb = batches_per_epoch(n, s["batch_size"], info.world_size)
        if nb == 0:
            raise UserError(f"{s['data_path']}: {n} samples are fewer than one global batch "
                            f"({s['batch_size']} x {info.world_size} processes)")
        groups_per_epoch = math.ceil(nb / accum)
        self.total = total = s["epochs"] * groups_per_epoch

        model.to(self.device)
        raw_model = model
        model = compute_module(raw_model, s, self.device)
        if info.enabled:
            # MoE: an expert that got no tokens has no gradient this step, which DDP must be told to expect.
            model = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[torch.device(self.device).index] if self.device.startswith("cuda") else None,
                find_unused_parameters=self.config.use_moe)
        if s["compile"]:
            self.log("compiling the model (torch.compile)...")
            model = torch.compile(model, dynamic=True)  # every pass has its own length
        cuda = self.device.startswith("cuda")
        optimizer = torch.optim.AdamW(raw_model.parameters(), lr=s["learning_rate"], fused=cuda or None)
        scaler = torch.amp.GradScaler("cuda", enabled=cuda and s["dtype"] == "float16")

        self.step, epoch0, group0 = 0, 0, 0
        if loaded is not None:
            st = loaded.state
            optimizer.load_state_dict(st["optimizer"])
            if st.get("scaler"):
                scaler.load_state_dict(st["scaler"])
            self.step, epoch0, group0 = int(st["step"]), int(st["epoch"]), int(st["next_group"])
            rngs = st.get("rng") or []
            if rngs:
                checkpointing.set_rng_state(rngs[info.rank] if info.rank < len(rngs) else rngs[0])
            if st.get("world_size") != info.world_size:
                self.log(f"note: the checkpoint was written by {st.get('world_size')} processes, this run has "
                         f"{info.world_size}: the data order continues by global batch")
        self.last_saved_step = self.step if loaded is not None else -1
        self.trackers = open_trackers(s, self.run_dir.name, log=self.log) if info.is_main else None

        self.emit("start", schema=SCHEMA_VERSION, run_id=self.run_dir.name, mode=s["mode"], pid=os.getpid(),
                  world_size=info.world_size, total=total, config=self.config.to_dict(), params=n_params,
                  resumed_from=self.step if loaded is not None else None, batch_size=s["batch_size"],
                  accumulation_steps=accum, device=self.device, dtype=s["dtype"] if cuda else "float32",
                  samples=n, tokenizer=s["tokenizer"], data_path=s["data_path"],
                  setup_s=round(time.time() - t_begin, 3))
        self.log(f"{s['mode']}: {n_params / 1e6:.2f}M parameters, {n} samples, {total} optimizer steps "
                 f"({s['epochs']} epoch(s) x {groups_per_epoch}), batch {s['batch_size']} x {accum} accumulation"
                 f"{f' x {info.world_size} processes' if info.enabled else ''}, device {self.device}")

        collate = make_collator(cache, s, self.device, self.tokenizer.pad_token_id, self.config.use_moe)
        meter = StepMeter(total, start_step=self.step)
        fake_oom = fault_hooks.env_int(FAKE_OOM_ENV)
        stop_at = fault_hooks.env_int(STOP_AT_ENV)
        hang_at = fault_hooks.env_int(fault_hooks.HANG_AT_ENV)
        ctx = self._autocast()
        params = [p for p in raw_model.parameters()]
        loss_value = float("nan")

        for epoch in range(epoch0, s["epochs"]):
            batches = epoch_batches(n, epoch, s["batch_size"], s["seed"], bool(s["shuffle"]),
                                    info.world_size, info.rank)
            first = group0 if epoch == epoch0 else 0
            stream = iterate(batches[first * accum:], collate, s["num_workers"])
            for group in range(first, groups_per_epoch):
                n_micro = min(accum, nb - group * accum)
                lr = learning_rate(self.step, total, s["learning_rate"], s["warmup_iters"])
                for pg in optimizer.param_groups:
                    pg["lr"] = lr
                if fake_oom and self.step + 1 == fake_oom:
                    raise torch.OutOfMemoryError(f"simulated out of memory ({FAKE_OOM_ENV}={fake_oom})")
                fault_hooks.fake_oom_for_batch(s["batch_size"])
                # counters: summed loss, real tokens, computed tokens, samples, stop requested
                counts = torch.zeros(5, dtype=torch.float64)
                loss_sum = torch.zeros((), device=self.device)
                for micro in range(n_micro):
                    passes = next(stream)  # one batch as length-sorted forward passes
                    n_mask = float(sum(int(p.loss_mask.sum()) for p in passes))
                    rows = sum(samples_in(p) for p in passes)
                    if info.enabled:  # normalise by the global batch's mask count (see _pass_loss)
                        n_mask = distributed.sum_across(torch.tensor([n_mask], device=self.device), info).item()
                    for k, batch in enumerate(passes):
                        final_pass = micro == n_micro - 1 and k == len(passes) - 1
                        sync = model.no_sync() if info.enabled and not final_pass else contextlib.nullcontext()
                        with sync:
                            with ctx:
                                loss = self._pass_loss(model, batch, n_mask, samples_in(batch) / rows)
                            scaler.scale(loss / n_micro).backward()
                        loss_sum += loss.detach().float()
                        counts[1] += batch.real_tokens
                        counts[2] += batch.padded_tokens
                        counts[3] += samples_in(batch)
                scaler.unscale_(optimizer)
                grad_norm = torch.nn.utils.clip_grad_norm_(params, s["grad_clip"] if s["grad_clip"] > 0 else math.inf)
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                self.step += 1
                if self._watchdog:
                    self._watchdog.stepped(self.step)
                if stop_at and self.step >= stop_at:  # >=: a resume may start past k
                    self.stop.request(f"{STOP_AT_ENV}={stop_at}")

                counts[0] = loss_sum.item() / n_micro
                counts[4] = 1.0 if self.stop.requested else 0.0
                if info.enabled:  # NCCL reduces only GPU tensors
                    counts = distributed.sum_across(counts.to(self.device), info).cpu()
                loss_value = counts[0].item() / info.world_size
                stop_now = counts[4].item() > 0
                meter.count(int(counts[1]), int(counts[2]), int(counts[3]))
                last = self.step == total
                if self.step % s["log_interval"] == 0 or last or stop_now or self.step == 1:
                    fields = meter.event(self.step, epoch, loss_value, lr, float(grad_norm), self.device)
                    self.emit("step", **fields)
                    self.log(format_line(fields))
                    if self.trackers:
                        self.trackers.log(fields, self.step)
                next_pos = (epoch, group + 1) if group + 1 < groups_per_epoch else (epoch + 1, 0)
                if stop_now and not last:
                    self._save(raw_model, optimizer, scaler, next_pos, loss_value)
                    reason = f"{self.stop.signal_name or 'stop requested'} at step {self.step}"
                    self.emit("end", status="stopped", reason=reason, step=self.step)
                    self.log(f"stopped: {reason}; resume with: minimind-tui train {s['mode']} --resume {self.run_dir}")
                    return EXIT_DONE
                if self.step % s["save_interval"] == 0 and not last:
                    self._save(raw_model, optimizer, scaler, next_pos, loss_value)
                if hang_at and self.step == hang_at:
                    fault_hooks.hang_forever()

        ok = self._save(raw_model, optimizer, scaler, (s["epochs"], 0), loss_value)
        if not ok:
            self.emit("end", status="failed", reason="training finished but the final checkpoint could not be saved",
                      step=self.step)
            return EXIT_FAILED
        self.emit("end", status="done", reason="finished", step=self.step)
        self.log(f"done: {self.step} steps, final loss {loss_value:.4f}, weights in {self._export_path()}")
        return EXIT_DONE

    def _pass_loss(self, model, batch, n_mask: float, row_share: float):
        return pass_loss(model, batch, n_mask, row_share, self.info.world_size, self.device)

    # ----- checkpoints -----
    def _export_path(self) -> Path:
        return Path(self.s["out_dir"]) / layout.weights_name(self.s["mode"], self.config.dim, self.config.use_moe)

    def _save(self, raw_model, optimizer, scaler, next_pos, loss_value) -> bool:
        """Save on rank 0 (all ranks take part in gathering RNG states). False when the disk refused."""
        if self.step == self.last_saved_step:
            return True
        rngs = distributed.gather_objects(checkpointing.rng_state(), self.info)
        ok = True
        if self.info.is_main:
            t0 = time.time()
            state = {"step": self.step, "epoch": next_pos[0], "next_group": next_pos[1], "total": self.total,
                     "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict(), "rng": rngs,
                     "world_size": self.info.world_size}
            meta = {"mode": self.s["mode"], "config": self.config.to_dict(), "tokenizer": self.s["tokenizer"],
                    "loss": loss_value if loss_value == loss_value else None, "run_id": self.run_dir.name,
                    "epoch": next_pos[0], "total": self.total}
            if self._watchdog:
                self._watchdog.pause()
            try:
                if os.environ.get(fault_hooks.HANG_IN_SAVE_ENV):
                    fault_hooks.hang_forever()
                weights = checkpointing.plain_state_dict(raw_model)
                folder = checkpointing.save_checkpoint(self.run_dir, self.step, weights, state, meta)
                target = self._export_path()
                if target.is_file():
                    previous = recorded_meta(target).get("run_id")
                    if previous != self.run_dir.name:  # said once per run, naming what is replaced
                        self.log(f"replacing {target} " + (f"(from run {previous}, whose checkpoints keep it)"
                                                           if previous else "(not written by minimind-tui)"))
                checkpointing.export_weights(folder, target)
                write_sidecar(target, {**meta, "step": self.step, "run_dir": str(self.run_dir.resolve())})
                checkpointing.prune(self.run_dir, self.s["keep_last"])
            except OSError as e:
                ok = False
                reason = f"{type(e).__name__}: {e}"
                self.emit("checkpoint_failed", step=self.step, reason=reason)
                print(f"checkpoint at step {self.step} FAILED ({reason}); the previous checkpoint is untouched, "
                      f"training continues", file=sys.stderr, flush=True)
            else:
                self.emit("ckpt", step=self.step, path=str(folder.relative_to(self.run_dir)),
                          seconds=round(time.time() - t0, 3), weights=str(target))
                self.log(f"saved {folder} and {target} ({time.time() - t0:.1f} s)")
            finally:
                if self._watchdog:
                    self._watchdog.resume()
        distributed.barrier(self.info)
        if ok:
            self.last_saved_step = self.step
        return ok
