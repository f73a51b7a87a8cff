"""The fraud experiment as package code: outputs, leakage, baselines, seeds, determinism, and the
one evaluator reused by scripts/evaluate.py."""

import json

import numpy as np
import pytest

from project.experiments import fraud
from project.experiments.config import FraudConfig
from project.experiments.rundir import RunDirectory
from project.reporting.fraud import write_fraud_outputs
from project.settings import PROTOCOLS
from tests.conftest import (
    BACKEND,
    OTHER_BACKEND,
    call_script,
    read_metrics,
    run_script,
    without_timings,
)


def _run(config, out, **kwargs):
    logs = []
    result = fraud.run(config, out, verbose=0, log=logs.append, **kwargs)
    write_fraud_outputs(result, out)
    return result, logs


@pytest.fixture(scope="module")
def config(tiny_creditcard):
    return FraudConfig(data=str(tiny_creditcard), protocols=PROTOCOLS, epochs=2, batch_size=128,
                       threshold="val-f1").validate()


@pytest.fixture(scope="module")
def fraud_run(tmp_path_factory, config):
    out = tmp_path_factory.mktemp("fraud") / "run"
    result, _ = _run(config, out)
    return out, result


@pytest.mark.oldest_versions
def test_outputs_and_recorded_configuration(fraud_run, tiny_creditcard):
    out, result = fraud_run
    metrics = read_metrics(out)
    cfg = metrics["config"]
    for key in ("epochs", "batch_size", "learning_rate", "seeds", "monitor", "threshold",
                "adasyn_k", "adasyn_beta", "precision", "stratify"):
        assert key in cfg, key
    assert cfg["backend"] == BACKEND and cfg["versions"]["keras"] and cfg["data_sha256"]
    assert cfg["data"] == str(tiny_creditcard) and cfg["command"]
    assert [r["protocol"] for r in metrics["runs"]] == list(PROTOCOLS)
    for run in metrics["runs"]:
        for split in ("val", "test"):
            ev = run[split]
            assert {"accuracy", "precision", "recall", "f1", "average_precision", "roc_auc",
                    "confusion_matrix", "threshold", "intervals"} <= set(ev)
            lo, hi = ev["intervals"]["f1"]
            assert lo <= ev["f1"] <= hi
        assert run["training"]["epochs_run"] == 2 and run["training"]["train_seconds"] > 0
        folder = out / run["directory"]
        for name in ("model.keras", "model.json", "history.csv", "history.png",
                     "confusion_test.png", "result.json"):
            assert (folder / name).is_file(), name
        assert not (folder / "checkpoint.safetensors").exists()
        assert (folder / "history.csv").read_text().splitlines()[1].startswith("1,")
    leaky = metrics["runs"][1]
    assert leaky["leaky"] is True and leaky["label"] == "adasyn-all (LEAKY)"
    assert leaky["clean_test"]["n"] == metrics["runs"][0]["test"]["n"] and leaky["leaked_rows"] > 0
    report = (out / "report.md").read_text()
    assert "adasyn-all (LEAKY)" in report and "fewer than the paper's 46" in report
    assert "best of 2: epoch" in report and "unscaled" in report
    assert "Data: synthetic" not in report  # only the bundled sample is labelled synthetic
    assert "not shown beside these numbers" in report  # not the real creditcard.csv
    assert (out / "pr_curves.png").stat().st_size > 1000
    assert not list(out.rglob(".*tmp*"))


def test_summary_and_paired_comparisons(fraud_run):
    _, result = fraud_run
    metrics = result.to_dict()
    stat = metrics["summary"]["adasyn-train"]["test"]["f1"]
    assert set(stat) == {"mean", "std", "median", "ci95", "n"} and stat["n"] == 1
    assert stat["mean"] == result.runs[2].test.f1
    assert [c["a"] for c in metrics["comparisons"]] == ["adasyn-all", "adasyn-train"]
    comp = metrics["comparisons"][1]
    diff = comp["difference"]["average_precision"]
    assert diff["difference"] == pytest.approx(result.runs[2].test.average_precision
                                               - result.runs[0].test.average_precision)
    assert diff["ci95"][0] <= diff["difference"] <= diff["ci95"][1]
    assert "adasyn-train − none" in comp["sentences"]["average_precision"]
    assert comp["sentences"]["f1"] in (fraud_run[0] / "report.md").read_text()


def test_one_seed_report_states_what_its_intervals_cover_and_the_multiplicity(fraud_run):
    out, result = fraud_run
    report = (out / "report.md").read_text()
    assert "beyond noise" not in report  # one seed: never claimed
    assert "not the training randomness" in report
    leaky, train = result.comparisons
    assert train["primary"] == "average_precision" and leaky["primary"] is None
    assert f"- **primary:** {train['sentences']['average_precision']}" in report
    family = [leaky["difference"][m]["p_value"] for m in leaky["headline"]] + [
        train["difference"][m]["p_value"] for m in train["headline"][1:]]
    from project.stats import holm

    assert [*leaky["holm_p"].values(), *list(train["holm_p"].values())[1:]] == holm(family)
    assert train["holm_p"]["average_precision"] is None
    assert "The other 7 verdicts are Holm-adjusted" in report
    assert "Holm-adjusted p = " in train["sentences"]["f1"]


def test_published_table_shows_each_protocols_own_threshold(fraud_run):
    import dataclasses

    from project.reporting.fraud import fraud_report
    from project.reporting.published import REAL_CREDITCARD

    _, result = fraud_run
    as_real = dataclasses.replace(result, data={**result.data, "synthetic": False,
                                                "rows": REAL_CREDITCARD["rows"],
                                                "frauds": REAL_CREDITCARD["frauds"]})
    report = fraud_report(as_real)
    assert "each protocol at its own threshold" in report
    thresholds = {r.protocol: r.threshold for r in result.runs}
    assert len(set(thresholds.values())) > 1  # val-f1 picks one per protocol
    for run in result.runs:
        rows = [line for line in report.splitlines() if line.startswith(f"| {run.label} | test |")]
        assert len(rows) == 1 and f"| {run.threshold:.4f} |" in rows[0], rows
    assert "--adasyn-variant report" in report  # these ran He et al.'s, not the report's


def test_adasyn_train_never_touches_validation_or_test(fraud_run):
    _, result = fraud_run
    none, leaky, train = result.runs
    assert train.synthetic_rows["val"] == train.synthetic_rows["test"] == 0
    assert train.counts["val"] == none.counts["val"] and train.counts["test"] == none.counts["test"]
    assert train.synthetic_rows["train"] > 0
    assert leaky.synthetic_rows["val"] > 0 and leaky.synthetic_rows["test"] > 0
    np.testing.assert_array_equal(train.test.y_true, none.test.y_true)


def test_baselines_are_fitted_on_the_training_rows_only(fraud_run, config):
    from project.data.creditcard import load_creditcard
    from project.models.baselines import fit_baseline
    from project.sampling.protocols import protocol_split

    _, result = fraud_run
    run = result.runs[2]
    assert set(run.baselines) == {"logistic-regression", "gradient-boosting"}
    split = protocol_split(load_creditcard(config.data), "adasyn-train", seed=0)
    mine = fit_baseline("logistic-regression", split.x_train, split.y_train, seed=0)
    np.testing.assert_allclose(run.baselines["logistic-regression"]["val"].scores,
                               mine.predict_proba(split.x_val)[:, 1], atol=1e-9)
    with_val = fit_baseline("logistic-regression", np.vstack([split.x_train, split.x_val]),
                            np.concatenate([split.y_train, split.y_val]), seed=0)
    assert not np.allclose(with_val.predict_proba(split.x_val)[:, 1],
                           run.baselines["logistic-regression"]["val"].scores)
    table = (fraud_run[0] / "report.md").read_text()
    assert "| adasyn-train | gradient boosting | test |" in table


def test_same_seed_gives_identical_numbers(fraud_run, config, tmp_path):
    _, result = fraud_run
    again, _ = _run(FraudConfig(**{**config.to_dict(), "protocols": ("none",)}), tmp_path / "r")
    assert without_timings(again.runs[0].to_dict()) == without_timings(result.runs[0].to_dict())


def test_resuming_a_finished_run_redoes_nothing(fraud_run, config):
    out, result = fraud_run
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("model.keras")}
    again, logs = _run(config, out, resume=RunDirectory.read(out, "fraud"))
    assert sum("finished earlier, kept" in line for line in logs) == 3
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("model.keras")}
    assert without_timings(again.to_dict()) == without_timings(result.to_dict())


def test_several_seeds_summary_shape(tiny_creditcard, tmp_path):
    config = FraudConfig(data=str(tiny_creditcard), protocols=("none", "adasyn-train"),
                         seeds=(0, 1), epochs=1, batch_size=128, baselines=False).validate()
    result, _ = _run(config, tmp_path / "seeds")
    summary = read_metrics(tmp_path / "seeds")["summary"]
    for protocol in ("none", "adasyn-train"):
        for split in ("val", "test"):
            for metric in ("accuracy", "f1", "average_precision", "roc_auc"):
                stat = summary[protocol][split][metric]
                assert set(stat) == {"mean", "std", "median", "ci95", "n"} and stat["n"] == 2
                values = [getattr(r.evaluations()[split], metric)
                          for r in result.runs_of(protocol)]
                assert stat["mean"] == pytest.approx(np.mean(values))
                assert stat["median"] == pytest.approx(np.median(values))
    assert (tmp_path / "seeds" / "seed-1" / "adasyn-train" / "model.keras").is_file()
    comp = result.comparisons[0]
    # Issue 16: with several seeds the interval counts the seeds and the test rows together
    # (it was the t-interval over seeds alone); that t-interval stays, labelled, as over_seeds.
    assert len(comp["per_seed"]) == 2 and comp["covers"] == "both"
    assert comp["difference"]["f1"]["over"] == "seeds and examples"
    diffs = [p["metrics"]["f1"]["difference"] for p in comp["per_seed"]]
    assert comp["difference"]["f1"]["difference"] == pytest.approx(np.mean(diffs))
    assert comp["over_seeds"]["f1"]["difference"] == pytest.approx(np.mean(diffs))
    report = (tmp_path / "seeds" / "report.md").read_text()
    assert "mean ± standard deviation" in report and "two-level bootstrap" in report
    assert "over seeds, on these test rows (95% t-interval" in report
    assert comp["sentences"]["average_precision"] in report


def test_resplit_and_the_reports_adasyn_variant(tiny_creditcard, tmp_path):
    """--resplit: one split per seed, recorded (config, model.json), compared over seeds alone;
    --adasyn-variant report: the report's ADASYN in adasyn-train, recorded; evaluate.py rebuilds
    a seed's own split and variant from model.json."""
    from project.data.creditcard import load_creditcard
    from project.sampling.protocols import protocol_split

    out = tmp_path / "resplit"
    config = FraudConfig(data=str(tiny_creditcard), protocols=("none", "adasyn-train"),
                         seeds=(0, 1), epochs=1, batch_size=128, baselines=False, resplit=True,
                         adasyn_variant="report").validate()
    result, _ = _run(config, out)
    recorded = read_metrics(out)["config"]
    assert recorded["resplit"] is True and recorded["adasyn_variant"] == "report"
    none0, train0, none1, train1 = result.runs
    assert (none0.split_seed, none1.split_seed) == (50, 51)
    record = json.loads((out / "seed-1" / "adasyn-train" / "model.json").read_text())
    assert (record["split_seed"], record["adasyn_variant"]) == (51, "report")
    df = load_creditcard(tiny_creditcard)
    for run, split_seed in ((none0, 50), (none1, 51)):
        np.testing.assert_array_equal(
            run.test.y_true, protocol_split(df, "none", split_seed=split_seed).y_test)
    assert not np.array_equal(none0.test.y_true, none1.test.y_true)
    report_variant = protocol_split(df, "adasyn-train", seed=1, variant="report", split_seed=51)
    he2008 = protocol_split(df, "adasyn-train", seed=1, split_seed=51)
    assert train1.counts["train"] == report_variant.counts()["train"]
    assert report_variant.counts()["train"] != he2008.counts()["train"]
    comp = result.comparisons[0]
    assert comp["difference"]["average_precision"]["over"] == "seeds, each on its own split"
    assert "each trained and scored on its own split" in (out / "report.md").read_text()
    code, _, err = call_script("evaluate.py", out / "seed-1" / "adasyn-train" / "model.keras",
                               "--task", "fraud", "--data", tiny_creditcard, "--json",
                               tmp_path / "e.json")
    assert code == 0, err
    got = json.loads((tmp_path / "e.json").read_text())
    assert got["n"] == train1.test.n
    assert got["average_precision"] == pytest.approx(train1.test.average_precision, abs=1e-6)


def test_evaluate_reproduces_the_test_metrics(fraud_run, tiny_creditcard, tmp_path):
    out, result = fraud_run
    code, _, err = call_script("evaluate.py", out / "adasyn-train" / "model.keras", "--task",
                               "fraud", "--data", tiny_creditcard, "--json", tmp_path / "e.json")
    assert code == 0, err
    got = json.loads((tmp_path / "e.json").read_text())
    saved = result.runs[2].test
    for key in ("accuracy", "precision", "recall", "f1", "average_precision", "threshold"):
        assert got[key] == pytest.approx(getattr(saved, key), abs=1e-6), key
    assert got["confusion_matrix"] == saved.confusion_matrix


@pytest.mark.oldest_versions
def test_model_saved_here_evaluates_the_same_under_the_other_backend(fraud_run, tiny_creditcard,
                                                                     tmp_path):
    out, result = fraud_run
    model = out / "none" / "model.keras"
    other = run_script("evaluate.py", model, "--task", "fraud", "--data", tiny_creditcard,
                       "--predictions", tmp_path / "theirs.npy", backend=OTHER_BACKEND)
    assert other.returncode == 0, other.stderr
    assert f"backend {OTHER_BACKEND}" in other.stdout
    np.testing.assert_allclose(np.load(tmp_path / "theirs.npy"), result.runs[0].test.scores,
                               atol=1e-5)


def test_evaluate_refuses_a_record_of_another_model(fraud_run, tmp_path):
    out, _ = fraud_run
    folder = tmp_path / "swapped"
    folder.mkdir()
    (folder / "model.keras").write_bytes((out / "none" / "model.keras").read_bytes())
    (folder / "model.json").write_text((out / "adasyn-train" / "model.json").read_text())
    code, _, err = call_script("evaluate.py", folder / "model.keras", "--task", "fraud")
    assert code == 2 and "written for another model file" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = call_script("evaluate.py", out / "none" / "model.keras", "--task", "qqp")
    assert code == 2 and "belongs to a fraud model" in err
    code, _, err = call_script("evaluate.py", folder / "missing.keras", "--task", "fraud")
    assert code == 2 and err.strip() == f"error: {folder / 'missing.keras'}: no such model file"
