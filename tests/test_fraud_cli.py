"""scripts/fraud.py and scripts/evaluate.py end to end, bad input, and cross-backend reloads."""

import json

import numpy as np
import pytest

from tests.conftest import BACKEND, OTHER_BACKEND, run_script, run_script_here


@pytest.fixture(scope="module")
def fraud_run(tmp_path_factory, small_creditcard):
    """One short run of all three protocols on a small synthetic file, in this process."""
    out = tmp_path_factory.mktemp("fraud") / "run"
    code, stdout, stderr = run_script_here(
        "fraud.py", "--data", small_creditcard, "--protocol", "all", "--epochs", "2",
        "--batch-size", "128", "--out", out, "--verbose", "0", "--threshold", "val-f1",
    )
    assert code == 0, stderr
    return out


def test_run_writes_every_output(fraud_run):
    metrics = json.loads((fraud_run / "metrics.json").read_text())
    assert metrics["backend"] == BACKEND and metrics["data"]["rows"] == 4000
    assert list(metrics["protocols"]) == ["none", "adasyn-all", "adasyn-train"]
    for name, run in metrics["protocols"].items():
        for key in ("accuracy", "precision", "recall", "f1", "pr_auc", "roc_auc",
                    "confusion_matrix", "threshold"):
            assert key in run["val"] and key in run["test"]
        assert run["epochs"] == 2 and run["train_seconds"] > 0 and run["samples_per_second"] > 0
        for file in ("model.keras", "preprocessing.json", "history.csv", "history.png",
                     "confusion_test.png"):
            assert (fraud_run / name / file).is_file()
    assert metrics["protocols"]["adasyn-all"]["leaky"] is True
    assert metrics["protocols"]["adasyn-all"]["label"] == "adasyn-all (LEAKY)"
    report = (fraud_run / "report.md").read_text()
    assert "adasyn-all (LEAKY)" in report and "fewer than the paper's 46" in report
    assert "Data: synthetic" not in report  # only the bundled sample is labelled synthetic
    assert (fraud_run / "pr_curves.png").stat().st_size > 1000
    assert not list(fraud_run.rglob(".*tmp*"))


def test_adasyn_train_never_touches_validation_or_test(fraud_run):
    metrics = json.loads((fraud_run / "metrics.json").read_text())
    train, leaky = metrics["protocols"]["adasyn-train"], metrics["protocols"]["adasyn-all"]
    none = metrics["protocols"]["none"]
    assert train["synthetic_val_rows"] == train["synthetic_test_rows"] == 0
    assert train["counts"]["val"] == none["counts"]["val"]
    assert train["counts"]["test"] == none["counts"]["test"]
    assert train["synthetic_train_rows"] > 0
    assert leaky["synthetic_val_rows"] > 0 and leaky["synthetic_test_rows"] > 0


def test_only_the_bundled_sample_is_labelled_synthetic(small_creditcard):
    from project.data.creditcard import BUNDLED_SAMPLE, is_bundled_sample
    from project.reporting import SYNTHETIC_NOTE
    from project.reporting.fraud import fraud_report

    assert is_bundled_sample(BUNDLED_SAMPLE) and not is_bundled_sample(small_creditcard)
    metrics = {
        "backend": BACKEND, "protocols": {},
        "data": {"path": "x", "synthetic": True, "rows": 10, "frauds": 1},
        "settings": {"epochs": 1, "paper_epochs": 46, "batch_size": 1, "learning_rate": 1e-4,
                     "monitor": "val_pr_auc", "threshold_rule": "fixed 0.5", "stratify": False},
    }
    assert SYNTHETIC_NOTE in fraud_report(metrics)


def test_evaluate_reproduces_the_test_metrics(fraud_run, small_creditcard, tmp_path):
    saved = json.loads((fraud_run / "metrics.json").read_text())["protocols"]["adasyn-train"]["test"]
    code, stdout, stderr = run_script_here(
        "evaluate.py", fraud_run / "adasyn-train" / "model.keras", "--task", "fraud",
        "--data", small_creditcard, "--json", tmp_path / "eval.json",
    )
    assert code == 0, stderr
    got = json.loads((tmp_path / "eval.json").read_text())
    for key in ("accuracy", "precision", "recall", "f1", "pr_auc", "threshold"):
        assert got[key] == pytest.approx(saved[key], abs=1e-6), key
    assert got["confusion_matrix"] == saved["confusion_matrix"]


def test_model_saved_here_evaluates_the_same_under_the_other_backend(
    fraud_run, small_creditcard, tmp_path
):
    model = fraud_run / "none" / "model.keras"
    mine, theirs = tmp_path / "mine.npy", tmp_path / "theirs.npy"
    code, _, stderr = run_script_here("evaluate.py", model, "--task", "fraud",
                                      "--data", small_creditcard, "--predictions", mine)
    assert code == 0, stderr
    other = run_script("evaluate.py", model, "--task", "fraud", "--data", small_creditcard,
                       "--predictions", theirs, backend=OTHER_BACKEND)
    assert other.returncode == 0, other.stderr
    assert f"backend {OTHER_BACKEND}" in other.stdout
    np.testing.assert_allclose(np.load(theirs), np.load(mine), atol=1e-5)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--data", "missing.csv"], "missing.csv: no such file"),
        (["--epochs", "0"], "--epochs and --batch-size must be at least 1"),
        (["--threshold", "high"], "--threshold 'high'"),
    ],
)
def test_fraud_bad_input_exits_2_with_one_line(tmp_path, args, message):
    code, _, err = run_script_here("fraud.py", *args, "--out", tmp_path / "out")
    assert code == 2
    assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "metrics.json").exists()


def test_fraud_bad_csv_exits_2(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("Time,V1\n0,1\n")
    code, _, err = run_script_here("fraud.py", "--data", bad, "--out", tmp_path / "out")
    assert code == 2 and "missing columns V2" in err and "Traceback" not in err


@pytest.mark.parametrize("kind", ["text", "truncated", "missing"])
def test_evaluate_rejects_what_is_not_a_keras_model(fraud_run, tmp_path, kind):
    path = tmp_path / "model.keras"
    if kind == "text":
        path.write_text("not a model")
    elif kind == "truncated":
        data = (fraud_run / "none" / "model.keras").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    code, _, err = run_script_here("evaluate.py", path, "--task", "fraud")
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert ("not a Keras model" in err) or ("no such model file" in err) or ("cannot load" in err)
