"""The `train` command line. MiniMind's flag names (underscore or dash spelling) so its recipes paste in.

Every flag defaults to None in the parser; `resolve` fills per-mode defaults afterwards, so we can tell
which flags the user actually gave (that matters on --resume, where the run's own settings win).
"""
from __future__ import annotations

import argparse
from pathlib import Path

from minimind_tui.errors import UserError
from minimind_tui.runs import layout
from model.config import GENERATION_PRESETS, GENERATIONS, V1_ALIASES, LMConfig, make_config

MODES = ("pretrain", "sft", "lora", "dpo", "distill")
# The data each mode reads: LoRA and distillation train on SFT conversations, DPO on preference pairs.
DATA_KIND = {"pretrain": "pretrain", "sft": "sft", "lora": "sft", "dpo": "dpo", "distill": "sft"}
# The weights a mode starts from when neither --init nor --from_weight says: {out_dir}/{stage}_{dim}[_moe].pth.
INIT_STAGE = {"sft": "pretrain", "lora": "full_sft", "dpo": "full_sft", "distill": "full_sft"}

# Per-mode defaults, as in MiniMind's train_pretrain.py / train_full_sft.py / train_lora.py / train_dpo.py /
# train_distillation.py (v1's; the later generations' differences are below). The one copy: the Train tab
# fills its form from it too. LoRA starts from full_sft for every generation (v1's script hard-codes its
# rlhf weights instead: a user who skipped DPO would have none).
MODE_DEFAULTS = {
    "pretrain": dict(learning_rate=5e-4, accumulation_steps=8, batch_size=32,
                     data_path="./dataset/pretrain_hq.jsonl", init="none"),
    "sft": dict(learning_rate=5e-5, accumulation_steps=1, batch_size=16,
                data_path="./dataset/sft_mini_512.jsonl", init=None),  # None -> {out_dir}/pretrain_{dim}.pth
    "lora": dict(learning_rate=5e-5, accumulation_steps=1, batch_size=16, epochs=50,
                 data_path="./dataset/lora_identity.jsonl", init=None, lora_name="lora_identity"),
    "dpo": dict(learning_rate=1e-8, accumulation_steps=1, batch_size=8, epochs=2, max_seq_len=1024,
                data_path="./dataset/dpo.jsonl", init=None, beta=0.1),
    "distill": dict(learning_rate=5e-6, accumulation_steps=1, batch_size=32, epochs=6,
                    data_path="./dataset/sft_data.jsonl", init=None, alpha=0.0, temperature=1.0,
                    teacher_dim=768, teacher_n_layers=16, teacher_use_moe=False),
}
# What MiniMind2's and minimind-3's trainers default to where v1's differ (DIFFERENCES.md's flag tables; their
# model shape comes from their config class). Paths are taken from the repository root, where we run, rather
# than from upstream's trainer/ folder. Not copied: --log_interval 100, --save_interval 1000 and
# --num_workers 8 (the dashboard wants every step; saves go by time; batches are memory-mapped here).
# add_system_ratio / empty_think_ratio are upstream SFTDataset's draws: a random system prompt with
# probability 0.2, an empty think block kept with probability 0.05 (MiniMind2) or 0.2 (minimind-3).
_SFT_DRAWS = {"gen2": dict(add_system_ratio=0.2, empty_think_ratio=0.05),
              "gen3": dict(add_system_ratio=0.2, empty_think_ratio=0.2)}
UPSTREAM_MODE_DEFAULTS = {
    "gen2": {
        "pretrain": dict(max_seq_len=340),
        "sft": dict(epochs=2, learning_rate=1e-6, max_seq_len=340, **_SFT_DRAWS["gen2"]),
        "lora": dict(learning_rate=1e-4, batch_size=32, max_seq_len=340, **_SFT_DRAWS["gen2"]),
        "dpo": dict(learning_rate=4e-8, batch_size=4, epochs=1, beta=0.1),
        "distill": dict(max_seq_len=340, data_path="./dataset/sft_mini_512.jsonl", alpha=0.5, temperature=1.5,
                        **_SFT_DRAWS["gen2"]),
    },
    "gen3": {
        "pretrain": dict(epochs=2, max_seq_len=340, data_path="./dataset/pretrain_t2t_mini.jsonl"),
        "sft": dict(epochs=2, learning_rate=1e-5, max_seq_len=768, data_path="./dataset/sft_t2t_mini.jsonl",
                    **_SFT_DRAWS["gen3"]),
        "lora": dict(learning_rate=1e-4, batch_size=32, epochs=10, max_seq_len=340,
                     data_path="./dataset/lora_medical.jsonl", lora_name="lora_medical", **_SFT_DRAWS["gen3"]),
        "dpo": dict(learning_rate=4e-8, batch_size=4, epochs=1, beta=0.15),
        "distill": dict(max_seq_len=340, data_path="./dataset/sft_t2t_mini.jsonl", alpha=0.5, temperature=1.5,
                        teacher_n_layers=8, teacher_use_moe=True, **_SFT_DRAWS["gen3"]),
    },
}
# Names of each mode's out/ weights (--save_weight's default); LoRA writes its adapter (--lora_name) instead.
STAGE_NAMES = {"v1": {"dpo": "rlhf"}, "gen2": {"dpo": "dpo"}, "gen3": {"dpo": "dpo"}}
# Upstream's flag names for ours: MiniMind2's and minimind-3's command lines paste in unchanged.
UPSTREAM_FLAGS = {"hidden_size": "dim", "num_hidden_layers": "n_layers", "num_attention_heads": "n_heads",
                  "num_key_value_heads": "n_kv_heads", "save_dir": "out_dir", "use_compile": "compile",
                  "teacher_hidden_size": "teacher_dim", "teacher_num_layers": "teacher_n_layers"}
# train_distillation.py's names for the student: the run's own model.
STUDENT_FLAGS = {"student_hidden_size": "dim", "student_num_layers": "n_layers", "student_use_moe": "use_moe",
                 "from_student_weight": "from_weight"}
_MODEL = LMConfig()  # the model's shape defaults are model.config's (training's max_seq_len is MiniMind's 512)
COMMON_DEFAULTS = dict(
    out_dir="out", epochs=1, dtype=None, num_workers=0, grad_clip=1.0, warmup_iters=0,
    log_interval=1, save_interval=None, save_every_min=None, dim=_MODEL.dim, n_layers=_MODEL.n_layers,
    n_heads=_MODEL.n_heads, n_kv_heads=_MODEL.n_kv_heads, max_seq_len=512, use_moe=_MODEL.use_moe, shuffle=1,
    seed=1337, keep_last=3, compile=False, skip_bad_lines=False,
    use_wandb=False, use_swanlab=False, wandb_project="MiniMind", tokenizer=None, device=None,
    preset=None, run_dir=None, resume=None, chunk_tokens=None, auto_batch_size=False,
    eval_data=None, eval_ratio=None, eval_interval=None,
    generation=None, add_system_ratio=0.0, empty_think_ratio=1.0, save_weight=None, from_weight=None,
    from_resume=None, lora_name=None, beta=None, alpha=None, temperature=None, teacher=None, teacher_dim=None,
    teacher_n_layers=None, teacher_use_moe=None, from_teacher_weight=None,
)
# Checkpoint every few minutes by default: a fixed step count is seconds apart on a fast GPU (where each save
# cost 20-50% of the time) and an hour apart on a CPU.
DEFAULT_SAVE_EVERY_MIN = 5.0
# Settings that fix the run's arithmetic or data order: a resumed run keeps the saved values.
FIXED_ON_RESUME = ("learning_rate", "accumulation_steps", "batch_size", "data_path", "dim", "n_layers", "n_heads",
                   "n_kv_heads", "max_seq_len", "use_moe", "shuffle", "seed", "epochs", "warmup_iters",
                   "tokenizer", "init", "skip_bad_lines", "preset", "eval_ratio", "eval_data", "generation",
                   "add_system_ratio", "empty_think_ratio", "lora_name", "beta", "alpha", "temperature",
                   "teacher")


# Every generation's presets by name (names are unique across generations) in our flag names, and which
# generation each belongs to.
ALL_PRESETS = {name: {V1_ALIASES.get(k, k): v for k, v in fields.items()}
               for presets in GENERATION_PRESETS.values() for name, fields in presets.items()}
PRESET_GENERATION = {name: g for g, presets in GENERATION_PRESETS.items() for name in presets}
# What users call the generations, for --generation.
_GENERATION_NAMES = {**{g: g for g in GENERATIONS}, **{n.lower(): g for g, n in GENERATIONS.items()},
                     "minimind-v1": "v1", "minimind3": "gen3", "minimind-2": "gen2"}


def generation_id(text: str) -> str:
    """--generation's value: v1 / gen2 / gen3, or what users call them (MiniMind2, minimind-3)."""
    found = _GENERATION_NAMES.get(str(text).strip().lower())
    if found is None:
        raise argparse.ArgumentTypeError(f"unknown generation {text!r}; use v1, gen2 (MiniMind2) or gen3 (minimind-3)")
    return found


def generation_defaults(generation: str, mode: str) -> dict:
    """The defaults a generation's own trainer uses where they differ from v1's (none for v1)."""
    if generation == "v1":
        return {}
    config = make_config(generation)  # its config class's defaults: the model trained when no flag says
    shape = dict(dim=config.dim, n_layers=config.n_layers, n_heads=config.n_heads, n_kv_heads=config.n_kv_heads)
    return {**shape, **UPSTREAM_MODE_DEFAULTS[generation][mode]}


def default_text(value) -> str:
    """A default as MiniMind's recipes write it: 5e-4 rather than 0.0005 (the Train tab shows the same)."""
    if isinstance(value, float) and 0 < abs(value) < 1e-3:
        mantissa, exponent = f"{value:e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return str(value)


def _defaults(name: str) -> str:
    if name in COMMON_DEFAULTS:
        return f"default {default_text(COMMON_DEFAULTS[name])}"
    return "default " + ", ".join(f"{default_text(d[name])} {mode}" for mode, d in MODE_DEFAULTS.items())


def parse_bool(text: str) -> bool:
    value = str(text).strip().lower()
    if value in ("1", "true", "yes", "y", "on"):
        return True
    if value in ("0", "false", "no", "n", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true/false or 1/0, got {text!r}")


def add_arguments(p: argparse.ArgumentParser) -> None:
    group = None  # the heading `train --help` lists the next flags under

    upstream: dict[str, list[str]] = {}
    for theirs, ours in [*UPSTREAM_FLAGS.items(), *STUDENT_FLAGS.items()]:
        upstream.setdefault(ours, []).append(theirs)

    def flag(name, **kw):
        names = [name, *upstream.get(name, [])]
        spellings = [f"--{n}" for n in names] + [f"--{n.replace('_', '-')}" for n in names if "_" in n]
        group.add_argument(*spellings, dest=name, default=None, **kw)

    group = p.add_argument_group("data and output")
    flag("data_path", metavar="JSONL", help="training data (default: MiniMind's dataset/pretrain_hq.jsonl or "
                                            "dataset/sft_mini_512.jsonl)")
    flag("out_dir", metavar="DIR", help="where MiniMind-style weights pretrain_{dim}.pth / full_sft_{dim}.pth go "
                                        "(default: out)")
    flag("save_weight", metavar="NAME", help="name of the weights file in --out_dir: NAME_{dim}[_moe].pth "
                                             "(default pretrain or full_sft)")
    flag("from_weight", metavar="NAME|none", help="start from --out_dir's NAME_{dim}[_moe].pth, as MiniMind2's and "
                                                  "minimind-3's trainers do ('none': random; --init takes a path)")
    flag("from_resume", type=int, choices=(0, 1), help="1: continue from ./checkpoints/"
                                                       "{save_weight}_{dim}[_moe]_resume.pth, as upstream's "
                                                       "trainers do; with 0 or 1, also write that file at each "
                                                       "save (--resume continues our own runs)")
    flag("run_dir", metavar="DIR", help="run directory for metrics, logs, checkpoints (default: runs/<run-id>)")
    flag("resume", metavar="RUN_DIR_OR_CHECKPOINT", help="continue a stopped run from its last good checkpoint")
    flag("tokenizer", metavar="DIR", help="tokenizer directory (default: the one recorded with --init, else the "
                                          "bundled demo tokenizer)")
    flag("init", metavar="PATH|none", help="initial weights: a .pth, checkpoint folder or run folder; 'none' = "
                                           "random (default: none for pretrain, {out_dir}/pretrain_{dim}.pth for sft)")
    flag("skip_bad_lines", nargs="?", const=True, type=parse_bool, help="skip malformed JSONL lines (counted) "
                                                                       "instead of stopping at the first")
    flag("shuffle", type=int, choices=(0, 1), help="1: seeded shuffle, new order each epoch (default); 0: file "
                                                    "order, the reference recipe's batches")
    flag("seed", type=int, help="random seed for initial weights and data order (default 1337)")
    flag("num_workers", type=int, help="data-loading worker processes (default 0: batches are memory-mapped "
                                       "copies, cheap in the main process)")
    flag("add_system_ratio", type=float, metavar="P", help="SFT: prepend a random system prompt to a "
                                                           "conversation without one, with probability P "
                                                           "(default 0; 0.2 for MiniMind2 and minimind-3)")
    flag("empty_think_ratio", type=float, metavar="P", help="SFT: keep an empty <think></think> block with "
                                                            "probability P, else remove it (default 1: keep; "
                                                            "MiniMind2 0.05, minimind-3 0.2)")

    group = p.add_argument_group("model")
    flag("generation", type=generation_id, metavar="{v1,gen2,gen3}",
         help="which MiniMind: v1 (April 2025), gen2 (MiniMind2) or gen3 (minimind-3) (default: that of the "
              "initial weights, else of the tokenizer, else v1)")
    flag("preset", choices=tuple(ALL_PRESETS), help="model size preset; --dim etc. override it. "
                                                    + "; ".join(f"{GENERATIONS[g]}: {', '.join(p)}"
                                                                for g, p in GENERATION_PRESETS.items()))
    flag("dim", type=int, help=f"hidden size ({_defaults('dim')})")
    flag("n_layers", type=int, help=f"transformer blocks ({_defaults('n_layers')})")
    flag("n_heads", type=int, help=f"attention heads ({_defaults('n_heads')})")
    flag("n_kv_heads", type=int, help=f"key/value heads ({_defaults('n_kv_heads')})")
    flag("max_seq_len", type=int, help=f"longest training sample in tokens ({_defaults('max_seq_len')})")
    flag("use_moe", nargs="?", const=True, type=parse_bool, help="mixture-of-experts feed-forward")

    group = p.add_argument_group("optimisation")
    flag("epochs", type=int, help="passes over the data (default 1)")
    flag("batch_size", type=int, help=f"samples per micro-batch per process ({_defaults('batch_size')})")
    flag("auto_batch_size", nargs="?", const=True, type=parse_bool,
         help="before training, halve --batch_size until a forward+backward pass at --max_seq_len fits in memory; "
              "accumulation grows to keep the effective batch")
    flag("learning_rate", type=float, help=f"peak learning rate ({_defaults('learning_rate')})")
    flag("accumulation_steps", type=int, help=f"micro-batches per optimizer step ({_defaults('accumulation_steps')})")
    flag("grad_clip", type=float, help="clip the gradient norm to this; 0 = no clipping (default 1.0)")
    flag("warmup_iters", type=int, help="linear warm-up, in optimizer steps (default 0)")
    flag("dtype", choices=("bfloat16", "float16", "float32"),
         help="autocast dtype on CUDA (default bfloat16; float16 with loss scaling on GPUs older than Ampere; "
              "float32 lets matmuls use TF32 where the GPU has it). The CPU always trains in float32")
    flag("device", help="cuda:0, cuda, cpu (default: cuda:0 when available)")
    flag("compile", nargs="?", const=True, type=parse_bool, help="torch.compile the model (upstream: "
                                                                 "--use_compile 1)")
    flag("dry_run", action="store_true", help="print the plan (parameters, passes, tokens per pass, memory) and exit")
    flag("chunk_tokens", type=int, help="split each batch into length-sorted forward passes of at most this many "
                                        "padded tokens, so little padding is computed; loss and gradients equal one "
                                        "padded pass. 0 = one sample per pass; -1 = whole batch in one pass "
                                        "(default: 8192 on CUDA; on CPU dense models pack each batch into one "
                                        "unpadded row instead)")

    group = p.add_argument_group("LoRA, DPO and distillation (train lora|dpo|distill)")
    flag("lora_name", metavar="NAME", help="lora: the adapter's name; it is written as MiniMind's train_lora.py "
                                           "writes it (v1, MiniMind2: {out_dir}/lora/NAME_{dim}.pth; minimind-3: "
                                           "{out_dir}/NAME_{dim}[_moe].pth) (default lora_identity; minimind-3 "
                                           "lora_medical)")
    flag("beta", type=float, help="dpo: how far the policy may move from the reference model (default 0.1; "
                                  "minimind-3 0.15)")
    flag("alpha", type=float, help="distill: weight of the data's cross-entropy; 1 - alpha goes to the teacher's "
                                   "softened logits (default 0.5; v1 0)")
    flag("temperature", type=float, help="distill: softmax temperature of both models' logits (default 1.5; "
                                         "v1 1)")
    flag("teacher", metavar="PATH", help="distill: the teacher's weights (a .pth, checkpoint, run or Hugging Face "
                                         "folder; default {out_dir}/{--from_teacher_weight}_{teacher dim}"
                                         "[_moe].pth)")
    flag("from_teacher_weight", metavar="NAME", help="distill: the teacher's stage in --out_dir (default "
                                                     "full_sft)")
    flag("teacher_dim", type=int, help="distill: the teacher's hidden size, for its default file (default 768)")
    flag("teacher_n_layers", type=int, help="distill: the teacher's layers, for its default file (default 16; "
                                            "minimind-3 8)")
    flag("teacher_use_moe", type=parse_bool, help="distill: the teacher is a MoE model (minimind-3's default)")

    group = p.add_argument_group("validation")
    flag("eval_data", metavar="JSONL", help="held-out data of the same kind: its loss (the training loss, over "
                                            "all of it) is logged as `eval` events")
    flag("eval_ratio", type=float, metavar="F", help="hold out this share of --data_path instead (e.g. 0.01): "
                                                     "chosen by --seed, never trained on")
    flag("eval_interval", type=int, metavar="N", help="evaluate every N optimizer steps, and at the end "
                                                      "(default: a tenth of the run)")

    group = p.add_argument_group("logging and saving")
    flag("log_interval", type=int, help="write a step event / log line every N optimizer steps (default 1)")
    flag("save_interval", type=int, help="save a checkpoint every N optimizer steps (default: by time, see "
                                         "--save_every_min)")
    flag("save_every_min", type=float, help=f"save a checkpoint every M minutes (default {DEFAULT_SAVE_EVERY_MIN:g} "
                                            f"unless --save_interval is given; both may be set). Checkpoints are "
                                            f"written in the background while training goes on")
    flag("keep_last", type=int, help="checkpoints kept in the run directory (default 3)")
    flag("use_wandb", nargs="?", const=True, type=parse_bool, help="also log to Weights & Biases if installed")
    flag("wandb_project", help="wandb / SwanLab project name (default MiniMind)")
    flag("use_swanlab", nargs="?", const=True, type=parse_bool, help="also log to SwanLab if installed")
    # Accepted so MiniMind command lines keep working; torchrun's environment decides instead.
    p.add_argument("--ddp", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)


class _Refusing(argparse.ArgumentParser):
    def error(self, message: str):
        raise UserError(message)


def parse_flags(argv: list[str]) -> dict:
    """The train flags in `argv` (no mode) as `given` returns them; a flag train does not take, or a bad value,
    is a UserError. The Train tab reads its "more" field and checks its command line with it."""
    parser = _Refusing(prog="train", add_help=False)
    add_arguments(parser)
    return given(parser.parse_args(argv))


def given(ns: argparse.Namespace) -> dict:
    """The flags the user actually typed."""
    keys = set(COMMON_DEFAULTS) | {k for d in MODE_DEFAULTS.values() for k in d}
    return {k: getattr(ns, k) for k in keys if getattr(ns, k, None) is not None}


def resolve(mode: str, explicit: dict, base: dict | None = None) -> dict:
    """Full settings: explicit flags over `base` (a resumed run's saved settings) over the defaults.
    Their values are checked by precheck.py, which the CLI and the Train tab both call."""
    if mode not in MODES:
        raise UserError(f"unknown training mode {mode!r}; use one of {', '.join(MODES)}")
    generation = (explicit.get("generation") or (base or {}).get("generation")
                  or PRESET_GENERATION.get(explicit.get("preset") or "") or "v1")
    settings = {**COMMON_DEFAULTS, **MODE_DEFAULTS[mode], **generation_defaults(generation, mode)}
    if base is None and explicit.get("preset"):
        settings.update({k: v for k, v in ALL_PRESETS[explicit["preset"]].items() if k in settings})
    settings.update(base or {})
    settings.update(explicit)
    settings["mode"] = mode
    settings["generation"] = generation
    if explicit.get("from_weight") and not explicit.get("init"):  # upstream's way of naming --init
        settings["init"] = ("none" if explicit["from_weight"] == "none" else
                            str(Path(settings["out_dir"]) / weights_file_name(explicit["from_weight"], settings)))
    if explicit.get("save_interval") is not None and explicit.get("save_every_min") is None:
        settings["save_every_min"] = None  # a step interval asked for replaces the time-based default
    if settings["save_interval"] is None and settings["save_every_min"] is None:
        settings["save_every_min"] = DEFAULT_SAVE_EVERY_MIN
    return settings


def model_config(settings: dict, vocab_size: int) -> LMConfig:
    """The network the settings describe, in their generation's arithmetic (its config class's defaults for
    everything the flags do not set: head_dim, eps, FFN width rule, MoE routing, theta, init)."""
    generation = settings.get("generation") or "v1"
    try:
        if generation == "v1":
            return LMConfig(dim=settings["dim"], n_layers=settings["n_layers"], n_heads=settings["n_heads"],
                            n_kv_heads=settings["n_kv_heads"], vocab_size=vocab_size,
                            max_seq_len=settings["max_seq_len"], use_moe=bool(settings["use_moe"]))
        # max_position_embeddings stays the config's (32768): upstream's --max_seq_len cuts samples only.
        return make_config(generation, hidden_size=settings["dim"], num_hidden_layers=settings["n_layers"],
                           num_attention_heads=settings["n_heads"], num_key_value_heads=settings["n_kv_heads"],
                           vocab_size=vocab_size, use_moe=bool(settings["use_moe"]))
    except ValueError as e:
        raise UserError(f"model settings: {e}") from None


def conflicts_on_resume(explicit: dict, saved: dict) -> list[str]:
    return [f"--{k} {explicit[k]} (the run has {saved.get(k)})" for k in FIXED_ON_RESUME
            if k in explicit and k in saved and explicit[k] != saved[k]]


def weights_file_name(stage: str, settings: dict, suffix: str = "") -> str:
    """MiniMind's name for a stage's weights, in every generation: {stage}_{hidden size}[_moe]{suffix}.pth."""
    return f"{stage}_{settings['dim']}{'_moe' if settings['use_moe'] else ''}{suffix}.pth"


def default_init_path(settings: dict) -> Path:
    """{out_dir}/pretrain_{dim}.pth for SFT, full_sft for the stages after it."""
    return Path(settings["out_dir"]) / weights_file_name(INIT_STAGE.get(settings["mode"], "pretrain"), settings)


def save_stage(settings: dict) -> str:
    """The stage name of the run's out/ weights: --save_weight, else the mode's in its generation."""
    named = STAGE_NAMES.get(settings.get("generation") or "v1", {}).get(settings["mode"])
    return settings.get("save_weight") or named or layout.WEIGHTS_PREFIX[settings["mode"]]


def export_path(settings: dict) -> Path:
    """Where the run's weights go for MiniMind's own scripts: --out_dir/{--save_weight}_{dim}[_moe].pth, or a
    LoRA run's adapter where the generation's train_lora.py writes it (model/lora.py's rule; MiniMind2's
    --save_dir default is ../out/lora, so its adapters too land in {out_dir}/lora)."""
    if settings["mode"] == "lora":
        from model.lora import lora_weights_path  # torch: only the trainer asks for a LoRA run's path

        generation = settings.get("generation") or "v1"
        folder = Path(settings["out_dir"]) / ("lora" if generation == "gen2" else "")
        return lora_weights_path(generation, folder, settings["lora_name"], settings["dim"], bool(settings["use_moe"]))
    return Path(settings["out_dir"]) / weights_file_name(save_stage(settings), settings)


def teacher_path(settings: dict) -> Path:
    """distill's teacher: --teacher, else {out_dir}/{--from_teacher_weight}_{teacher dim}[_moe].pth."""
    if settings.get("teacher"):
        return Path(settings["teacher"])
    shape = {"dim": settings["teacher_dim"], "use_moe": settings["teacher_use_moe"]}
    return Path(settings["out_dir"]) / weights_file_name(settings.get("from_teacher_weight") or "full_sft", shape)


def upstream_resume_path(settings: dict) -> Path:
    """MiniMind2's / minimind-3's resume file, ../checkpoints/{weight}_{hidden}[_moe]_resume.pth next to their
    ../out: here the checkpoints folder beside --out_dir."""
    return Path(settings["out_dir"]).parent / "checkpoints" / weights_file_name(save_stage(settings), settings,
                                                                               "_resume")
