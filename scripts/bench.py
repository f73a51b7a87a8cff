"""Benchmarks: our components against peers, measured side by side in one run.

    python scripts/bench.py --suite convnet     # Keras backends vs plain PyTorch (ConvNet training)
    python scripts/bench.py --suite adasyn      # ours vs imbalanced-learn vs the report's loop
    python scripts/bench.py --suite lora        # our LoRA/full per backend vs HF PEFT/full
    python scripts/bench.py --suite memory      # RoBERTa-large memory: full, LoRA, remat, int8 base
    python scripts/bench.py --suite experiment  # the fraud experiment and QQP's data at real sizes
    python scripts/bench.py --suite all --json runs/bench.json    # convnet, adasyn and lora
    python scripts/bench.py --suite convnet --quick     # a smoke test (seconds), not a result

Every suite follows one protocol (benchmarks/harness.py) and prints the machine, a table, its
ratios and its targets (met or missed); --json writes {"suite", "machine", "rows", "ratios",
"targets"} (a list of those for --suite all). Quote the ratios: they compare contenders in the
same run, on a machine that may be shared and noisy.
"""

import argparse
import importlib
import os
import sys
from pathlib import Path

from project.backend import DEFAULT_BACKEND, check_backend, installed_backends, parse_backends
from project.cli import Parser
from project.errors import InputError, run_cli
from project.io import check_output_file

ROOT = Path(__file__).resolve().parents[1]
ALL = ("convnet", "adasyn", "lora")  # --suite all; the long ones run by name only
SUITES = (*ALL, "memory", "experiment")


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--suite", choices=[*SUITES, "all"], required=True)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--repeats", type=int, default=3, help="timed calls per contender (default 3)")
    p.add_argument("--threads", type=int, default=0,
                   help="compute threads per contender (default 0: each library's default)")
    p.add_argument("--backends", "--backend", dest="backends", default=None,
                   help="Keras backends to measure, comma-separated (default: all installed; "
                        "with --quick: $KERAS_BACKEND)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a result")
    args = p.parse_args(argv)
    if args.repeats < 1:
        raise InputError(f"--repeats {args.repeats}: must be at least 1")
    if args.threads < 0:
        raise InputError(f"--threads {args.threads}: must be 0 (library default) or more")
    if args.json is not None:
        check_output_file(args.json, "--json")
    if args.backends is not None:  # checked: known and installed
        args.backends = parse_backends(args.backends)
    elif args.quick:
        args.backends = [check_backend(os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND)]
    else:
        args.backends = installed_backends()
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (ROOT / "benchmarks" / "harness.py").is_file():
        raise InputError("bench needs the repository checkout (benchmarks/ beside project/)")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.harness import format_targets
    from project.io import write_json
    from project.machine import machine_line

    machine = machine_line()
    print(machine, flush=True)
    results = []
    for name in ALL if args.suite == "all" else (args.suite,):
        suite = importlib.import_module(f"benchmarks.{name}")
        print(f"\n### suite {name}{' (quick: a smoke test, not a result)' if args.quick else ''}",
              flush=True)
        result = suite.run(args)
        result.update(machine=machine, quick=args.quick)
        print(result.pop("text"))
        print("ratios: " + ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                     for k, v in result["ratios"].items()))
        if result["targets"]:
            print(format_targets(result["targets"]))
        results.append(result)
    if args.json:
        write_json(args.json, results[0] if len(results) == 1 else results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
