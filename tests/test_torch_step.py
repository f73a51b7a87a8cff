"""The torch backend's own training step and chain forward (project/training/torch_step.py,
project/models/torch_chain.py) against Keras's own step: the same weights, predictions and logs.
Under TensorFlow and JAX both are off: those sessions check only that they are."""

import contextlib

import keras
import numpy as np
import pytest
from packaging.version import Version

from project.backend import seed_everything
from project.models import convnet, lora
from project.models.roberta import build_classifier, detached_preprocessor
from project.models.torch_chain import chain_forward
from project.training import loop, torch_step
from project.training.optimizer import fine_tuning_optimizer
from tests.conftest import BACKEND

# Off torch, installed() gives the model back untouched: the comparisons would set Keras's step
# against itself (test_off_torch_nothing_is_installed checks that instead).
torch_only = pytest.mark.skipif(BACKEND != "torch", reason="our step is the torch backend's")

RNG = np.random.default_rng(3)
X = RNG.normal(size=(300, 29)).astype("float32")
Y = (X[:, :1] + 0.5 * RNG.normal(size=(300, 1)) > 0.8).astype("float32")


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def _numpy(tensor):
    return keras.ops.convert_to_numpy(tensor)


def _train(build, own_step: bool, monkeypatch, epochs=2, batch_size=64):
    """``build()``'s model trained by fit_epoch, with our step or with Keras's own."""
    with monkeypatch.context() as patch:
        if not own_step:
            patch.setattr(torch_step, "installed", lambda *args: contextlib.nullcontext())
        seed_everything(0)
        model = build()
        logs = [loop.fit_epoch(model, X, Y, batch_size=batch_size, epoch=e, seed=1)
                for e in range(epochs)]
    return model, logs


def _convnet(grad_accum=1):
    return lambda: convnet.compile_convnet(convnet.build_convnet(), 1e-3, grad_accum=grad_accum)


def _clipped_dense():
    model = keras.Sequential([keras.Input((29,)), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=fine_tuning_optimizer(5e-2, 10, clip_norm=0.05, weight_decay=0.1),
                  loss="binary_crossentropy", metrics=["accuracy"])
    return model


def _without_dropout(build):
    def built():
        model = build()
        for layer in model.layers:
            if isinstance(layer, keras.layers.Dropout):
                layer.rate = 0.0
        return model
    return built


# keras 3.10 gives its first dropout a channels-last copy where 3.15 gives a channels-first view:
# the same masks (element for element) need the layout of keras 3.15, which the forward keeps.
SAME_MASKS = Version(keras.version()) >= Version("3.15")


@pytest.mark.parametrize("build", [
    pytest.param(_convnet(), marks=pytest.mark.skipif(not SAME_MASKS, reason="keras < 3.15")),
    _without_dropout(_convnet()), _convnet(grad_accum=2) if SAME_MASKS
    else _without_dropout(_convnet(grad_accum=2)), _clipped_dense],
    ids=["convnet", "convnet-no-dropout", "convnet-accumulated", "dense-clipped"])
@torch_only
def test_our_step_trains_what_keras_step_trains(build, monkeypatch):
    # Dropout on (the masks must be the same), batch norm training, the last batch uneven.
    ours, our_logs = _train(build, True, monkeypatch)
    keras_, keras_logs = _train(build, False, monkeypatch)
    for a, b in zip(_weights(ours), _weights(keras_)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    np.testing.assert_allclose(ours.predict(X, verbose=0), keras_.predict(X, verbose=0),
                               atol=1e-5)
    assert our_logs[-1].keys() == keras_logs[-1].keys() == {"loss", "accuracy"}
    for ours_, theirs in zip(our_logs, keras_logs):
        assert ours_ == pytest.approx(theirs, abs=1e-5)
    assert "train_step" not in vars(ours)  # Keras's own step is back
    untrained = build()
    assert max(float(np.abs(a - b).max()) for a, b in zip(_weights(ours), _weights(untrained))
               if a.size > 1) > 1e-3  # it trained


def test_the_chain_forward_is_the_convnet_in_torch_ops():
    model = (convnet.build_convnet if SAME_MASKS else _without_dropout(convnet.build_convnet))()
    forward = chain_forward(model)
    if BACKEND != "torch":
        assert forward is None
        return
    import torch

    x = torch.from_numpy(X[:50])
    bn = model.get_layer("bn1")
    moving = [_numpy(v) for v in (bn.moving_mean, bn.moving_variance)]
    np.testing.assert_allclose(_numpy(forward(x)), _numpy(model(X[:50])), atol=1e-6)
    # Training: batch statistics and Keras's moving averages; "all processes" being this one,
    # the batch norm of several processes gives the same.
    for all_mean in (None, lambda t: t):
        for v, value in zip((bn.moving_mean, bn.moving_variance), moving):
            v.assign(value)
        seed_everything(0)
        got = _numpy(chain_forward(model, all_mean)(x, training=True))
        ours = [_numpy(v) for v in (bn.moving_mean, bn.moving_variance)]
        for v, value in zip((bn.moving_mean, bn.moving_variance), moving):
            v.assign(value)
        seed_everything(0)
        np.testing.assert_allclose(got, _numpy(model(X[:50], training=True)), atol=1e-5)
        for a, b in zip(ours, (bn.moving_mean, bn.moving_variance)):
            np.testing.assert_allclose(a, _numpy(b), atol=1e-6)


def test_the_chain_forward_declines_what_it_does_not_know():
    inputs = keras.Input((29,))
    branches = keras.layers.Add()([keras.layers.Dense(4)(inputs), keras.layers.Dense(4)(inputs)])
    dense = keras.Sequential([keras.Input((29,)), keras.layers.Dense(4)])
    dense.layers[0].enable_lora(2)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        mixed = convnet.build_convnet()
    finally:
        keras.config.set_dtype_policy(previous)
    for model in (keras.Model(inputs, branches), dense, mixed):
        assert chain_forward(model) is None


@torch_only
def test_our_step_on_a_lora_classifier_equals_keras_step():
    tokens = {"token_ids": RNG.integers(3, 100, (4, 16)).astype("int32"),
              "padding_mask": np.ones((4, 16), bool)}
    labels = np.array([0, 1, 1, 0])

    def trained(own_step):
        seed_everything(0)
        model = build_classifier(sequence_length=16, vocabulary=None, num_layers=1)
        lora.enable_lora(model, rank=2, alpha=4, dropout=0.1, seed=0)
        model.compile(optimizer=fine_tuning_optimizer(1e-2, 4),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
        scope = torch_step.installed(model) if own_step else contextlib.nullcontext()
        with detached_preprocessor(model), scope:
            logs = [model.train_on_batch(tokens, labels, return_dict=True) for _ in range(2)]
        return model, logs

    ours, our_logs = trained(True)
    theirs, their_logs = trained(False)
    for a, b in zip(_weights(ours), _weights(theirs)):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for ours_, theirs_ in zip(our_logs, their_logs):
        assert {k: float(v) for k, v in ours_.items()} == pytest.approx(
            {k: float(v) for k, v in theirs_.items()}, abs=1e-5)


@pytest.mark.skipif(BACKEND == "torch", reason="under torch the comparisons above run")
def test_off_torch_nothing_is_installed():
    model = convnet.build_convnet()
    with torch_step.installed(model, processes=2, steps=3) as inside:
        assert inside is model and "train_step" not in vars(model)


def test_each_process_draws_its_own_seeded_dropout_masks(monkeypatch):
    seeded = keras.Sequential([keras.Input((4,)), keras.layers.Dropout(0.5, seed=7)])
    seeded.compile(loss="mse")
    (state,) = [v for v in seeded.non_trainable_variables if "seed" in v.path]
    before = _numpy(state).tolist()
    if BACKEND == "torch":  # process 1 of 2 (no process group needed to look)
        import torch.distributed as dist

        monkeypatch.setattr(dist, "get_world_size", lambda: 2)
        monkeypatch.setattr(dist, "get_rank", lambda: 1)
    with torch_step.installed(seeded, processes=2):
        inside = _numpy(state).tolist()
    assert _numpy(state).tolist() == before  # given back
    assert inside == (before if BACKEND != "torch"
                      else [before[0] + torch_step.SEED_STREAM, before[1]])


@pytest.mark.parametrize("policy", ["float32", "mixed_bfloat16"])
def test_the_lora_projection_as_one_matmul_equals_the_einsum(policy):
    from project.models.lora_layer import LoraEinsumDense

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        base = keras.layers.EinsumDense("abc,cde->abde", output_shape=(None, 3, 4),
                                        bias_axes="de")
        base.build((None, 5, 8))
        layer = LoraEinsumDense.from_base(base, rank=2, alpha=4, dropout=0.3, seed=1)
    finally:
        keras.config.set_dtype_policy(previous)
    layer.lora_b.assign(RNG.normal(size=(2, 12)).astype("float32"))
    x = RNG.normal(size=(2, 5, 8)).astype("float32")
    assert layer.matrix_form  # q/k/v's equation and bias: the torch backend's 2-D matmul
    outputs = {}
    for matrix_form in (True, False):
        layer.matrix_form = matrix_form
        layer.seed_generator.state.assign([1, 0])  # the same dropout masks
        outputs[matrix_form] = [_numpy(layer(x, training=t)).astype("float32")
                                for t in (True, False)]
    tolerance = 1e-5 if policy == "float32" else 1e-2  # bfloat16: one rounding apart
    for a, b in zip(outputs[True], outputs[False]):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)
    assert np.abs(outputs[True][0] - outputs[True][1]).max() > 1e-3  # dropout was on
