"""The real jobs at their real sizes: the synthetic files of those sizes, where a fraud run's time
goes, the per-epoch evaluation's cheap path, and the `experiment` and `memory` suites of
scripts/bench.py in their --quick form (the real runs take hours; README gives their figures)."""

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from project.training.metrics import epoch_logs, evaluate_scores
from tests.conftest import BACKENDS, call_script, run_script


@pytest.mark.backend_independent
def test_make_samples_writes_the_sizes_asked(tmp_path):
    code, out, err = call_script("make_samples.py", "--only", "fraud", "--rows", "3000",
                                 "--frauds", "25", "--out", tmp_path)
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "creditcard_sample.csv.gz")
    assert (len(frame), int(frame["Class"].sum())) == (3000, 25)
    code, out, err = call_script("make_samples.py", "--only", "qqp", "--pairs", "500", "--out",
                                 tmp_path)
    assert code == 0, err
    with gzip.open(tmp_path / "qqp_sample.csv.gz", "rt") as f:
        assert len(pd.read_csv(f)) == 500
    assert not (tmp_path / "qqp_tokenizer").exists()  # only the pairs: the tokenizer stays
    for args in (["--frauds", "0"], ["--rows", "10", "--frauds", "10"], ["--pairs", "5"]):
        code, out, err = call_script("make_samples.py", *args, "--out", tmp_path)
        assert code == 2 and err.startswith("error: --") and err.count("\n") == 1


@pytest.mark.backend_independent
def test_epoch_logs_are_the_evaluators_numbers():
    rng = np.random.default_rng(0)
    for trial in range(60):
        n = int(rng.integers(2, 400))
        y = (rng.random(n) < rng.random()).astype(int)
        scores = np.round(rng.random(n), 1 if trial % 2 else 6)  # with and without ties
        threshold = float(rng.random())
        expected = evaluate_scores(y, scores, threshold, n_boot=0, loss=0.25).epoch_logs()
        fast = epoch_logs(y, scores, threshold, loss=0.25)
        assert fast.keys() == expected.keys()  # one class: no AP / ROC-AUC in either
        for key, value in expected.items():
            assert fast[key] == pytest.approx(value, abs=1e-12), key


# The two quick suites measure every backend in one run (a process per backend), so they run once.
@pytest.mark.backend_independent
def test_quick_experiment_suite_times_where_the_time_goes(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("bench.py", "--suite", "experiment", "--quick", "--backends",
                        ",".join(BACKENDS), "--json", out, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    for b in BACKENDS:
        protocols = {r["protocol"]: r for r in data["rows"] if r["backend"] == b}
        assert set(protocols) == {"none", "adasyn-all", "adasyn-train"}
        for row in protocols.values():
            assert row["fit_seconds"] > 0
            assert 0 < row["validation_seconds"] < row["train_seconds"]
            for key in ("split_seconds", "evaluation_seconds", "baselines_seconds",
                        "save_seconds"):
                assert row[key] >= 0
        # ADASYN doubles the training rows; 6,000 rows split 60/20/20
        assert protocols["none"]["training_rows"] == 3600
        assert protocols["adasyn-train"]["training_rows"] > 1.9 * 3600
        assert data["ratios"][f"{b}_peak_rss_mb"] > 0
    assert [t["key"] for t in data["targets"]] == [f"{b}_validation_vs_epoch" for b in BACKENDS]
    settings = {r["setting"]: r for r in data["qqp"]}
    assert settings["whole"]["pairs"] == 1497  # 1,500 less the three empty questions
    assert settings["whole"]["tokenise_seconds"] > 0 and settings["whole"]["sequence_length"] > 10


@pytest.mark.backend_independent
def test_quick_memory_suite_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("bench.py", "--suite", "memory", "--quick", "--repeats", "1",
                        "--backends", ",".join(BACKENDS), "--json", out, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    ratios = data["ratios"]
    for b in BACKENDS:
        rows = {r["kind"]: r for r in data["rows"] if r["backend"] == b}
        assert set(rows) == {"lora", "lora-int8-remat"}
        assert rows["lora"]["trainable"] == rows["lora-int8-remat"]["trainable"]
        assert all(r["step_peak_mb"] > 0 and r["first_step_peak_mb"] > 0
                   and r["step_seconds"] > 0 for r in rows.values())
        assert 0.2 < ratios[f"{b}_float32_int8_remat_vs_lora_weights"] < 0.45
        assert 0 < ratios[f"{b}_int8_logit_gap_max"] < 0.1 * ratios[f"{b}_int8_logit_scale"]
    assert 0 <= ratios["sample_val_accuracy_int8"] <= 1
    assert 0 <= ratios["sample_logit_gap_max"] < 0.5 and ratios["sample_argmax_agreement"] > 0.5
    assert {t["status"] for t in data["targets"]} <= {"met", "MISSED", "not measured"}
