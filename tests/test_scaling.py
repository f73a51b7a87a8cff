"""How a run uses precision and devices (project/training/{precision,devices,distribution}.py), in
this process: dtype
policies and float32 saving, float16 loss scaling and resume, gradient accumulation against the
larger batch, the process-group settings and every refusal. Several devices and several
processes: tests/test_scaling_processes.py."""

import json

import keras
import numpy as np
import pytest

from project.backend import seed_everything
from project.errors import InputError
from project.experiments import fraud, qqp
from project.experiments.config import FraudConfig, QQPConfig
from project.experiments.rundir import RunDirectory
from project.models import convnet, lora
from project.models.roberta import build_classifier
from project.models.saving import load_model, portable, save_model
from project.training import devices, distribution
from project.training.loop import fit_epoch, train
from project.training.optimizer import fine_tuning_optimizer
from project.training.precision import dtype_policy
from tests.conftest import BACKEND, OTHER_BACKEND, call_script, run_python

RNG = np.random.default_rng(0)
X = RNG.normal(size=(96, 29)).astype("float32")
Y = (X[:, :1] + 0.5 * RNG.normal(size=(96, 1)) > 0.8).astype("float32")


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def _max_diff(a, b):
    return max(float(np.abs(np.asarray(u, np.float64) - np.asarray(v, np.float64)).max())
               for u, v in zip(a, b))


def _no_dropout(model):
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    return model


# --- batches of several processes --------------------------------------------------------------


def test_each_process_feeds_its_slice_of_every_global_batch():
    order = np.random.default_rng(1).permutation(23)
    parts = [distribution.shard_rows(order, 8, devices=4, processes=2, process_id=i) for i in (0, 1)]
    assert [step for _, step in parts] == [4, 4]
    (a, _), (b, _) = parts
    # Global batches 8, 8, then 7 rows cut to 4 (a multiple of the 4 devices): 3 rows skipped.
    assert len(a) == len(b) == 10
    for start in (0, 4):
        batch = order[2 * start:2 * start + 8]
        assert sorted(np.r_[a[start:start + 4], b[start:start + 4]]) == sorted(batch)
    assert sorted(np.r_[a[8:], b[8:]]) == sorted(order[16:20])
    alone, step = distribution.shard_rows(order, 8, devices=2)
    assert step == 8 and alone.tolist() == order[:22].tolist()  # 7 rows cut to 6


# --- the process group and the refusals ---------------------------------------------------------


def test_process_group_from_keras_variables_or_tf_config():
    env = {devices.ENV_ADDRESSES: "10.0.0.1:1234,10.0.0.2:2345", devices.ENV_PROCESS_ID: "1"}
    group = devices.process_group(env)
    assert (group.count, group.index, group.coordinator) == (2, 1, "10.0.0.1:1234")
    assert not distribution.Scaling("jax", processes=2, process_id=group.index).chief
    tf_config = {"cluster": {"worker": ["a:1", "b:2", "c:3"]}, "task": {"type": "worker",
                                                                         "index": 2}}
    group = devices.process_group({"TF_CONFIG": json.dumps(tf_config)})
    assert (group.count, group.index, group.source) == (3, 2, "TF_CONFIG")
    one = {devices.ENV_ADDRESSES: "h:1", devices.ENV_PROCESSES: "1", devices.ENV_PROCESS_ID: "0"}
    assert devices.process_group(one) is None


@pytest.mark.parametrize("env, words", [
    ({devices.ENV_PROCESSES: "2", devices.ENV_PROCESS_ID: "0"}, "set all three"),
    ({devices.ENV_ADDRESSES: "h:1", devices.ENV_PROCESSES: "2", devices.ENV_PROCESS_ID: "2"},
     "must be in 0..1"),
    ({devices.ENV_ADDRESSES: "h:1", devices.ENV_PROCESSES: "two", devices.ENV_PROCESS_ID: "0"},
     "not a whole number"),
    ({devices.ENV_ADDRESSES: "h", devices.ENV_PROCESSES: "2", devices.ENV_PROCESS_ID: "0"},
     "not host:port"),
    ({devices.ENV_ADDRESSES: "a:1,b:2,c:3", devices.ENV_PROCESSES: "2",
      devices.ENV_PROCESS_ID: "0"}, "3 addresses for 2"),
    ({"TF_CONFIG": "{not json"}, "TF_CONFIG"),
])
def test_a_wrong_process_setting_is_one_line(env, words):
    with pytest.raises(InputError, match=words):
        devices.process_group(env)


TORCHRUN = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1", "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": "9"}


def test_process_group_from_torchrun_variables():
    group = devices.process_group(TORCHRUN)
    assert (group.count, group.index, group.coordinator, group.local_index) == (
        2, 1, "127.0.0.1:9", 1)
    assert group.source == devices.TORCHRUN
    assert devices.process_group({**TORCHRUN, "WORLD_SIZE": "1", "RANK": "0"}) is None
    with pytest.raises(InputError, match="set in part .MASTER_PORT missing"):
        devices.process_group({k: v for k, v in TORCHRUN.items() if k != "MASTER_PORT"})
    with pytest.raises(InputError, match="RANK=2: must be in 0..1"):
        devices.process_group({**TORCHRUN, "RANK": "2"})


def test_torch_data_parallelism_is_one_process_per_device(monkeypatch):
    # Not started by torchrun: one process on one device; with several GPUs, how to launch.
    plan = distribution.setup(FraudConfig(distribute="data"), backend="torch")
    assert (plan.devices, plan.processes, plan.chief) == (1, 1, True)
    monkeypatch.setattr(distribution, "_local_gpus", lambda: 2)
    with pytest.raises(InputError, match="one process per GPU .2 here.: launch with torchrun "
                                         "--nproc-per-node 2 SCRIPT --backend torch"):
        distribution.setup(FraudConfig(distribute="data"), backend="torch")
    # Started by torchrun: the global batch must divide by the processes, before joining.
    for name, value in TORCHRUN.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(distribution, "join_torch", lambda group: pytest.fail("joined"))
    with pytest.raises(InputError, match="batch_size 65 does not divide by the 2 devices"):
        distribution.setup(FraudConfig(distribute="data", batch_size=65), backend="torch")
    with pytest.raises(InputError, match="torchrun's processes .* need backend torch"):
        distribution.setup(FraudConfig(distribute="data"), backend="jax")


def test_setup_refuses_what_the_run_cannot_do(monkeypatch):
    with pytest.raises(InputError, match="grad_accum 2 with distribute data needs backend jax "
                                         "or torch: Keras's TensorFlow optimizer cannot accumulate"):
        distribution.setup(FraudConfig(distribute="data", grad_accum=2), backend="tensorflow")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    with pytest.raises(InputError, match="TF_CONFIG describes TensorFlow workers: start .* "
                                         "with torchrun"):
        distribution.setup(FraudConfig(distribute="data"), backend="torch")
    monkeypatch.setenv(devices.ENV_ADDRESSES, "127.0.0.1:9")
    monkeypatch.setenv(devices.ENV_PROCESSES, "2")
    monkeypatch.setenv(devices.ENV_PROCESS_ID, "1")
    with pytest.raises(InputError, match="but distribute is none"):
        distribution.setup(FraudConfig())
    with pytest.raises(InputError, match="need backend jax.*keras-team/keras#20585"):
        distribution.setup(FraudConfig(distribute="data"), backend="tensorflow")


def test_float16_only_where_the_device_has_it():
    supported, device = devices.float16_support(BACKEND)
    config = FraudConfig(precision="mixed_float16")
    if supported:
        assert distribution.setup(config).precision == "mixed_float16"
    else:
        with pytest.raises(InputError, match=f"computes on {device}: use precision "
                                             "mixed_bfloat16"):
            distribution.setup(config)


def test_a_coordinator_that_does_not_answer_is_one_line_in_bounded_time():
    import socket
    import time

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(InputError, match=f"no answer from the coordinator 127.0.0.1:{port} "
                                         "within 0.5 s"):
        devices.wait_for(f"127.0.0.1:{port}", 0.5)
    assert time.monotonic() - start < 5


def test_bad_scaling_options_exit_2_with_one_line():
    code, _, err = call_script("fraud.py", "--precision", "mixed_half")
    assert code == 2 and "--precision" in err and len(err.strip().splitlines()) == 1

def test_a_batch_the_torch_processes_cannot_share_exits_2_with_one_line(monkeypatch):
    for name, value in TORCHRUN.items():
        monkeypatch.setenv(name, value)
    code, _, err = call_script("fraud.py", "--distribute", "data", "--batch-size", "65",
                               "--epochs", "1")
    expected = ("--batch-size 65 does not divide by the 2 devices of --distribute data"
                if BACKEND == "torch" else "torchrun's processes (torchrun (RANK, WORLD_SIZE)) "
                "need --backend torch")
    assert code == 2 and err.startswith(f"error: {expected}")
    assert len(err.strip().splitlines()) == 1


def test_one_device_plan():
    plan = distribution.setup(FraudConfig(grad_accum=3, batch_size=24))
    assert plan == distribution.Scaling(BACKEND, grad_accum=3)
    assert plan.summary() == {"precision": "float32", "distribute": "none", "grad_accum": 3,
                              "devices": 1, "processes": 1}
    assert "accumulated over 3" in plan.describe()


# --- precision ---------------------------------------------------------------------------------


def test_mixed_precision_builds_half_compute_float32_variables_and_output():
    plan = distribution.Scaling(BACKEND, precision="mixed_bfloat16")
    with plan.model_scope():
        model = plan.prepare(convnet.build_convnet())
    assert keras.config.dtype_policy().name == "float32"  # put back
    assert model.get_layer("conv1").compute_dtype == "bfloat16"
    assert {w.dtype for w in model.weights} == {"float32"}
    assert model.get_layer("fraud_probability").compute_dtype == "float32"
    assert keras.ops.convert_to_numpy(model(X[:3])).dtype == np.float32


def _predict_elsewhere(jobs, backend, folder):
    """Predictions of saved models, in one fresh interpreter under ``backend``, loaded as the
    scripts load them (uncompiled: a model compiled under JAX records ``jit_compile=True``, which
    torch would honour with a slow ``torch.compile``).

    ``jobs``: ``[(model path, inputs)]``; returns one prediction array per job."""
    code = (
        "import sys, numpy as np\n"
        "from project.models.saving import load_model\n"
        "for model, inputs, outputs in zip(*[iter(sys.argv[1:])] * 3):\n"
        "    m = load_model(model)\n"
        "    x = np.load(inputs, allow_pickle=False)\n"
        "    x = {k: x[k] for k in x.files} if len(x.files) > 1 else x[x.files[0]]\n"
        "    np.save(outputs, m.predict(x, verbose=0))\n"
    )
    args = []
    for i, (path, x) in enumerate(jobs):
        np.savez(folder / f"in{i}.npz", **(x if isinstance(x, dict) else {"x": x}))
        args += [str(path), str(folder / f"in{i}.npz"), str(folder / f"out{i}.npy")]
    done = run_python(code, *args, backend=backend)
    assert done.returncode == 0, done.stderr[-2000:]
    return [np.load(folder / f"out{i}.npy") for i in range(len(jobs))]


def test_saved_mixed_precision_models_evaluate_in_float32_on_another_backend(tmp_path):
    plan = distribution.Scaling(BACKEND, precision="mixed_bfloat16")
    seed_everything(0)
    with plan.model_scope():
        conv = convnet.compile_convnet(plan.prepare(convnet.build_convnet()))
        roberta = build_classifier(sequence_length=16, vocabulary=None, num_layers=1)
        lora.enable_lora(roberta, rank=4, alpha=8, dropout=0.0, seed=0)
        roberta = plan.prepare(roberta)
    conv.fit(X, Y, batch_size=32, epochs=1, verbose=0)
    tokens = {"token_ids": np.random.default_rng(0).integers(3, 100, (5, 16)).astype("int32"),
              "padding_mask": np.ones((5, 16), bool)}
    assert roberta.get_layer("logits").compute_dtype == "float32"
    assert {w.dtype for w in roberta.weights if "lora" in w.path} == {"float32"}
    lora.merge_lora(roberta)
    jobs, expected = [], []
    for model, x, name in ((conv, X, "convnet"), (roberta, tokens, "roberta")):
        half = model.predict(x, verbose=0)
        path = save_model(model, tmp_path / f"{name}.keras")
        assert model.layers[1].compute_dtype == "bfloat16"  # policies put back after saving
        with portable(model):
            in_float32 = model.predict(x, verbose=0)
        assert 0 < np.abs(half - in_float32).max() < 0.1  # bfloat16 rounding, not float32
        loaded = load_model(path)
        assert {layer.dtype_policy.name for layer in loaded.layers} == {"float32"}
        np.testing.assert_allclose(loaded.predict(x, verbose=0), in_float32, atol=1e-5)
        jobs.append((path, x))
        expected.append(in_float32)
    for got, want in zip(_predict_elsewhere(jobs, OTHER_BACKEND, tmp_path), expected):
        np.testing.assert_allclose(got, want, atol=1e-4)


def _float16_run(tmp_path, epochs):
    seed_everything(0)
    with dtype_policy("mixed_float16"):
        model = convnet.compile_convnet(_no_dropout(convnet.build_convnet()), 1e-3,
                                        grad_accum=2)
    result = train(model, X, Y, validate=lambda m: {"val_loss": float(np.mean(
                       m.predict(X[:40], verbose=0)))}, epochs=epochs, batch_size=16, seed=0,
                   monitor="val_loss", checkpoint=tmp_path / "checkpoint.safetensors",
                   data_id="x", verbose=0)
    return model, result


def test_float16_scales_the_loss_and_resumes_exactly(tmp_path):
    full, full_result = _float16_run(tmp_path / "full", 2)
    assert isinstance(full.optimizer, keras.optimizers.LossScaleOptimizer)
    assert np.isfinite(full_result.history["loss"]).all()
    _float16_run(tmp_path / "part", 1)  # stopped after one epoch: its checkpoint remains
    resumed, resumed_result = _float16_run(tmp_path / "part", 2)
    assert resumed_result.resumed_from == 1
    assert resumed_result.history["loss"] == full_result.history["loss"]
    assert _max_diff(_weights(full), _weights(resumed)) == 0
    assert _max_diff([v.value for v in full.optimizer.variables],
                     [v.value for v in resumed.optimizer.variables]) == 0


# --- gradient accumulation ---------------------------------------------------------------------


def _dense(seed=0):
    seed_everything(seed)
    return keras.Sequential([keras.Input((29,)), keras.layers.Dense(16, activation="relu"),
                             keras.layers.Dense(1, activation="sigmoid")])


def _fit(model, batch_size, epochs=2):
    for epoch in range(epochs):
        fit_epoch(model, X, Y, batch_size=batch_size, epoch=epoch, seed=5)
    return _weights(model)


def test_accumulating_k_batches_equals_one_batch_k_times_larger():
    # 96 rows: 4 updates of 24 per epoch, either as one batch or as 3 accumulated batches of 8.
    small = _fit(convnet.compile_convnet(_dense(), 1e-2, grad_accum=3), 8)
    large = _fit(convnet.compile_convnet(_dense(), 1e-2), 24)
    assert _max_diff(small, large) < 1e-5
    unaccumulated = _fit(convnet.compile_convnet(_dense(), 1e-2), 8)
    assert _max_diff(small, unaccumulated) > 1e-3  # the comparison can fail


def test_accumulation_follows_the_same_schedule_clipping_and_weight_decay():
    def model(grad_accum):
        m = _dense()
        m.compile(optimizer=fine_tuning_optimizer(1e-2, total_steps=8, warmup_ratio=0.25,
                                                  weight_decay=0.1, clip_norm=0.5,
                                                  grad_accum=grad_accum),
                  loss="binary_crossentropy")
        return m
    assert _max_diff(_fit(model(3), 8), _fit(model(1), 24)) < 1e-5


def test_convnet_accumulation_differs_from_the_larger_batch_only_by_batch_norm():
    def model(grad_accum, frozen_norm):
        seed_everything(0)
        m = _no_dropout(convnet.build_convnet())
        for layer in m.layers:
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.trainable = not frozen_norm  # frozen: normalises with its moving stats
        return convnet.compile_convnet(m, 1e-3, grad_accum=grad_accum)
    frozen = _max_diff(_fit(model(3, True), 8), _fit(model(1, True), 24))
    live = _max_diff(_fit(model(3, False), 8), _fit(model(1, False), 24))
    assert frozen < 1e-5 and live > 1e-4


# --- the experiments ---------------------------------------------------------------------------


def test_fraud_run_records_precision_devices_and_accumulation(tmp_path, tiny_creditcard):
    config = FraudConfig(data=str(tiny_creditcard), epochs=1, batch_size=64, baselines=False,
                         precision="mixed_bfloat16", grad_accum=2).validate()
    logs = []
    result = fraud.run(config, tmp_path / "run", verbose=0, log=logs.append)
    recorded = result.to_dict()["config"]
    assert (recorded["precision"], recorded["distribute"], recorded["grad_accum"],
            recorded["devices"], recorded["processes"]) == ("mixed_bfloat16", "none", 2, 1, 1)
    assert logs[0] == ("precision mixed_bfloat16, one device, gradients accumulated over 2 "
                       "steps")
    saved = load_model(tmp_path / "run" / "none" / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}
    assert keras.config.dtype_policy().name == "float32"


def test_qqp_run_in_bfloat16_with_accumulation(tmp_path):
    config = QQPConfig(epochs=1, fraction=0.05, modes=("lora",), batch_size=8, grad_accum=2,
                       precision="mixed_bfloat16").resolve()
    result = qqp.run(config, tmp_path / "run", verbose=0, log=lambda line: None)
    assert np.isfinite(result.runs[0].training.history["loss"]).all()
    assert result.to_dict()["config"]["devices"] == 1
    saved = load_model(tmp_path / "run" / "lora" / "model.keras")
    assert {layer.dtype_policy.name for layer in saved.layers} == {"float32"}


def test_a_process_other_than_0_writes_only_in_a_private_folder(tmp_path):
    """In a run of several processes the run folder is process 0's: another process's view of
    the run is a private folder, removed with it; the run folder is only read."""
    shared = RunDirectory.create(tmp_path / "run", "fraud", {"seeds": [0]}, BACKEND)
    (tmp_path / "run" / "none").mkdir()
    (tmp_path / "run" / "none" / "result.json").write_text("process 0's")
    private = shared.for_process(chief=False)
    assert private.source == tmp_path / "run" and private.path != shared.path
    folder = private.part("none", seed=0)
    assert (folder / "result.json").read_text() == "process 0's"  # process 0's, read
    (folder / "history.csv").write_text("another process's")
    assert not (tmp_path / "run" / "none" / "history.csv").exists()
    assert shared.for_process(chief=True) is shared
    where = private.path
    del private, folder
    import gc

    gc.collect()
    assert not where.exists()
    assert RunDirectory.check_writable(tmp_path / "run", chief=False) == tmp_path / "run"
