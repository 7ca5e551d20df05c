"""The Train tab for every MiniMind generation: the generation picked for a new model (its presets, parameter
counts, memory estimate and defaults) or read from the base weights for SFT; the command carries --generation."""
from __future__ import annotations

from testkit import wait_for
from textual.widgets import Input

from minimind_tui.app.presets import PRESETS, tokenizer_vocab
from minimind_tui.app.widgets.train_form import TrainForm
from minimind_tui.demo import demo_tokenizer_dir


def text(form, widget_id: str) -> str:
    return str(form.query_one(f"#{widget_id}").render())


async def ready(pilot) -> TrainForm:
    form = pilot.app.query_one(TrainForm)
    await wait_for(pilot, lambda: form.scans_done, "scan")
    return form


async def test_a_new_model_of_another_generation_gets_its_presets_counts_and_defaults(make_app):
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        assert "--generation" not in text(form, "command")  # v1 with a v1 preset: nothing to say
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        form.query_one("#epochs", Input).value = "5"  # typed: no default overwrites it
        await pilot.pause()
        form.query_one("#generation").value = "gen3"
        await wait_for(pilot, lambda: form.query_one("#preset").value == "minimind-3", "minimind-3's presets")
        assert [v for _, v in form.query_one("#preset")._options] == ["minimind-3", "minimind-3-moe", "custom"]
        command = text(form, "command")
        assert "--generation gen3 --preset minimind-3 --dim 768 --n_layers 8" in command
        assert "--max_seq_len 340" in command and "--epochs 5" in command  # minimind-3's pretraining length
        assert text(form, "form-note") == ("minimind-3 defaults set model minimind-3 64M, seq len 512 → 340; kept "
                                           "what you typed: epochs 5")
        vocab = tokenizer_vocab(demo_tokenizer_dir())  # no tokenizer in the project: the trainer's fallback
        assert f"{PRESETS['minimind-3'].params(vocab) / 1e6:.1f}M params" in text(form, "estimate")
        form.query_one("#preset").value = "minimind-3-moe"
        await wait_for(pilot, lambda: f"{PRESETS['minimind-3-moe'].params(vocab) / 1e6:.1f}M params"
                       in text(form, "estimate"), lambda: text(form, "estimate"))

        form.query_one("#mode").value = "sft"  # minimind-3's SFT defaults where they differ from its pretraining
        await wait_for(pilot, lambda: "--learning_rate 1e-05" in text(form, "command"), "SFT's lr")
        assert "--max_seq_len 768" in text(form, "command") and "--accumulation_steps 1" in text(form, "command")

        form.query_one("#generation").value = "v1"  # back: v1's presets, the one chosen there before
        await wait_for(pilot, lambda: form.query_one("#preset").value == "small", "v1's preset again")
        assert "--generation" not in text(form, "command") and "--max_seq_len 512" in text(form, "command")
        form.query_one("#preset").value = "custom"  # custom sizes: the generation is said, v1 too
        await wait_for(pilot, lambda: "--generation v1 --dim 512" in text(form, "command"), "--generation v1")


async def test_sft_takes_the_generation_and_sizes_of_its_base_weights(make_app, project):
    from model import MiniMindLM, make_config, save_minimind
    from model.tokenizer import Tokenizer

    vocab = Tokenizer.from_dir(demo_tokenizer_dir()).vocab_size
    model = MiniMindLM(make_config("gen2", hidden_size=64, num_hidden_layers=2, vocab_size=vocab))
    (project / "out").mkdir()
    save_minimind(model, project / "out" / "base2.pth")
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        form = await ready(pilot)
        form.query_one("#mode").value = "sft"
        form.query_one("#data_path", Input).value = "dataset/sft_mini_512.jsonl"
        await pilot.pause()
        assert not form.query_one("#generation").disabled and "no base weights found" in text(form, "generation-note")
        form.query_one("#extra", Input).value = "--init out/base2.pth"
        await wait_for(pilot, lambda: form.query_one("#generation").value == "gen2", "the base weights read")
        assert form.query_one("#generation").disabled and "from the base weights" in text(form, "generation-note")
        command = text(form, "command")
        assert "--generation gen2 --dim 64 --n_layers 2" in command and "--init out/base2.pth" in command
        assert text(form, "form-note").startswith("the base weights (MiniMind2, 64×2) set Gen MiniMind v1 → "
                                                  "MiniMind2, model minimind2-small 26M")
        assert f"{model.num_parameters() / 1e6:.1f}M params" in text(form, "estimate")
        form.query_one("#extra", Input).value = ""  # the trainer's default base, out/pretrain_64.pth: none
        await wait_for(pilot, lambda: not form.query_one("#generation").disabled, "the generation free again")
        assert form.query_one("#generation").value == "gen2"  # what the form held stays until changed
