"""The command lines as a newcomer meets them: fast quiet --help, clean logs, options checked up
front (one line, exit 2, nothing written), and the small scripts' outputs."""

import gzip
import json
import subprocess
import sys

import pytest

from project.experiments.config import FraudConfig
from tests.conftest import BACKEND, ROOT, call_script, run_script

HELP_PROBE = (
    "import runpy, sys\n"
    "sys.argv = [{script!r}, '--help']\n"
    "try:\n"
    "    runpy.run_path({script!r}, run_name='__main__')\n"
    "except SystemExit:\n"
    "    pass\n"
    "heavy = [m for m in ('keras', 'tensorflow', 'torch', 'jax', 'sklearn') if m in sys.modules]\n"
    "print('HEAVY', heavy)\n"
)


@pytest.mark.parametrize("script", ["fraud.py", "qqp.py", "evaluate.py"])
@pytest.mark.backend_independent
def test_help_imports_nothing_heavy_and_prints_no_noise(script):
    path = str(ROOT / "scripts" / script)
    done = subprocess.run([sys.executable, "-c", HELP_PROBE.format(script=path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout and "HEAVY []" in done.stdout, done.stdout[-300:]
    assert done.stderr == ""


def test_a_run_logs_one_clean_line_per_epoch_and_writes_tensorboard(tmp_path, tiny_creditcard):
    out = tmp_path / "run"
    done = run_script("fraud.py", "--data", tiny_creditcard, "--epochs", "2", "--no-baselines",
                      "--tensorboard", "--out", out)
    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout and "\r" not in done.stdout  # no progress-bar escapes
    epoch_lines = [line for line in done.stdout.splitlines() if "] epoch " in line]
    assert [line.split("] epoch ")[1][:3] for line in epoch_lines] == ["1/2", "2/2"]
    assert "retracing" not in done.stdout + done.stderr
    assert done.stderr.strip() == "", done.stderr[-800:]
    assert list((out / "none" / "tensorboard").glob("events.out.tfevents.*"))
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["backend"] == BACKEND and config["command"][0] == "fraud.py"
    assert {"python", "keras", "numpy"} <= set(config["versions"]) and config["tensorboard"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--learning-rate", "nan"], "must be a finite number"),
        (["--learning-rate", "-1"], "--learning-rate must be > 0"),
        (["--threshold", "2"], "--threshold must be <= 1"),
        (["--threshold", "-1"], "--threshold must be >= 0"),
        (["--threshold", "nan"], "--threshold"),
        (["--threshold", "high"], "--threshold 'high'"),
        (["--patience", "-1"], "--patience must be >= 1"),
        (["--epochs", "0"], "--epochs must be >= 1"),
        (["--seeds", ""], "--seeds"),
        (["--seeds", "1,1"], "--seeds repeats 1"),
        (["--seeds", "1,x"], "comma-separated integers"),
        (["--seed", "1", "--seeds", "2,3"], "not both"),
        (["--monitor", "val_bogus"], "argument --monitor"),
        (["--adasyn-k", "0"], "--adasyn-k must be >= 1"),
        (["--adasyn-variant", "smote"], "--adasyn-variant: invalid choice: 'smote'"),
        (["--data", "missing.csv"], "missing.csv: no such file"),
    ],
)
def test_fraud_options_are_checked_before_any_work(tmp_path, args, message):
    code, _, err = call_script("fraud.py", *args, "--out", tmp_path / "out")
    assert code == 2, err
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out" / "metrics.json").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--lr", "nan"], "must be a finite number"),
        (["--lr", "0"], "--lr-full must be > 0"),
        (["--rank", "0"], "--rank must be >= 1"),
        (["--lora-dropout", "1.5"], "--lora-dropout must be < 1"),
        (["--fraction", "2"], "--fraction must be <= 1"),
        (["--targets", "query,bogus"], "--targets has unknown bogus"),
        (["--val-fraction", "0.6", "--test-fraction", "0.4"], "leave no training data"),
        (["--clip-norm", "-1"], "--clip-norm must be >= 0"),
        (["--preset", "./no/such/dir"], "no such directory"),
        (["--sequence-length", "1000"], "--sequence-length 1000 is above"),
    ],
)
def test_qqp_options_are_checked_before_any_training(tmp_path, args, message):
    code, _, err = call_script("qqp.py", *args, "--out", tmp_path / "out", "--verbose", "0")
    assert code == 2, err
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not list((tmp_path / "out").rglob("*.keras"))


def test_out_is_checked_before_the_data_is_read(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    code, _, err = call_script("fraud.py", "--data", "missing.csv", "--out", a_file)
    assert code == 2 and "exists and is not a folder" in err
    code, _, err = call_script("fraud.py", "--out", a_file / "run")  # under a file: uncreatable
    assert code == 2 and "cannot create" in err, err
    code, _, err = call_script("evaluate.py", "m.keras", "--task", "fraud", "--json", tmp_path)
    assert code == 2 and "is a folder" in err
    for script in ("bench.py", "device_check.py", "evaluate.py"):  # before any measuring
        args = {"bench.py": ("--suite", "adasyn", "--quick"), "device_check.py": ("--quick",),
                "evaluate.py": ("m.keras", "--task", "fraud")}[script]
        code, _, err = call_script(script, *args, "--json", a_file / "out.json")
        assert code == 2 and err.strip().endswith(f"({a_file} is a file, not a folder)"), err
    for script in ("fraud.py", "qqp.py"):  # refused for its data: no empty run folder left
        code, _, err = call_script(script, "--data", a_file, "--out", tmp_path / script / "run")
        assert code == 2 and str(a_file) in err and not (tmp_path / script).exists(), err


def test_adasyn_that_cannot_run_is_refused_before_training(tmp_path):
    from project.data.creditcard_sample import make_creditcard_sample

    few = tmp_path / "few.csv"
    make_creditcard_sample(n_rows=600, n_fraud=4, seed=0).to_csv(few, index=False)
    code, _, err = call_script("fraud.py", "--data", few, "--protocol", "all", "--out",
                               tmp_path / "out")
    assert code == 2 and str(few) in err and "--adasyn-k" in err, err
    assert not list((tmp_path / "out").rglob("model.keras"))  # not even the none protocol


@pytest.mark.backend_independent
def test_tensorboard_without_its_package_is_refused_up_front(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))
    from project.errors import InputError

    with pytest.raises(InputError, match=r"pip install 'project\[tensorboard\]'"):
        FraudConfig(tensorboard=True).validate()


def test_qqp_with_one_class_is_refused(tmp_path):
    data = tmp_path / "one.csv"
    rows = ["id,qid1,qid2,question1,question2,is_duplicate"]
    rows += [f"{i},{i},{i},What is {i}?,Why is {i}?,0" for i in range(60)]
    data.write_text("\n".join(rows) + "\n")
    code, _, err = call_script("qqp.py", "--data", data, "--out", tmp_path / "out")
    assert code == 2 and "only one class" in err


@pytest.mark.backend_independent
def test_small_scripts_write_under_runs_unless_told_otherwise(tmp_path):
    for script, args, written in (
        ("make_samples.py", ["--only", "fraud"], "runs/samples/creditcard_sample.csv.gz"),
        ("adasyn_demo.py", [], "runs/adasyn_2d.png"),
    ):
        done = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args],
                              cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert (tmp_path / written).is_file(), script
    with gzip.open(tmp_path / "runs/samples/creditcard_sample.csv.gz") as a, \
            gzip.open(ROOT / "assets" / "creditcard_sample.csv.gz") as b:
        assert a.read() == b.read()  # regenerated byte for byte


@pytest.mark.backend_independent
def test_console_scripts_point_at_real_functions():
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert {"project-fraud", "project-qqp", "project-evaluate"} <= set(scripts)
    for target in scripts.values():
        module, _, name = target.partition(":")
        assert callable(getattr(__import__(module, fromlist=[name]), name)), target


def test_resplit_cannot_resume_a_run_made_without_it(tmp_path):
    """A run's split is part of its data: --resplit with --resume of a run made without it is
    one line and exit 2, nothing trained; so is a run from before the setting existed."""
    import json

    from project.experiments.rundir import RunDirectory

    config = FraudConfig(epochs=1).validate().to_dict()
    RunDirectory.create(tmp_path / "run", "fraud", config, BACKEND)
    older = {k: v for k, v in config.items() if k not in ("resplit", "adasyn_variant")}
    RunDirectory.create(tmp_path / "older", "fraud", older, BACKEND)
    assert "resplit" not in json.loads((tmp_path / "older" / "config.json").read_text())["config"]
    for run in ("run", "older"):
        code, _, err = call_script("fraud.py", "--resume", tmp_path / run, "--resplit")
        assert code == 2, err
        assert err.strip() == (f"error: --resume {tmp_path / run}: --resplit True differs from "
                               "the run's False; drop it to continue the run as it was")
        assert not list((tmp_path / run).rglob("model.keras"))
    code, _, err = call_script("fraud.py", "--resume", tmp_path / "older", "--adasyn-variant",
                               "report")
    assert code == 2 and "--adasyn-variant report differs from the run's he2008" in err, err
