"""The package as users install it: a wheel built from the repository, installed into a fresh
folder (not editable), runs a tiny fraud and QQP run with its bundled files, outside the checkout."""

import os
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import BACKEND, ROOT


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """``pip install --no-deps --target`` of a freshly built wheel; returns the target folder."""
    wheels = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(wheels), str(ROOT)],
        capture_output=True, text=True, timeout=300, cwd=wheels,
    )
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("project-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for needed in ("project/assets/creditcard_sample.csv.gz", "project/assets/qqp_sample.csv.gz",
                   "project/assets/qqp_tiny_config.json", "project/assets/qqp_tokenizer/vocab.json",
                   "project/scripts/fraud.py", "project/experiments/fraud.py"):
        assert needed in names, needed
    target = tmp_path_factory.mktemp("site")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-compile", "-q", "--target",
         str(target), str(wheel)], capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr[-2000:]
    return target


def _run_installed(target, cwd, *args):
    env = dict(os.environ, PYTHONPATH=str(target), KERAS_BACKEND=BACKEND)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.backend_independent  # packaging: the same wheel whatever the backend
def test_the_installed_package_runs_both_experiments_outside_the_checkout(installed, tmp_path):
    where = _run_installed(installed, tmp_path, "-c", "import project; print(project.__file__)")
    assert where.stdout.strip().startswith(str(installed)), where.stdout + where.stderr
    fraud = _run_installed(installed, tmp_path, "-m", "project.scripts.fraud", "--epochs", "1",
                           "--no-baselines", "--out", "fraud", "--verbose", "0")
    assert fraud.returncode == 0, fraud.stderr[-2000:]
    assert (tmp_path / "fraud" / "report.md").is_file()
    assert "Data: synthetic" in (tmp_path / "fraud" / "report.md").read_text()
    qqp = _run_installed(installed, tmp_path, "-m", "project.scripts.qqp", "--epochs", "1",
                         "--fraction", "0.1", "--out", "qqp", "--verbose", "0")
    assert qqp.returncode == 0, qqp.stderr[-2000:]
    assert (tmp_path / "qqp" / "lora" / "model.keras").is_file()
