"""The QQP experiment as package code: both modes side by side, the split, intervals, the paired
comparison, saved models that reproduce their numbers, and scripts/evaluate.py on them."""

import json

import numpy as np
import pytest

from project.data.qqp_length import tokenize_pairs
from project.data.qqp_splits import load_qqp
from project.experiments import qqp
from project.experiments.config import QQPConfig
from project.models.roberta import tiny_config
from project.models.saving import load_model
from project.reporting.qqp import write_qqp_outputs
from project.settings import QQP_PROFILES, TINY_MODEL_RATES
from tests.conftest import BACKEND, call_script, read_metrics


@pytest.fixture(scope="module")
def config():
    return QQPConfig(epochs=2, fraction=0.3, test_fraction=0.2).resolve()


@pytest.fixture(scope="module")
def qqp_run(tmp_path_factory, config):
    out = tmp_path_factory.mktemp("qqp") / "run"
    result = qqp.run(config, out, verbose=0, log=lambda line: None)
    write_qqp_outputs(result, out)
    return out, result


def test_resolved_configuration_and_profiles():
    report = QQPConfig().resolve()
    assert report.targets == ("query", "key", "value") and report.val_fraction == 0.1
    assert report.clip_norm == 1.0 and report.batch_size == 16
    assert (report.lr_full, report.lr_lora) == tuple(TINY_MODEL_RATES.values())
    assert report.notes and "learns nothing" in report.notes[0]
    real = QQPConfig(preset="roberta_large_en").resolve()
    assert (real.lr_full, real.lr_lora) == (1e-6, 1e-4) and not real.notes
    paper = QQPConfig(profile="paper", preset="roberta_large_en").resolve()
    assert paper.targets == ("query", "value") and paper.batch_size == 4
    assert (paper.lr_lora, paper.epochs, paper.warmup_ratio, paper.weight_decay) == (
        3e-4, 20, 0.06, 0.1)
    assert paper.sequence_length == QQP_PROFILES["paper"]["sequence_length"] == 512
    assert QQPConfig(clip_norm=0).resolve().clip_norm == 0


@pytest.mark.oldest_versions
def test_outputs_side_by_side(qqp_run, config):
    out, result = qqp_run
    metrics = read_metrics(out)
    assert metrics["config"]["backend"] == BACKEND and metrics["data"]["synthetic"] is True
    assert metrics["config"]["clip_norm"] == 1.0 and metrics["config"]["notes"]
    assert [r["mode"] for r in metrics["runs"]] == ["full", "lora"]
    tiny = tiny_config()
    h, layers, r = tiny["hidden_dim"], tiny["num_layers"], 8
    head = h * h + h + 2 * h + 2
    full, lora = result.runs
    assert lora.trainable_params == layers * 3 * 2 * h * r + head
    assert full.trainable_params == full.total_params
    assert lora.total_params == full.total_params + layers * 3 * 2 * h * r
    for run in result.runs:
        assert run.training.epochs_run == 2 and run.test is not None
        assert set(run.val.per_class) == {"not duplicate", "duplicate"}
        assert run.model_bytes == (out / run.directory / "model.keras").stat().st_size
        lo, hi = run.val.intervals["accuracy"]
        assert lo <= run.val.accuracy <= hi
        for name in ("model.keras", "model.json", "history.csv", "result.json"):
            assert (out / run.directory / name).is_file(), name
    assert lora.adapter_bytes < lora.model_bytes / 3 and lora.merge_max_abs_diff < 1e-4
    report = (out / "report.md").read_text()
    assert "synthetic" in report and "Mechanics check, not a result" in report
    assert "| Full fine-tuning | LoRA |" in report and "LoRA − full (validation)" in report
    assert "Published numbers" in report and "Not comparable" in report
    assert "q/k/v is the report's choice" in report and "gradient clipping at global norm 1" in report
    assert "optimistic" not in report  # there is a test split
    for name in ("curves.png", "lengths.png", "metrics.json"):
        assert (out / name).is_file()
    assert not list(out.rglob(".*tmp*"))


def test_split_sizes_follow_the_fractions(qqp_run):
    _, result = qqp_run
    data = result.data
    n = data["train_rows"] + data["validation_rows"] + data["test_rows"]
    assert data["validation_rows"] == int(np.ceil(0.1 * n))
    assert data["test_rows"] == int(np.ceil(0.2 * n))


def test_the_test_split_never_picks_the_epoch(qqp_run):
    _, result = qqp_run
    for run in result.runs:
        history = run.training.history
        assert run.training.monitor == "val_accuracy"
        assert run.training.best_epoch == int(np.argmax(history["val_accuracy"])) + 1
        assert not any(k.startswith("test") for k in history)


def test_paired_comparison_on_the_same_pairs(qqp_run):
    _, result = qqp_run
    full, lora = result.runs
    comp = {c["split"]: c for c in result.comparisons}
    assert set(comp) == {"val", "test"}
    diff = comp["val"]["difference"]["accuracy"]
    assert diff["difference"] == pytest.approx(lora.val.accuracy - full.val.accuracy)
    assert diff["ci95"][0] <= diff["difference"] <= diff["ci95"][1]
    mcn = comp["val"]["per_seed"][0]["mcnemar_accuracy"]
    right_l = (lora.val.scores >= 0.5) == lora.val.y_true
    right_f = (full.val.scores >= 0.5) == full.val.y_true
    assert mcn["a_only"] == int(np.sum(right_l & ~right_f))


def test_the_length_rule_reads_the_training_questions_only(qqp_run):
    _, result = qqp_run
    lengths = result.lengths
    assert len(lengths.question1_tokens) == len(lengths.question2_tokens) == result.data[
        "train_rows"]  # not the validation or test questions
    assert lengths.rule_length == (lengths.question1_tokens.max() + lengths.question2_tokens.max()
                                   + 10)


def test_one_seed_report_states_what_its_intervals_cover(qqp_run):
    out, result = qqp_run
    report = (out / "report.md").read_text()
    comp = {c["split"]: c for c in result.comparisons}
    assert comp["test"]["primary"] == "accuracy" and comp["val"]["primary"] is None
    assert f"- **primary:** {comp['test']['sentences']['accuracy']}" in report
    assert "The other 5 verdicts are Holm-adjusted" in report
    assert "beyond noise" not in report
    assert "over these examples only; one seed" in comp["val"]["sentences"]["accuracy"]


def test_several_seeds_table_shows_medians_and_says_so(qqp_run):
    """With several seeds every cell of the side-by-side table is a median over the seeds,
    labelled so (seed 0's run alone was shown before, as if it were the run's)."""
    import dataclasses

    from project.experiments.compare import summarize_runs
    from project.reporting.qqp import qqp_report

    _, result = qqp_run
    again = [dataclasses.replace(r, seed=1, val=dataclasses.replace(
        r.val, accuracy=r.val.accuracy + 0.1, loss=r.val.loss + 1)) for r in result.runs]
    runs = result.runs + again
    several = dataclasses.replace(
        result, config=dataclasses.replace(result.config, seeds=(0, 1)), runs=runs,
        summary=summarize_runs(runs, "mode", ("loss", "accuracy")),
        comparisons=qqp.compare_modes(runs))
    report = qqp_report(several)
    assert "Cells: the median over the seeds" in report and "[95% CI]" not in report
    full = [r for r in runs if r.mode == "full"]
    row = next(line for line in report.splitlines()
               if line.startswith("| Validation accuracy, median of 2 seeds |"))
    assert row.split(" | ")[1] == f"{np.median([r.val.accuracy for r in full]):.4f}"
    assert "| Validation accuracy, over 2 seeds: mean ± std (median) |" in report
    assert "two-level bootstrap" in report


@pytest.mark.oldest_versions
def test_saved_models_reproduce_their_numbers(qqp_run, config):
    out, result = qqp_run
    data = load_qqp(fraction=config.fraction, validation_fraction=config.val_fraction,
                    test_fraction=config.test_fraction, seed=0)
    for run in result.runs:
        model = load_model(out / run.directory / "model.keras")
        features = tokenize_pairs(model.preprocessor, data.test)
        ev = qqp.evaluate(model, features, data.test["is_duplicate"].to_numpy(), n_boot=0)
        assert ev.accuracy == pytest.approx(run.test.accuracy, abs=1e-9)
        np.testing.assert_allclose(ev.scores, run.test.scores, atol=1e-5)


def test_evaluate_script_scores_the_held_out_pairs_by_default(qqp_run, tmp_path):
    out, result = qqp_run
    code, stdout, err = call_script("evaluate.py", out / "lora" / "model.keras", "--task", "qqp",
                                    "--json", tmp_path / "e.json")
    assert code == 0, err
    got = json.loads((tmp_path / "e.json").read_text())
    assert "test split of the run" in got["evaluated"]
    assert got["n"] == result.runs[1].test.n
    assert got["accuracy"] == pytest.approx(result.runs[1].test.accuracy, abs=1e-9)
    code, _, err = call_script("evaluate.py", out / "lora" / "model.keras", "--task", "qqp",
                               "--split", "val", "--json", tmp_path / "v.json")
    assert code == 0, err
    assert json.loads((tmp_path / "v.json").read_text())["n"] == result.runs[1].val.n


def test_unlabelled_pairs_get_predictions(qqp_run, tmp_path):
    out, _ = qqp_run
    pairs = tmp_path / "test.tsv"
    pairs.write_text("id\tquestion1\tquestion2\n0\tHow do I learn Python?\tHow can I learn Python?\n"
                     "1\tWhat is love?\tWhere is Paris?\n")
    code, stdout, err = call_script("evaluate.py", out / "full" / "model.keras", "--task", "qqp",
                                    "--data", pairs, "--predictions", tmp_path / "p.npy")
    assert code == 0, err
    assert "predictions only" in stdout
    scores = np.load(tmp_path / "p.npy")
    assert scores.shape == (2,) and ((scores >= 0) & (scores <= 1)).all()


def test_evaluate_a_base_plus_its_adapter(qqp_run, config, tmp_path):
    out, result = qqp_run
    base = qqp.new_model(config, "full", seed=0, sequence_length=result.data["length"][
        "sequence_length"])  # the same start as the LoRA run's frozen base
    base.save(tmp_path / "base.keras")
    adapter = out / "lora" / "adapter.safetensors"
    code, _, err = call_script("evaluate.py", tmp_path / "base.keras", "--task", "qqp",
                               "--adapter", adapter, "--split", "all",
                               "--predictions", tmp_path / "with_adapter.npy")
    assert code == 0, err
    code, _, err = call_script("evaluate.py", out / "lora" / "model.keras", "--task", "qqp",
                               "--split", "all", "--predictions", tmp_path / "merged.npy")
    assert code == 0, err
    np.testing.assert_allclose(np.load(tmp_path / "with_adapter.npy"),
                               np.load(tmp_path / "merged.npy"), atol=1e-5)
    code, _, err = call_script("evaluate.py", out / "full" / "model.keras", "--task", "qqp",
                               "--adapter", adapter)
    assert code == 2 and len(err.strip().splitlines()) == 1, err


def test_resplit_draws_each_seeds_pairs_and_evaluate_rebuilds_them(tmp_path):
    out = tmp_path / "resplit"
    config = QQPConfig(epochs=1, fraction=0.1, modes=("lora",), seeds=(0, 1), resplit=True,
                       batch_size=32).resolve()
    result = qqp.run(config, out, verbose=0, log=lambda line: None)
    write_qqp_outputs(result, out)
    first, second = result.runs
    assert (first.data_seed, second.data_seed) == (0, 1) and result.data["data_seeds"] == [0, 1]
    for run in result.runs:
        data = load_qqp(fraction=0.1, validation_fraction=config.val_fraction,
                        seed=run.data_seed)
        np.testing.assert_array_equal(run.val.y_true, data.validation["is_duplicate"])
    assert not np.array_equal(first.val.y_true, second.val.y_true)
    record = json.loads((out / "seed-1" / "lora" / "model.json").read_text())
    assert record["data"]["seed"] == 1
    code, _, err = call_script("evaluate.py", out / "seed-1" / "lora" / "model.keras", "--task",
                               "qqp", "--json", tmp_path / "e.json")
    assert code == 0, err
    assert json.loads((tmp_path / "e.json").read_text())["accuracy"] == pytest.approx(
        second.val.accuracy, abs=1e-9)
    report = (out / "report.md").read_text()
    assert "split anew for every seed (`--resplit`; data seeds 0, 1;" in report
