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


def test_tokenizers_are_found_where_users_keep_them_preferring_the_weights_generation(
        tmp_path, tiny_tokenizer, chatml_tokenizer):
    from dataset.tokenizer_dir import TOKENIZER_FOLDERS, default_tokenizer_dir, tokenizer_generation
    from minimind_tui.interop.catalogue import CATALOGUE
    from model import MiniMindLM, make_config
    from model.generations import save_minimind

    # Where `download` puts each generation's tokenizer is a place looked at.
    for entry in (e for e in CATALOGUE if e.kind == "tokenizer"):
        assert entry.destination(tmp_path).relative_to(tmp_path) in TOKENIZER_FOLDERS

    # An upstream MiniMind2/minimind-3 checkout keeps tokenizer.json and tokenizer_config.json in model/.
    shutil.copytree(chatml_tokenizer.path, tmp_path / "model")
    assert tokenizer_generation(tmp_path / "model") == "gen3" == chatml_tokenizer.generation
    assert choose_tokenizer_dir(tmp_path) == (tmp_path / "model", "MiniMind's model/ folder")

    # Both a v1 tokenizer and a downloaded minimind-3 one: each generation's weights take their own.
    v1_dir, gen3_dir = tmp_path / "model" / "minimind_tokenizer", tmp_path / "model" / "minimind-3_tokenizer"
    (tmp_path / "model" / "tokenizer.json").unlink()
    shutil.copytree(tiny_tokenizer.path, v1_dir)
    shutil.copytree(chatml_tokenizer.path, gen3_dir)
    weights = {}
    for generation in ("v1", "gen3"):
        config = dict(dim=32, n_layers=1, n_heads=4, n_kv_heads=2) if generation == "v1" else dict(
            hidden_size=32, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2)
        weights[generation] = tmp_path / "out" / f"full_sft_{generation}.pth"
        save_minimind(MiniMindLM(make_config(generation, vocab_size=64, **config)), weights[generation])
    assert choose_tokenizer_dir(tmp_path, None, weights["gen3"]) == (gen3_dir,
                                                                    "MiniMind's model/minimind-3_tokenizer")
    assert choose_tokenizer_dir(tmp_path, None, weights["v1"])[0] == v1_dir
    assert choose_tokenizer_dir(tmp_path)[0] == v1_dir  # random init: the first, as before
    assert choose_tokenizer_dir(tmp_path, generation="gen3")[0] == gen3_dir  # a fresh minimind-3 run
    assert default_tokenizer_dir(tmp_path, "gen2") == v1_dir  # none of that generation: the first found


def test_a_weights_files_generation_is_read_without_loading_it(tmp_path, shared_dir):
    import subprocess
    import sys

    from minimind_tui.tokenizer_choice import weights_generation
    from model.key_names import stored_keys

    ref = shared_dir / "reference"
    expected = {ref / "minimind_tiny.pth": "v1", ref / "gen2" / "moe.pth": "gen2", ref / "gen3" / "moe.pth": "gen3",
                ref / "gen3" / "dense.pth": "gen3"}
    for path, generation in expected.items():
        assert weights_generation(path) == generation, path
    assert weights_generation(ref / "gen2" / "dense.pth", {"config": {"generation": "gen3"}}) == "gen3"  # recorded
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    assert stored_keys(tmp_path / "junk.pth") == [] and weights_generation(tmp_path / "junk.pth") is None
    # torch is never imported to read the keys (the dashboard asks while the user edits its form).
    code = ("import sys; from minimind_tui.tokenizer_choice import weights_generation; "
            f"assert weights_generation({str(ref / 'gen3' / 'dense.pth')!r}) == 'gen3'; "
            "assert 'torch' not in sys.modules")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
