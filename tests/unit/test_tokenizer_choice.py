"""One rule picks the tokenizer for the trainer, chat, export and the dashboard's preview."""
from __future__ import annotations

import json
import shutil

from minimind_tui.demo import demo_tokenizer_dir
from minimind_tui.runs import layout
from minimind_tui.tokenizer_choice import choose_tokenizer_dir, find_weights, sidecar_path


def test_order_explicit_then_recorded_then_project_then_bundled(tmp_path, tiny_tokenizer):
    weights = tmp_path / "out" / "pretrain_32.pth"
    weights.parent.mkdir()
    weights.write_bytes(b"weights")
    assert choose_tokenizer_dir(tmp_path, None, weights) == (demo_tokenizer_dir(), "the bundled demo tokenizer")

    project = tmp_path / "model" / "minimind_tokenizer"
    shutil.copytree(tiny_tokenizer.path, project)
    assert choose_tokenizer_dir(tmp_path, None, weights) == (project, "MiniMind's model/minimind_tokenizer")

    custom = tmp_path / "custom_tok"
    shutil.copytree(demo_tokenizer_dir(), custom)
    sidecar_path(weights).write_text(json.dumps({"tokenizer": str(custom), "weights_size": 7}))
    assert choose_tokenizer_dir(tmp_path, None, weights) == (custom, "recorded with the weights")
    assert choose_tokenizer_dir(tmp_path, None, None)[0] == project  # random init: nothing recorded applies

    assert choose_tokenizer_dir(tmp_path, "other", weights) == (tmp_path / "other", "--tokenizer")

    weights.write_bytes(b"replaced by MiniMind's own script")  # the sidecar no longer describes this file
    assert choose_tokenizer_dir(tmp_path, None, weights)[0] == project


def test_a_run_folder_names_its_newest_complete_checkpoint(tmp_path, tiny_tokenizer):
    run = tmp_path / "runs" / "r1"
    for step, complete in ((10, True), (20, True), (30, False)):
        ck = layout.checkpoint_dir(run, step)
        ck.mkdir(parents=True)
        (ck / layout.MODEL_FILE).write_bytes(b"")
        if complete:
            (ck / layout.COMPLETE).write_text("")
    assert find_weights(run) == layout.checkpoint_dir(run, 20) / layout.MODEL_FILE
    assert find_weights(tmp_path / "runs") is None
    # The run's config.json records the tokenizer when the checkpoint's meta.json does not.
    (run / layout.CONFIG).write_text(json.dumps({"settings": {"tokenizer": str(tiny_tokenizer.path)}}))
    assert choose_tokenizer_dir(tmp_path, None, find_weights(run)) == (tiny_tokenizer.path,
                                                                       "recorded in the run's config.json")
