"""A run killed by SIGKILL at a random moment, then resumed, ends with the metrics of an
uninterrupted run (same seed, same backend); and --resume refuses what it cannot continue."""

import os
import random
import signal
import subprocess
import sys
import time

import pytest

from tests.conftest import BACKEND, ROOT, call_script, read_metrics, without_timings


def _args(experiment, data):
    if experiment == "fraud":
        return ["--data", str(data), "--protocol", "all", "--epochs", "3", "--batch-size", "128",
                "--no-baselines"]
    return ["--mode", "both", "--epochs", "2", "--fraction", "0.15"]


@pytest.mark.parametrize("experiment", ["fraud", "qqp"])
def test_killed_at_a_random_moment_then_resumed_equals_uninterrupted(experiment, tmp_path,
                                                                    tiny_creditcard):
    args = _args(experiment, tiny_creditcard)
    start = time.perf_counter()
    code, _, err = call_script(f"{experiment}.py", *args, "--out", tmp_path / "whole",
                               "--verbose", "0")
    assert code == 0, err
    duration = time.perf_counter() - start

    killed = tmp_path / "killed"
    env = dict(os.environ, KERAS_BACKEND=BACKEND)
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / f"{experiment}.py"), *args,
                             "--out", str(killed), "--verbose", "0"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while not (killed / "config.json").exists() and proc.poll() is None:
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.05)
        delay = random.uniform(0, duration)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=60)

    # resumed here, as the uninterrupted run was: a new run that only reads the folder
    code, out, err = call_script(f"{experiment}.py", "--resume", killed, "--verbose", "2")
    assert code == 0, f"killed after {delay:.2f} s: {err}"
    assert without_timings(read_metrics(killed)) == without_timings(read_metrics(tmp_path /
                                                                                 "whole")), (
        f"killed {delay:.2f} s after start; resume said:\n{out[-2000:]}")
    assert not list(killed.rglob("checkpoint.safetensors"))
    assert not list(killed.rglob(".*.tmp-*"))


def test_resume_refuses_what_it_cannot_continue(tmp_path, tiny_creditcard):
    run = tmp_path / "run"
    code, _, err = call_script("fraud.py", "--data", tiny_creditcard, "--epochs", "1",
                               "--no-baselines", "--out", run, "--verbose", "0")
    assert code == 0, err
    before = (run / "metrics.json").read_bytes()
    (tmp_path / "empty").mkdir()
    cases = [
        (["--resume", tmp_path / "empty"], "not a run folder"),
        (["--resume", tmp_path / "nowhere"], "no such folder"),
        (["--resume", run, "--epochs", "5"], "--epochs 5 differs from the run's 1"),
        (["--resume", run, "--protocol", "adasyn-train"], "--protocol adasyn-train differs"),
    ]
    for args, message in cases:
        code, _, err = call_script("fraud.py", *args)
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    code, _, err = call_script("qqp.py", "--resume", run)
    assert code == 2 and "that is a fraud run, not a qqp run" in err
    code, _, err = call_script("fraud.py", "--data", tiny_creditcard, "--out", run)
    assert code == 2 and "already holds a run" in err
    assert (run / "metrics.json").read_bytes() == before


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_checkpoint_is_refused_in_one_line(tmp_path, tiny_creditcard, damage):
    from project.experiments.config import FraudConfig
    from project.experiments.rundir import RunDirectory

    config = FraudConfig(data=str(tiny_creditcard), epochs=2, baselines=False).validate()
    run = RunDirectory.create(tmp_path / "run", "fraud", config.to_dict(), BACKEND,
                              data_files=[config.data])
    checkpoint = run.part("none", 0) / "checkpoint.safetensors"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"\x00" * 64 if damage == "garbage" else b"{\"x\": 1")
    code, _, err = call_script("fraud.py", "--resume", tmp_path / "run")
    assert code == 2 and "damaged or not a checkpoint" in err
    assert len(err.strip().splitlines()) == 1
