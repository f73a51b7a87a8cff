"""The learning-rate schedule and gradient clipping as Hugging Face computes them, on one device
and on two (virtual CPU) devices: warm-up ceil(ratio x updates), the updates that really happen
(dropped partial batches, devices, accumulation), the rate of every update against
transformers' get_linear_schedule_with_warmup, and clipping of the whole batch's gradient on
every engine (tests/schedule_child.py, in a fresh interpreter where devices must be set up
before the backend starts)."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from project.training.distribution import Scaling
from project.training.optimizer import LinearWarmupDecay, fine_tuning_optimizer
from tests.conftest import BACKEND, ROOT
from tests.schedule_child import BATCH, EPOCHS, ROWS


def hugging_face_rates(peak: float, updates: int, warmup_ratio: float) -> list[float]:
    """The learning rate of each of ``updates`` optimizer steps under transformers' linear
    schedule, with the Trainer's warm-up ceil(ratio x steps)."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=peak)
    schedule = get_linear_schedule_with_warmup(optimizer, math.ceil(updates * warmup_ratio),
                                               updates)
    rates = []
    for _ in range(updates + 1):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    assert rates[-1] == 0  # after the last update the schedule is at 0
    return rates[:-1]


def _weights(found, key):
    return [np.asarray(w) for w in found[key]]


def _max_diff(a, b):
    return max(float(np.abs(u - v).max()) for u, v in zip(a, b))


def test_warm_up_is_rounded_up_as_hugging_face_does():
    # 6% of 2,275 updates is 136.5: Hugging Face's Trainer warms up for 137 (round() gave 136).
    optimizer = fine_tuning_optimizer(1e-4, total_steps=2275, warmup_ratio=0.06)
    settings = optimizer.get_config()["learning_rate"]["config"]
    assert settings["warmup_steps"] == 137
    schedule = LinearWarmupDecay(**settings)
    steps = (0, 1, 136, 137, 138, 2274)
    expected = hugging_face_rates(1e-4, 2275, 0.06)
    np.testing.assert_allclose([float(schedule(s)) for s in steps], [expected[s] for s in steps],
                               rtol=1e-6, atol=1e-12)


def test_updates_count_the_steps_that_happen():
    assert Scaling("tensorflow").updates(ROWS, BATCH, EPOCHS) == 15
    assert Scaling("jax", grad_accum=2).updates(ROWS, BATCH, EPOCHS) == 7  # 15 steps, 7 updates
    jax_two = Scaling("jax", distribute="data", devices=2, grad_accum=2)
    assert jax_two.steps_per_epoch(ROWS, BATCH) == 4  # the 1-row batch is cut on 2 devices
    assert jax_two.updates(ROWS, BATCH, EPOCHS) == 6  # the old count, 15 // 2 = 7, never ended
    assert Scaling("jax", distribute="data", devices=2).steps_per_epoch(258, BATCH) == 5


def _child(devices: int) -> dict:
    env = dict(os.environ, KERAS_BACKEND=BACKEND, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1",
               TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=os.environ["XLA_FLAGS"]
               + f" --xla_force_host_platform_device_count={devices}")
    done = subprocess.run([sys.executable, "-m", "tests.schedule_child", str(devices)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def found():
    if BACKEND == "torch":  # no Keras data parallelism: one device, in this process
        from tests.schedule_child import main

        return main(1)
    return _child(2)


def test_every_update_follows_hugging_faces_schedule(found):
    """Warm-up, accumulation over 2 steps (5 steps per epoch: the last update of an epoch takes
    a step of the next) and, where the backend has them, two devices with accumulation (JAX:
    the 1-row last batch is cut, so 4 steps per epoch and 6 updates, the last at the end of
    the schedule)."""
    runs = [("one_device", found["one_device"], 7)]
    if BACKEND == "jax":
        runs.append(("several_devices", found["several_devices"], 6))
    elif BACKEND == "tensorflow":  # two devices, no accumulation: Keras refuses it there
        assert "grad_accum 2 with distribute data needs backend jax" in found[
            "accumulation_refused"]
        runs.append(("several_devices", found["several_devices"], 15))
    for name, run, updates in runs:
        assert run["updates"] == updates, name
        expected = hugging_face_rates(0.05, updates, 0.25)
        assert len(run["rates"]) == updates, name  # every counted update happened
        np.testing.assert_allclose(run["rates"], expected, rtol=1e-6, atol=1e-9, err_msg=name)


@pytest.mark.skipif(BACKEND == "torch", reason="torch's devices are torchrun processes: "
                    "tests/test_torch_step.py clips their averaged gradient")
def test_clipping_is_of_the_whole_batch_on_every_engine(found):
    assert found["devices"] == 2
    weight = found["one_weight"]
    assert weight["one"] == pytest.approx(2.0)  # -4 clipped to -1
    if BACKEND == "tensorflow":  # Keras alone clips each replica's half: -1 twice
        assert weight["several"] == pytest.approx(3.0)
    assert weight["several_summed"] == pytest.approx(2.0)
    one, several = _weights(found, "clipped_one"), _weights(found, "clipped_several")
    assert _max_diff(one, several) < 1e-5  # the fine-tuning optimizer, clip cutting
    assert _max_diff(several, _weights(found, "unclipped_several")) > 1e-3  # it did cut
