"""scripts/qqp.py end to end on a slice of the bundled sample, its outputs, and bad input."""

import json
import re

import numpy as np
import pytest

from project.data.qqp import SAMPLE_PATH, load_qqp, tokenize_pairs
from project.io import load_model
from project.models.roberta import evaluate_qqp_model, predict_logits, tiny_config
from tests.conftest import BACKEND, run_script_here


@pytest.fixture(scope="module")
def qqp_run(tmp_path_factory):
    """Both modes, one epoch, a quarter of the sample, in this process."""
    out = tmp_path_factory.mktemp("qqp") / "run"
    code, stdout, stderr = run_script_here(
        "qqp.py", "--epochs", "1", "--fraction", "0.25", "--out", out, "--verbose", "0",
        "--lr-full", "1e-3", "--lr-lora", "5e-3",
    )
    assert code == 0, stderr
    return out


def test_run_writes_every_output(qqp_run):
    metrics = json.loads((qqp_run / "metrics.json").read_text())
    assert metrics["backend"] == BACKEND and metrics["data"]["synthetic"] is True
    assert metrics["data"]["dropped_missing"] == 3
    assert list(metrics["modes"]) == ["full", "lora"]
    config = tiny_config()
    h, layers, r = config["hidden_dim"], config["num_layers"], 8
    head = h * h + h + 2 * h + 2
    full, lora = metrics["modes"]["full"], metrics["modes"]["lora"]
    assert lora["trainable_params"] == layers * 3 * 2 * h * r + head
    assert full["trainable_params"] == full["total_params"]
    assert lora["total_params"] == full["total_params"] + layers * 3 * 2 * h * r
    for run in (full, lora):
        assert 0 <= run["val_accuracy"] <= 1 and run["epochs_run"] == 1
        assert set(run["val"]["per_class"]) == {"not duplicate", "duplicate"}
        assert run["model_bytes"] == (qqp_run / run["model_file"]).stat().st_size
    assert lora["adapter_bytes"] < lora["model_bytes"] / 3
    assert lora["merge_max_abs_diff"] < 1e-4
    for name in ("report.md", "curves.png", "lengths.png", "full-history.csv",
                 "lora-history.csv", "lora/adapter.npz"):
        assert (qqp_run / name).is_file(), name
    report = (qqp_run / "report.md").read_text()
    assert "synthetic" in report and "Mechanics check, not a result" in report
    assert "--preset roberta_large_en" in report and "| Full fine-tuning | LoRA |" in report
    assert "fewer than" in report  # 1 epoch < the report's 10
    assert not list(qqp_run.rglob(".*tmp*"))


def test_saved_models_reproduce_validation_accuracy(qqp_run):
    metrics = json.loads((qqp_run / "metrics.json").read_text())
    data = load_qqp(fraction=0.25, seed=0)
    for run in metrics["modes"].values():
        model = load_model(qqp_run / run["model_file"])
        assert model.preprocessor.sequence_length == metrics["data"]["length"]["sequence_length"]
        logits = predict_logits(model, tokenize_pairs(model.preprocessor, data.validation))
        accuracy = float(np.mean(logits.argmax(-1) == data.validation["is_duplicate"]))
        assert accuracy == pytest.approx(run["val_accuracy"], abs=1e-6)


def test_evaluate_script_matches_evaluate_qqp_model(qqp_run, tmp_path):
    model_path = qqp_run / "lora" / "model.keras"
    code, stdout, stderr = run_script_here("evaluate.py", model_path, "--task", "qqp",
                                           "--json", tmp_path / "eval.json")
    assert code == 0, stderr
    got = json.loads((tmp_path / "eval.json").read_text())
    expected = evaluate_qqp_model(load_model(model_path), SAMPLE_PATH)
    assert got["n"] == expected["n"] == expected["rows_read"] - expected["dropped_missing"]
    assert got["accuracy"] == pytest.approx(expected["accuracy"], abs=1e-9)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--data", "missing.csv"], r"missing\.csv: no such file \(--data\)"),
        (["--sequence-length", "1000"], r"sequence length 1000 is outside \[4, 128\]"),
        (["--rank", "0"], r"rank must be a positive integer, got 0 \(--rank\)"),
        (["--lora-dropout", "1.5"], r"dropout must be in \[0, 1\)"),
        (["--fraction", "2"], r"fraction must be in \(0, 1\]"),
        (["--preset", "./no/such/dir"], r"--preset ./no/such/dir: no such directory"),
        (["--epochs", "0"], r"--epochs and --batch-size must be at least 1"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, message, tmp_path):
    code, stdout, stderr = run_script_here("qqp.py", *args, "--out", tmp_path / "x",
                                           "--verbose", "0")
    assert code == 2
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ")
    assert re.search(message, lines[0]), lines[0]
