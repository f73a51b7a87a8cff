"""QQP paraphrase detection with RoBERTa (keras-hub): full fine-tuning vs paper-faithful LoRA.

    python scripts/qqp.py                          # bundled synthetic sample, tiny random model
    python scripts/qqp.py --preset roberta_large_en --data train.csv --balance --fraction 0.01
    python scripts/qqp.py --profile paper --preset roberta_large_en --data train.tsv --dev dev.tsv
    python scripts/qqp.py --preset ./hf-roberta-dir        # a Hugging Face save_pretrained folder
    python scripts/qqp.py --seeds 0,1,2,3,4                # five seeds: medians and intervals
    python scripts/qqp.py --resume runs/qqp-20261129-101500
    python scripts/qqp.py --mode lora --quantize int8 --remat   # int8 frozen base, less memory

Profiles (explicit options override them): report, the course report's setting (lr full 1e-6,
LoRA 1e-4, 10 epochs, batch 16, LoRA on q,k,v, Hugging Face Trainer defaults); paper, the LoRA
paper's RoBERTa-large QQP setup (LoRA on q,v, lr 3e-4, 20 epochs, batch 4, length 512). Without
--preset the model is a tiny random RoBERTa, which learns nothing at the profiles' rates: its
default rates are 1e-3 (full) and 5e-3 (LoRA), and the report says so.

--quantize int8 (with --mode lora) stores LoRA's frozen base in int8; A, B and the head train in
float32 and the LoRA model is saved unmerged. --remat recomputes each transformer layer's
activations in the backward pass (the same numbers, less memory, more compute).

Writes under --out: config.json, lengths.png, then per mode (per seed with --seeds) model.keras
(LoRA merged unless on an int8 base), model.json, history.csv, adapter.safetensors (LoRA) and
result.json; at the end metrics.json, report.md and curves.png.
"""

import argparse
import dataclasses
from pathlib import Path

from project import settings
from project.cli import (
    Parser,
    add_run_options,
    finite_float,
    flag_names,
    given_options,
    new_or_resumed,
    seeds_of,
)
from project.errors import run_cli
from project.experiments.config import QQPConfig

CONFIG_OPTIONS = tuple(f.name for f in dataclasses.fields(QQPConfig))  # what --resume compares


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data", default=None,
                   help="Kaggle train.csv or GLUE train.tsv (default: the bundled sample)")
    p.add_argument("--dev", default=None,
                   help="validation file (e.g. GLUE dev.tsv); default: split off --data")
    p.add_argument("--preset", default=None,
                   help="keras-hub preset (roberta_large_en; needs the network once), a local "
                        "preset folder or a Hugging Face folder; default: the tiny random RoBERTa")
    p.add_argument("--mode", choices=(*settings.MODES, "both"), default=None, help="default both")
    p.add_argument("--profile", choices=tuple(settings.QQP_PROFILES), default=None,
                   help="default report")
    p.add_argument("--lora-style", choices=settings.LORA_STYLES, default=None,
                   help="matrix: the paper's/PEFT's LoRA (default); per-head: keras-hub's")
    p.add_argument("--rank", type=int, default=None,
                   help=f"LoRA rank r (default {settings.LORA_RANK})")
    p.add_argument("--alpha", type=finite_float, default=None,
                   help=f"LoRA alpha (default {settings.LORA_ALPHA:g})")
    p.add_argument("--lora-dropout", type=finite_float, default=None,
                   help=f"default {settings.LORA_DROPOUT:g}")
    p.add_argument("--targets", default=None,
                   help="LoRA projections, e.g. query,value (from "
                        f"{','.join(settings.LORA_TARGETS)}; default: the profile's)")
    p.add_argument("--epochs", type=int, default=None, help="default: the profile's")
    p.add_argument("--batch-size", type=int, default=None, help="global batch; default: profile's")
    p.add_argument("--lr", type=finite_float, default=None, help="learning rate for both modes")
    p.add_argument("--lr-full", type=finite_float, default=None, help="default: the profile's")
    p.add_argument("--lr-lora", type=finite_float, default=None, help="default: the profile's")
    p.add_argument("--weight-decay", type=finite_float, default=None)
    p.add_argument("--warmup-ratio", type=finite_float, default=None)
    p.add_argument("--clip-norm", type=finite_float, default=None,
                   help="global gradient-norm clipping (default 1.0; 0 turns it off)")
    p.add_argument("--sequence-length", type=int, default=None,
                   help="default: the profile's (report: the max+max+10 rule)")
    p.add_argument("--val-fraction", type=finite_float, default=None,
                   help="validation share when there is no --dev (default 0.1)")
    p.add_argument("--test-fraction", type=finite_float, default=None,
                   help="also hold out an untouched test split of this share")
    p.add_argument("--fraction", type=finite_float, default=None, help="keep this stratified share")
    p.add_argument("--balance", action="store_true", default=None,
                   help="undersample the majority class")
    p.add_argument("--quantize", default=None, metavar="MODE",
                   help=f"LoRA's frozen base in {', '.join(settings.QUANTIZE_MODES)} "
                        "(--mode lora only)")
    p.add_argument("--remat", action="store_true", default=None,
                   help="recompute activations in the backward pass (less memory, more compute)")
    add_run_options(p, "qqp")
    args = p.parse_args(argv)

    if args.lr is not None:  # for both modes, where not given for one
        args.lr_full = args.lr if args.lr_full is None else args.lr_full
        args.lr_lora = args.lr if args.lr_lora is None else args.lr_lora
    given = given_options(args, CONFIG_OPTIONS)
    if args.mode is not None:
        given["modes"] = settings.MODES if args.mode == "both" else (args.mode,)
    if args.targets is not None:
        given["targets"] = tuple(t.strip() for t in args.targets.split(",") if t.strip())
    if seeds_of(args) is not None:
        given["seeds"] = seeds_of(args)
    for key in ("data", "dev"):
        if key in given:
            given[key] = str(Path(given[key]))
    return args, given


@flag_names
def main(argv=None) -> int:
    args, given = parse_args(argv)
    config, out, resume = new_or_resumed(args, given, "qqp",
                                         lambda options: QQPConfig(**options).resolve())
    from project.experiments import qqp
    from project.reporting.qqp import write_qqp_outputs

    result = qqp.run(config, out, resume=resume, verbose=args.verbose)
    if result.chief:  # in a run of several processes, process 0 writes
        report = write_qqp_outputs(result, out)
        for run in result.runs:
            print(f"seed {run.seed} · {run.label}: validation accuracy {run.val.accuracy:.4f}, "
                  f"{run.trainable_params:,} trainable, {run.training.train_seconds:.1f} s")
        print(f"\nwrote {report}, metrics.json, plots and models under {out}")
    return 0


def cli() -> None:
    run_cli(main)


if __name__ == "__main__":
    cli()
