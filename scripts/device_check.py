"""One command for an accelerator: what this machine does with each installed Keras backend.

    python scripts/device_check.py                  # every installed backend, < 8 minutes
    python scripts/device_check.py --quick          # small sizes (CPU, the tests): seconds
    python scripts/device_check.py --backends torch,jax --json runs/device.json

On the device each backend finds (a CUDA GPU, else the CPU), each in its own process: a matmul
peak, ConvNet training, RoBERTa-large LoRA/full steps in float32 and mixed_bfloat16 (tokens/s,
MFU), the bf16 logit gap, the largest batch (benchmarks/device.py: needs the repository
checkout). Needs keras, keras-hub, torch and/or JAX (TensorFlow optional; offline). The backends
share the time budget; what does not fit is reported as skipped. Prints a table; --json writes.
"""

import argparse
import sys
from pathlib import Path

from project.backend import installed_backends, parse_backends
from project.cli import Parser
from project.errors import InputError, run_cli
from project.io import check_output_file

ROOT = Path(__file__).resolve().parents[1]
BUDGET_SECONDS = 330  # shared by the backends; with the grace periods the run stays under 8 min
QUICK_BUDGET_SECONDS = 400  # a bound on a runaway, not a target: --quick is a smoke test


def parse_args(argv=None):
    p = Parser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a CPU smoke test)")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--backends", default=None,
                   help="comma-separated Keras backends (default: every installed one)")
    p.add_argument("--budget", type=float, default=None,
                   help=f"seconds for all backends' measurements (default {BUDGET_SECONDS}; "
                        f"--quick {QUICK_BUDGET_SECONDS})")
    args = p.parse_args(argv)
    if args.budget is None:
        args.budget = QUICK_BUDGET_SECONDS if args.quick else BUDGET_SECONDS
    if not args.budget > 0:
        raise InputError(f"--budget {args.budget:g}: must be a positive number of seconds")
    if args.json is not None:
        check_output_file(args.json, "--json")
    args.backends = (installed_backends() if args.backends is None
                     else parse_backends(args.backends))
    if not args.backends:
        raise InputError("no Keras backend installed (pip install torch, jax or tensorflow)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if not (ROOT / "benchmarks" / "device.py").is_file():
        raise InputError("device_check needs the repository checkout (benchmarks/ beside project/)")
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from benchmarks.device import GRACE_SECONDS, run_backend, table
    from project.io import write_json
    from project.machine import machine_line

    machine = machine_line()
    print(machine, flush=True)
    share = args.budget / len(args.backends)
    results = {}
    for backend in args.backends:  # each in its own process, with its share of the budget
        print(f"  {backend}: measuring (up to {share + GRACE_SECONDS:.0f} s)", file=sys.stderr,
              flush=True)
        results[backend] = run_backend(backend, args.quick, share)
    print(table(results))
    if args.json:
        write_json(args.json, {"machine": machine, "quick": args.quick, "budget_seconds":
                               args.budget, "backends": results})
        print(f"wrote {args.json}")
    return 0 if any("error" not in r for r in results.values()) else 1


if __name__ == "__main__":
    run_cli(main)
