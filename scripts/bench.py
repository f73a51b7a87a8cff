"""Benchmarks: our components against peers, measured side by side in one run.

    python scripts/bench.py --suite convnet            # Keras backends vs plain PyTorch
    python scripts/bench.py --suite adasyn             # ours vs imbalanced-learn vs the report's loop
    python scripts/bench.py --suite lora               # our LoRA/full vs HF PEFT/full
    python scripts/bench.py --suite all --json runs/bench.json

Each suite prints a table of medians and the ratios; --json writes
{"suite": ..., "rows": [...], "ratios": {...}} (a list of those for --suite all).
The machine is shared and noisy: quote the ratios, which compare contenders in the same run.
"""

from project.backend import select_backend_or_exit

BACKEND = select_backend_or_exit()  # the lora suite runs in this process's backend

import argparse  # noqa: E402
import importlib  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `benchmarks` beside `project`

from project.backend import add_backend_argument  # noqa: E402
from project.errors import InputError, run_cli  # noqa: E402
from project.io import write_json  # noqa: E402

SUITES = ("convnet", "adasyn", "lora")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--suite", choices=[*SUITES, "all"], required=True)
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per contender")
    p.add_argument("--threads", type=int, default=0,
                   help="compute threads per contender (convnet suite; 0: library default)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test, not a result")
    add_backend_argument(p)
    args = p.parse_args()
    if args.repeats < 1:
        raise InputError("--repeats must be at least 1")

    results = []
    for name in SUITES if args.suite == "all" else (args.suite,):
        suite = importlib.import_module(f"benchmarks.{name}")
        print(f"\n### suite {name}{' (quick: not a result)' if args.quick else ''}", flush=True)
        result = suite.run(args)
        result["quick"] = args.quick
        print(result.pop("text"))
        print("ratios:", ", ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in result["ratios"].items()))
        results.append(result)
    if args.json:
        write_json(args.json, results[0] if len(results) == 1 else results)
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    run_cli(main)
