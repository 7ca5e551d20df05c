"""Optional experiment trackers (wandb, SwanLab). Never required: when the package is missing, one
line says so and training goes on. The no-op tracker is the default."""
from __future__ import annotations

import importlib


class NullTracker:
    def log(self, fields: dict, step: int) -> None:
        pass

    def finish(self) -> None:
        pass


class _Tracker:
    def __init__(self, module, run):
        self.module = module
        self.run = run

    def log(self, fields: dict, step: int) -> None:
        numbers = {k: v for k, v in fields.items() if isinstance(v, (int, float)) and k not in ("step", "total")}
        try:
            self.module.log(numbers, step=step)
        except Exception as e:  # a tracker's network trouble must not stop training
            print(f"tracker: log failed ({e}); continuing", flush=True)

    def finish(self) -> None:
        try:
            self.module.finish()
        except Exception:
            pass


class Trackers:
    def __init__(self, trackers: list):
        self.trackers = trackers

    def log(self, fields: dict, step: int) -> None:
        for t in self.trackers:
            t.log(fields, step)

    def finish(self) -> None:
        for t in self.trackers:
            t.finish()


def open_trackers(settings: dict, run_name: str, log=print) -> Trackers:
    wanted = [name for name, flag in (("wandb", "use_wandb"), ("swanlab", "use_swanlab")) if settings.get(flag)]
    found = []
    for name in wanted:
        try:
            module = importlib.import_module(name)
        except ImportError:
            log(f"--use_{name}: the {name} package is not installed (pip install {name}); training without it")
            continue
        try:
            run = module.init(project=settings.get("wandb_project") or "MiniMind", name=run_name,
                              config={k: v for k, v in settings.items() if isinstance(v, (int, float, str, bool))})
        except Exception as e:
            log(f"--use_{name}: could not start ({e}); training without it")
            continue
        found.append(_Tracker(module, run))
    return Trackers(found)
