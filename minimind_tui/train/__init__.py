"""The trainer: `minimind-tui train pretrain|sft`. Never imports Textual.

One job per module:
  args.py          the command line (MiniMind's flag names), per-mode defaults, resume merging
  schedule.py      the learning-rate schedule
  distributed.py   torchrun/DDP set-up, rank helpers, cross-rank sums
  devices.py       which device a run trains on; a GPU torch cannot use is said, not skipped
  run_dir.py       creating a run directory, config.json, finding what --resume names
  lock.py          trainer.lock: a single writer per run directory
  heartbeat.py     the heartbeat file, touched from a side thread
  logtee.py        copying this process's stdout/stderr into train.log
  signals.py       SIGINT/SIGTERM/SIGHUP -> "stop after this step"
  checkpointing.py atomic checkpoint folders written in the background, keep-last-K, resume with fall-back
  model_setup.py   tokenizer choice, model construction, --init weights
  data.py          dataset -> token cache -> per-epoch batches
  metrics.py       raw counters -> the `step` event
  trackers.py      optional wandb / SwanLab logging
  loop.py          the training loop itself
  objectives.py    the DPO and distillation losses, each generation's formula (torch only)
  watchdog.py      the stall watchdog thread (`stall` events)
  auto_batch.py    --auto_batch_size: the largest batch that fits, found before training
  fault_hooks.py   fault-injection environment variables for reliability tests (OOM, hangs, stop at step k)

Exit statuses: 0 done or stopped, 1 crashed, 2 a user error (bad flag, data, checkpoint), 3 out of memory.
"""
EXIT_DONE = 0
EXIT_FAILED = 1
EXIT_USER_ERROR = 2
EXIT_OOM = 3
