"""Data parallelism on several (virtual CPU) devices and in several processes, each in fresh
interpreters: devices must be set up before JAX or TensorFlow starts, and processes meet over
127.0.0.1. Every child has a time limit and is ended if the test fails."""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

from project.training import distribution
from tests.conftest import BACKEND, ROOT, call_script, read_metrics, run_script, without_timings

TIMEOUT = 600


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra) -> dict:
    return dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
                TF_CPP_MIN_LOG_LEVEL="3", **extra)


@pytest.mark.skipif(BACKEND == "torch", reason="torch runs one process per device: "
                    "test_two_torch_processes_train_one_model_and_only_process_0_writes")
def test_two_virtual_devices_train_the_one_device_model(tmp_path, tiny_creditcard):
    env = _env(XLA_FLAGS=os.environ["XLA_FLAGS"] + " --xla_force_host_platform_device_count=2")
    done = subprocess.run([sys.executable, "-m", "tests.scaling_child", "2", str(tmp_path),
                           str(tiny_creditcard)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["backend"] == BACKEND and found["devices"] == 2
    # Dropout off, same global batches (the last one uneven): the same model as on one device.
    assert found["weights_max_diff"] < 1e-5
    assert found["predictions_max_diff"] < 1e-5
    assert found["resume_max_diff"] == 0  # a checkpoint resumes on two devices exactly
    assert found["indivisible"] == ("batch_size 65 does not divide by the 2 devices of "
                                    "distribute data: it is the global batch, give a "
                                    "multiple of 2")
    # The whole experiment in bfloat16 on two devices: recorded, and saved for any backend.
    assert found["run_devices"] == 2 and 0 <= found["run_val_ap"] <= 1
    assert found["saved_policies"] == ["float32"] and not found["saved_synchronized"]
    assert found["qqp_devices"] == 2 and np.isfinite(found["qqp_loss"])


def _start(args, env, log: Path):
    with open(log, "w") as f:
        return subprocess.Popen([sys.executable, str(ROOT / "scripts" / "fraud.py"), *args],
                                cwd=ROOT, env=env, stdout=f, stderr=subprocess.STDOUT)


def _together(args_by_process, port, logs) -> tuple[list[int], list[int]]:
    """Run one fraud.py per process (process i with args_by_process[i]); their exit codes and
    process ids."""
    started = []
    try:
        for i, args in enumerate(args_by_process):
            env = _env(KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                       KERAS_DISTRIBUTION_NUM_PROCESSES=str(len(args_by_process)),
                       KERAS_DISTRIBUTION_PROCESS_ID=str(i), PROJECT_DISTRIBUTION_TIMEOUT="240")
            started.append(_start(args, env, logs[i]))
        return [p.wait(timeout=TIMEOUT) for p in started], [p.pid for p in started]
    finally:
        for p in started:
            if p.poll() is None:
                p.kill()
                p.wait()


def _model_weights(path):
    import keras

    return [keras.ops.convert_to_numpy(w) for w in keras.saving.load_model(path).weights]


@pytest.mark.skipif(BACKEND != "jax", reason="several processes need JAX; the TensorFlow and "
                    "torch refusals are tested below")
def test_two_processes_train_one_model_and_only_process_0_writes(tmp_path, tiny_creditcard):
    common = ["--data", tiny_creditcard, "--epochs", "2", "--batch-size", "64", "--no-baselines",
              "--seed", "0", "--verbose", "2"]
    common = [str(a) for a in common]
    out, elsewhere, single = tmp_path / "run", tmp_path / "not-written", tmp_path / "single"
    logs = [tmp_path / "process-0.log", tmp_path / "process-1.log"]
    codes, pids = _together([[*common, "--distribute", "data", "--out", str(out)],
                             [*common, "--distribute", "data", "--out", str(elsewhere)]],
                            _free_port(), logs)
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    code, _, err = call_script("fraud.py", *common, "--out", single)  # here, on one device
    assert code == 0, err

    # One model, trained by both processes on halves of every batch: one process's numbers.
    together, alone = read_metrics(out), read_metrics(single)
    assert together["config"]["devices"] == 2 and together["config"]["processes"] == 2
    for key in ("loss", "val_loss", "val_average_precision"):
        np.testing.assert_allclose(together["runs"][0]["history"][key],
                                   alone["runs"][0]["history"][key], atol=1e-5)
    for a, b in zip(_model_weights(out / "none" / "model.keras"),
                    _model_weights(single / "none" / "model.keras")):
        np.testing.assert_allclose(a, b, atol=1e-5)
    last = [line for line in logs[1].read_text().splitlines() if "epoch 2/2" in line]
    assert last and f"loss {together['runs'][0]['history']['loss'][-1]:.4f}" in last[-1]
    # Process 1 wrote nothing: not its --out, nothing left in its private folder.
    assert not elsewhere.exists()
    assert not list(Path(tempfile.gettempdir()).glob(f"project-process-{pids[1]}-*"))
    assert not list(out.rglob(".*tmp*"))

    # Resuming the finished run: process 1 reads process 0's finished part and trains nothing.
    before = without_timings(together)
    codes, _ = _together([["--resume", str(out), "--distribute", "data"],
                          ["--resume", str(out), "--distribute", "data"]], _free_port(), logs)
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    assert "finished earlier, kept" in logs[1].read_text()
    assert without_timings(read_metrics(out))["runs"] == before["runs"]


def _run_group(command, env, timeout=TIMEOUT) -> subprocess.CompletedProcess:
    """Run ``command`` in its own process group (torchrun and its workers), all ended if it
    does not finish in time."""
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    return subprocess.CompletedProcess(command, process.returncode, out, err)


@pytest.mark.skipif(BACKEND != "torch", reason="torch.distributed is the torch backend's; JAX's "
                    "processes are tested above")
def test_two_torch_processes_train_one_model_and_only_process_0_writes(tmp_path, tiny_creditcard):
    from tests.torch_child import fit

    private = tmp_path / "tmp"  # the processes' temporary folders, private folders included
    private.mkdir()
    done = _run_group([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                       "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
                       "-m", "tests.torch_child", str(tmp_path), str(tiny_creditcard)],
                      _env(TMPDIR=str(private), PROJECT_DISTRIBUTION_TIMEOUT="240"))
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1  # process 0's
    found = json.loads(reports[0])
    assert (found["processes"], found["devices"], found["chief"]) == (2, 2, True)
    assert found["resume_max_diff"] == 0 and found["run_code"] == found["resume_code"] == 0

    # Dropout off: two processes on halves of every global batch (batch norm synchronised,
    # gradients averaged) train the one-process model, and log its losses.
    alone, losses = fit(distribution.Scaling("torch"), 2, tmp_path / "alone.safetensors")
    together = np.load(tmp_path / "weights.npz")
    for i, weight in enumerate(alone):
        np.testing.assert_allclose(together[f"arr_{i}"], weight, atol=1e-5)
    np.testing.assert_allclose(found["losses"], losses, atol=1e-5)

    # scripts/fraud.py: recorded as two processes; process 0 wrote the run, process 1 nothing
    # (no private folder left); the resumed run kept the finished part in both processes.
    metrics = read_metrics(tmp_path / "run")
    assert (metrics["config"]["devices"], metrics["config"]["processes"]) == (2, 2)
    assert not list(private.glob("project-process-*"))
    assert not list((tmp_path / "run").rglob(".*tmp*"))
    assert done.stdout.count("finished earlier, kept") == 2


def test_an_unreachable_coordinator_or_a_backend_without_processes_is_one_line(tmp_path):
    port = _free_port()
    env = {"KERAS_DISTRIBUTION_JOB_ADDRESSES": f"127.0.0.1:{port}",
           "KERAS_DISTRIBUTION_NUM_PROCESSES": "2", "KERAS_DISTRIBUTION_PROCESS_ID": "1",
           "PROJECT_DISTRIBUTION_TIMEOUT": "2"}
    if BACKEND == "torch":  # torchrun's variables, as a torchrun would set them
        env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
               "MASTER_PORT": str(port), "PROJECT_DISTRIBUTION_TIMEOUT": "2"}
    start = time.monotonic()
    done = run_script("fraud.py", "--distribute", "data", "--epochs", "1", "--out",
                      tmp_path / "run", env=env, timeout=120)
    assert time.monotonic() - start < 90  # the 2 s wait, and the start of Python and Keras
    expected = {"jax": f"no answer from the coordinator 127.0.0.1:{port} within 2 s",
                "tensorflow": "several processes (KERAS_DISTRIBUTION_*) need --backend jax",
                "torch": f"no answer from the coordinator 127.0.0.1:{port} within 2 s "
                         "(MASTER_ADDR:MASTER_PORT"}[BACKEND]
    assert done.returncode == 2 and done.stderr.startswith(f"error: {expected}")
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()
