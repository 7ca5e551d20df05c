"""`minimind-tui doctor [--smoke] [--json]`: is this machine ready to train? Exit status 1 when a check fails."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

EPILOG = """examples:
  minimind-tui doctor                    # Python, torch vs driver, every GPU, NCCL, disk, RAM, caches
  minimind-tui doctor --smoke            # and ~20 s of real training on each GPU (or the CPU)
  minimind-tui doctor --smoke --device cuda:1 --seconds 60 --json

exit status: 0 every check OK or WARN, 1 a check (or a smoke run) FAILed."""


def register(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check this machine for training: torch vs driver, GPUs, NCCL, disk",
                              description="Check this machine for training. Each line is OK, WARN or FAIL; WARN and "
                                          "FAIL say what to do.", epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", action="store_true", help="one JSON object instead of the report")
    p.add_argument("--smoke", action="store_true", help="also train a small model on generated data on each device "
                                                        "(tokens/s, peak memory against the estimate, checkpoint "
                                                        "save time, generation tokens/s)")
    p.add_argument("--device", action="append", metavar="DEV",
                   help="smoke-test this device (repeatable; default: every GPU, else the CPU)")
    p.add_argument("--seconds", type=float, default=20.0, help="training time per device for --smoke (default 20)")
    p.add_argument("--size", choices=("tiny", "small"),
                   help="smoke model: small (26M, seq 512, batch 32; the GPU default) or tiny (the CPU default)")
    p.add_argument("--root", default=argparse.SUPPRESS, help="project folder whose runs/ and out/ are checked "
                                                             "(default: .)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from minimind_tui.doctor import FAIL, as_json, format_report, run_checks, worst

    checks = run_checks(Path(getattr(args, "root", ".")))
    smoke = None
    if args.smoke:
        smoke = smoke_runs(args)
    failed = worst(checks) == FAIL or any(s.status == FAIL for s in smoke or [])
    if args.json:
        print(json.dumps({**as_json(checks, smoke), "status": FAIL if failed else worst(checks)}, indent=1))
    else:
        print(format_report(checks))
        if smoke is not None:
            from minimind_tui.smoke import format_smoke
            print(format_smoke(smoke))
    return 1 if failed else 0


def smoke_runs(args) -> list:
    import torch

    from minimind_tui.smoke import default_devices, run_smoke

    devices = args.device or default_devices(torch)
    return [run_smoke(device, args.seconds, args.size) for device in devices]
