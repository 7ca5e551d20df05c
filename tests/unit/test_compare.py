"""Comparing runs: the table lists only the settings that differ, the likely causes first."""
from __future__ import annotations

from minimind_tui.app.compare import MISSING, config_diff, flat_settings


def config(**settings) -> dict:
    base = {"mode": "pretrain", "data_path": "dataset/a.jsonl", "learning_rate": 5e-4, "batch_size": 16,
            "seed": 1337, "run_dir": "runs/x"}
    return {"schema": 1, "mode": "pretrain", "settings": {**base, **settings}, "command": "python -m ...",
            "created": 1.0, "versions": {"torch": "2.6"}, "model_config": {"dim": 128, "n_layers": 4},
            "world_size": 1, "params": 1000}


def test_only_differing_settings_are_listed_first_the_usual_suspects():
    a = config(run_dir="runs/a")
    b = config(learning_rate=1e-3, batch_size=32, zz_custom=1, run_dir="runs/b")
    b["model_config"]["n_layers"] = 8
    rows = config_diff([a, b])
    assert [k for k, _ in rows] == ["learning_rate", "batch_size", "n_layers", "zz_custom"]
    assert dict(rows)["learning_rate"] == ["0.0005", "0.001"]
    assert dict(rows)["zz_custom"] == [MISSING, "1"]  # a setting one run does not have


def test_how_a_run_was_started_is_never_a_difference():
    a, b = config(), config()
    b.update(command="other", created=2.0, versions={"torch": "2.7"}, cwd="/elsewhere")
    assert config_diff([a, b]) == []


def test_a_missing_or_unreadable_config_shows_as_missing_values():
    rows = dict(config_diff([config(), {}]))
    assert rows["learning_rate"] == ["0.0005", MISSING] and rows["mode"] == ["pretrain", MISSING]


def test_flat_settings_reads_nested_sections_and_names_other_dicts_by_path():
    flat = flat_settings({"settings": {"lr": 1}, "extra": {"k": [1, 2]}, "world_size": 2})
    assert flat == {"lr": 1, "extra.k": [1, 2], "world_size": 2}
    assert flat_settings(None) == {}
