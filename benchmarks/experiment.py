"""Suite ``experiment``: the real jobs timed at their real sizes, on synthetic data.

* **fraud**: ``scripts/fraud.py --protocol all --epochs 46`` end to end on a synthetic file of
  the real size (284,807 rows, 492 frauds, as ``scripts/make_samples.py`` writes it), per backend
  in its own process (one cold call, as a real run): each protocol's time and where it goes
  (``ProtocolRun.timings``), the process's peak RSS.
* **QQP's data pipeline** (read, balance and keep 1%, split, length histogram, tokenise) on a
  synthetic file of Kaggle's size (404,290 pairs) with the bundled tiny BPE: the report's setting
  (``--balance --fraction 0.01``) and the whole file, under the first backend only.

``--quick`` (a smoke test): 6,000 rows and 40 frauds, 1 epoch, no baselines; 1,500 pairs, the
whole file only. The files are made in a temporary folder (printed at the start), where the runs'
progress lines go to ``<backend>.log``. Target: the per-epoch evaluation (at the real validation
size, 56,962 rows) takes at most 10% of the epoch's training time, on every backend.
"""

import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import Contender, Prepared, Target, check_targets, format_table

REAL = dict(rows=284_807, frauds=492, epochs=46, pairs=404_290)
QUICK = dict(rows=6_000, frauds=40, epochs=1, pairs=1_500)
EVALUATION_SHARE = 0.10  # target: per-epoch evaluation / the epoch's training time


def targets(backends) -> list:
    return [Target(f"{b}: per-epoch evaluation / epoch training time (fraud, worst protocol)",
                   f"{b}_validation_vs_epoch", "<=", EVALUATION_SHARE) for b in backends]


def prepare_fraud(data: str, epochs: int, baselines: bool, out: str, log_path: str) -> Prepared:
    """One call: the fraud experiment, ``--protocol all``, end to end, into a new folder."""
    from project.experiments.config import FraudConfig
    from project.experiments.fraud import run
    config = FraudConfig(data=data, protocols=("none", "adasyn-all", "adasyn-train"),
                         epochs=epochs, baselines=baselines).validate()
    info = {"protocols": {}}

    def step():
        with open(log_path, "a", encoding="utf-8") as log_file:
            def log(line):
                print(line, file=log_file, flush=True)

            start = time.perf_counter()
            result = run(config, Path(out) / f"run-{time.time_ns()}", verbose="auto", log=log)
            info["run_seconds"] = time.perf_counter() - start
        for part in result.runs:
            epochs_s, val_s = part.training.epoch_seconds, part.training.history["val_seconds"]
            info["protocols"][part.protocol] = {
                **part.timings, "train_seconds": part.training.train_seconds,
                "training_rows": part.counts["train"]["rows"],
                "median_epoch_seconds": statistics.median(epochs_s),
                "median_validation_seconds": statistics.median(val_s),
                "validation_vs_epoch": sum(val_s) / sum(epochs_s),
                "training_peak_rss_mb": part.training.peak_rss_mb}

    return Prepared(step, info)


def prepare_qqp(data: str, balance: bool, fraction) -> Prepared:
    """One call: QQP's data pipeline as ``project.experiments.qqp.prepare`` runs it, by phase."""
    from project.data.qqp import read_qqp
    from project.data.qqp_length import choose_sequence_length, tokenize_pairs
    from project.data.qqp_splits import balance_classes, split, subsample
    from project.interop import load_classifier
    from project.models.roberta import build_preprocessor
    info = {}

    def step():
        clock = [time.perf_counter()]

        def phase(name):
            now = time.perf_counter()
            info[f"{name}_seconds"], clock[0] = now - clock[0], now

        frame = read_qqp(data).frame
        phase("read")
        if balance:
            frame = balance_classes(frame, 0)
        if fraction is not None:
            frame = subsample(frame, fraction, 0)
        train, validation, _ = split(frame, 0.1, 0)
        phase("balance_split")
        tokenizer = load_classifier().preprocessor.tokenizer  # the bundled tiny BPE
        phase("load_tokenizer")
        length = choose_sequence_length(tokenizer, [train, validation], 512)
        phase("length_histogram")
        preprocessor = build_preprocessor(tokenizer, length.sequence_length)
        for f in (train, validation):
            tokenize_pairs(preprocessor, f)
        phase("tokenise")
        info.update(pairs=len(train) + len(validation), sequence_length=length.sequence_length)

    return Prepared(step, info)


def run(args) -> dict:
    from benchmarks.harness import measure
    from project.data.creditcard_sample import write_creditcard_sample
    from project.data.qqp_sample import write_qqp_sample
    quick = bool(args.quick)
    sizes = QUICK if quick else REAL
    backends = list(args.backends)
    with tempfile.TemporaryDirectory(prefix="bench-experiment-") as tmp:
        folder = Path(tmp)
        print(f"synthetic data and progress logs in {folder}", file=sys.stderr, flush=True)
        fraud = write_creditcard_sample(folder / "creditcard_sample.csv.gz",
                                        n_rows=sizes["rows"], n_fraud=sizes["frauds"])
        qqp = write_qqp_sample(folder / "qqp_sample.csv.gz", n_pairs=sizes["pairs"])
        here = "benchmarks.experiment:"
        groups = [[Contender(f"fraud:{b}", f"fraud --protocol all, {b}", here + "prepare_fraud",
                             {"data": str(fraud), "epochs": sizes["epochs"],
                              "baselines": not quick, "out": str(folder / b),
                              "log_path": str(folder / f"{b}.log")}, backend=b)]
                  for b in backends]
        settings = (("report", True, 0.01), ("whole", False, None))[1 if quick else 0:]
        groups += [[Contender(f"qqp:{name}", f"QQP data pipeline, {name}", here + "prepare_qqp",
                              {"data": str(qqp), "balance": balance, "fraction": fraction},
                              backend=backends[0])] for name, balance, fraction in settings]
        threads = int(getattr(args, "threads", 0) or 0)
        results = measure(groups, repeats=1, warmup=0, threads=threads)
    rows, ratios = [], {}
    for b in backends:
        info = results[f"fraud:{b}"]["info"]
        ratios[f"{b}_run_seconds"] = info["run_seconds"]
        ratios[f"{b}_peak_rss_mb"] = info["peak_rss_mb"]
        ratios[f"{b}_validation_vs_epoch"] = max(
            p["validation_vs_epoch"] for p in info["protocols"].values())
        for protocol, p in info["protocols"].items():
            rows.append({"backend": b, "protocol": protocol, **p,
                         "epochs_seconds": p["fit_seconds"] + p["validation_seconds"]})
    qqp_rows = [{"setting": key.split(":")[1], **results[key]["info"]}
                for key in results if key.startswith("qqp:")]
    text = (
        f"fraud experiment, --protocol all --epochs {sizes['epochs']}, synthetic "
        f"{sizes['rows']:,} rows / {sizes['frauds']} frauds, one cold run per backend in its own "
        f"process; seconds\n"
        + format_table(rows, [
            ("backend", "backend", ""), ("protocol", "protocol", ""),
            ("training_rows", "train rows", ",d"), ("split_seconds", "split+ADASYN", ".1f"),
            ("fit_seconds", "fit", ".0f"), ("validation_seconds", "per-epoch eval", ".1f"),
            ("validation_vs_epoch", "eval/epoch", ".1%"),
            ("median_epoch_seconds", "s/epoch", ".2f"),
            ("evaluation_seconds", "final eval+bootstrap", ".1f"),
            ("baselines_seconds", "baselines", ".1f"), ("save_seconds", "save", ".1f"),
            ("train_seconds", "training total", ".0f")])
        + "\n" + "  ".join(f"{b}: whole run {ratios[f'{b}_run_seconds'] / 60:.1f} min, peak RSS "
                           f"{ratios[f'{b}_peak_rss_mb']:,.0f} MB" for b in backends)
        + f"\n\nQQP data pipeline, synthetic {sizes['pairs']:,} pairs, bundled tiny BPE, "
        f"{backends[0]}; seconds\n"
        + format_table(qqp_rows, [
            ("setting", "setting", ""), ("pairs", "pairs kept", ",d"),
            ("read_seconds", "read", ".1f"), ("balance_split_seconds", "balance+split", ".2f"),
            ("load_tokenizer_seconds", "load tokenizer", ".1f"),
            ("length_histogram_seconds", "length histogram", ".1f"),
            ("tokenise_seconds", "tokenise", ".1f"), ("sequence_length", "length", "d"),
            ("peak_rss_mb", "peak RSS MB", ",.0f")]))
    return {"suite": "experiment", "rows": rows, "qqp": qqp_rows, "ratios": ratios,
            "text": text, "targets": check_targets(targets(backends), ratios), "sizes": sizes}
