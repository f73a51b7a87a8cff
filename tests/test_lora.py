"""Paper-faithful LoRA on keras-hub RoBERTa: counts, start equal to the base model, only A/B/head
train, merge = W0 + (alpha/r) A B, dropout only in training, adapters, bad settings."""

import math

import keras
import numpy as np
import pytest

from project.data.qqp import load_qqp, make_dataset, tokenize_pairs
from project.errors import InputError
from project.models.lora import (
    LoraEinsumDense,
    count_params,
    enable_lora,
    load_adapter,
    lora_config,
    merge_lora,
    save_adapter,
)
from project.models.roberta import ROBERTA_LARGE, build_classifier, detached_preprocessor

TINY = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)


def n_params(model):
    return sum(math.prod(v.shape) for v in model.weights)


def head_params(hidden, classes):
    return hidden * hidden + hidden + hidden * classes + classes


def snapshot(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}


def randomize_b(model, seed=0):
    """Give every B a non-zero value, so that the LoRA branch matters."""
    rng = np.random.default_rng(seed)
    for v in model.weights:
        if v.path.endswith("lora_b"):
            v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))


@pytest.fixture(scope="module")
def data():
    return load_qqp(seed=0)


@pytest.fixture(scope="module")
def features(data):
    model = build_classifier(sequence_length=40)
    return tokenize_pairs(model.preprocessor, data.train.iloc[:64])


def logits(model, features, training=False):
    return keras.ops.convert_to_numpy(model(features, training=training))


@pytest.mark.parametrize("rank", [1, 4])
def test_matrix_counts_by_formula(rank):
    model = build_classifier(**TINY, sequence_length=16)
    base = n_params(model)
    h, layers, classes = TINY["hidden_dim"], TINY["num_layers"], 2
    enable_lora(model, rank=rank, alpha=8, dropout=0.0)
    lora = layers * 3 * (h * rank + rank * h)
    assert count_params(model) == (lora + head_params(h, classes), base + lora)


def test_per_head_counts_by_keras_hub_formula():
    model = build_classifier(**TINY, sequence_length=16)
    base = n_params(model)
    h, heads, layers, r = TINY["hidden_dim"], TINY["num_heads"], TINY["num_layers"], 4
    with pytest.warns(UserWarning, match="no dropout"):
        enable_lora(model, rank=r, alpha=8, dropout=0.05, style="per-head")
    a, b, bias = h * heads * r, r * (h // heads), h  # one A per head; q/k/v biases stay trainable
    lora = layers * 3 * (a + b)
    assert count_params(model) == (lora + layers * 3 * bias + head_params(h, 2), base + lora)
    assert lora_config(model)["dropout"] == 0.0


def test_roberta_large_dimensions_train_peft_count():
    model = build_classifier(**ROBERTA_LARGE, vocabulary=None)
    assert n_params(model) == 355_358_722
    enable_lora(model, rank=8, alpha=16, dropout=0.05)
    trainable, total = count_params(model)
    assert trainable == 2_231_298  # PEFT: 1,179,648 LoRA + 1,051,650 head
    assert total == 355_358_722 + 1_179_648


def test_starts_equal_to_base_then_only_lora_and_head_train(data, features):
    model = build_classifier(sequence_length=40)
    base = logits(model, features)
    enable_lora(model, rank=4, alpha=8, dropout=0.1, seed=0)
    np.testing.assert_array_equal(logits(model, features), base)  # B = 0

    before = snapshot(model)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = data.train["is_duplicate"].to_numpy()[:64]
    with detached_preprocessor(model):
        dataset = make_dataset(features, labels, batch_size=16, shuffle=True)
        model.fit(dataset, epochs=1, verbose=0, shuffle=False)
    after = snapshot(model)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    expected = {p for p in before if p.endswith(("lora_a", "lora_b"))}
    expected |= {p for p in before if p.startswith(("pooled_dense/", "logits/"))}
    assert changed == expected
    assert model.preprocessor is not None  # put back after training


def test_merge_is_w0_plus_scaled_ab(features):
    model = build_classifier(sequence_length=40, backbone_dropout=0.0)
    base = logits(model, features)
    enable_lora(model, rank=4, alpha=8, dropout=0.2, seed=0)
    randomize_b(model)
    query = model.backbone.get_layer("transformer_layer_1")._self_attention_layer._query_dense
    assert isinstance(query, LoraEinsumDense)
    w0 = keras.ops.convert_to_numpy(query._kernel)
    a, b = keras.ops.convert_to_numpy(query.lora_a), keras.ops.convert_to_numpy(query.lora_b)
    with detached_preprocessor(model):
        lora_out = np.asarray(model.predict(features, verbose=0))
    assert np.abs(lora_out - base).max() > 1e-3  # the branch matters

    merge_lora(model)
    assert type(query) is keras.layers.EinsumDense and not hasattr(query, "lora_a")
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(query.kernel), w0 + (8 / 4) * (a @ b).reshape(w0.shape),
        atol=1e-6,
    )
    with detached_preprocessor(model):
        merged_out = np.asarray(model.predict(features, verbose=0))
    np.testing.assert_allclose(merged_out, lora_out, atol=1e-5)
    assert count_params(model) == (n_params(model), n_params(model))
    assert lora_config(model) is None


def test_lora_dropout_only_in_training(features):
    model = build_classifier(sequence_length=40, backbone_dropout=0.0, dropout=0.0)
    enable_lora(model, rank=4, alpha=8, dropout=0.5, seed=0)
    randomize_b(model)
    inference = logits(model, features)
    np.testing.assert_array_equal(logits(model, features), inference)
    assert np.abs(logits(model, features, training=True) - inference).max() > 1e-3

    no_dropout = build_classifier(sequence_length=40, backbone_dropout=0.0, dropout=0.0)
    enable_lora(no_dropout, rank=4, alpha=8, dropout=0.0, seed=0)
    randomize_b(no_dropout)
    np.testing.assert_allclose(
        logits(no_dropout, features, training=True), logits(no_dropout, features), atol=1e-6
    )


def test_per_head_trains_and_merges(features):
    model = build_classifier(sequence_length=40, backbone_dropout=0.0)
    enable_lora(model, rank=2, alpha=4, dropout=0.0, style="per-head")
    randomize_b(model)
    for v in model.weights:
        if v.path.endswith("lora_kernel_b"):
            v.assign(np.full(v.shape, 0.3, "float32"))
    lora_out = logits(model, features)
    merge_lora(model)
    np.testing.assert_allclose(logits(model, features), lora_out, atol=1e-5)
    assert count_params(model)[0] == n_params(model)


def test_adapter_round_trip_is_small(features, tmp_path):
    model = build_classifier(sequence_length=40)
    base_weights = model.get_weights()
    enable_lora(model, rank=4, alpha=8, dropout=0.05, seed=0)
    randomize_b(model)
    expected = logits(model, features)
    adapter = save_adapter(model, tmp_path / "adapter.npz")

    fresh = build_classifier(sequence_length=40)
    fresh.set_weights(base_weights)
    load_adapter(fresh, adapter)
    np.testing.assert_allclose(logits(fresh, features), expected, atol=1e-6)
    assert lora_config(fresh) == lora_config(model)

    merge_lora(model)
    full = tmp_path / "full.keras"
    model.save(full)
    assert adapter.stat().st_size < full.stat().st_size / 3


def test_adapter_errors(tmp_path):
    model = build_classifier(sequence_length=16)
    with pytest.raises(InputError, match="no LoRA enabled"):
        save_adapter(model, tmp_path / "a.npz")
    with pytest.raises(InputError, match=r"missing\.npz: no such adapter file"):
        load_adapter(model, tmp_path / "missing.npz")
    other = build_classifier(sequence_length=16, hidden_dim=16)
    enable_lora(other, rank=2)
    save_adapter(other, tmp_path / "other.npz")
    with pytest.raises(InputError, match=r"other\.npz: .* has shape \(16, 2\), the model expects"):
        load_adapter(model, tmp_path / "other.npz")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=0), r"rank must be a positive integer, got 0 \(--rank\)"),
        (dict(rank=2.5), r"rank must be a positive integer, got 2.5"),
        (dict(alpha=0), r"alpha must be positive, got 0 \(--alpha\)"),
        (dict(dropout=1.0), r"dropout must be in \[0, 1\), got 1.0 \(--lora-dropout\)"),
        (dict(dropout=-0.1), r"dropout must be in \[0, 1\), got -0.1"),
        (dict(targets=("query", "dense")), r"unknown LoRA target\(s\) 'dense'"),
        (dict(style="qlora"), r"unknown LoRA style 'qlora'.*--lora-style"),
    ],
)
def test_bad_settings(kwargs, message):
    model = build_classifier(sequence_length=16)
    with pytest.raises(InputError, match=message):
        enable_lora(model, **kwargs)
    assert count_params(model)[0] == n_params(model)  # nothing was changed


def test_enable_twice():
    model = build_classifier(sequence_length=16)
    enable_lora(model)
    with pytest.raises(InputError, match="already enabled"):
        enable_lora(model)


def test_every_layer_gets_its_own_a_and_dropout_masks():
    model = build_classifier(sequence_length=16)
    enable_lora(model, rank=4, alpha=8, dropout=0.5, seed=0)
    a_values = [keras.ops.convert_to_numpy(v) for v in model.weights if v.path.endswith("lora_a")]
    assert len(a_values) == 2 * 3
    assert all(not np.array_equal(a_values[0], other) for other in a_values[1:])
    again = build_classifier(sequence_length=16)
    enable_lora(again, rank=4, alpha=8, dropout=0.5, seed=0)
    first = [keras.ops.convert_to_numpy(v) for v in again.weights if v.path.endswith("lora_a")]
    np.testing.assert_array_equal(first[0], a_values[0])  # the seed makes it reproducible
    x = keras.ops.ones((1, 4, 32))
    query, key = (getattr(model.backbone.get_layer("transformer_layer_0")._self_attention_layer, n)
                  for n in ("_query_dense", "_key_dense"))
    for layer in (query, key):
        layer.lora_b.assign(np.ones(layer.lora_b.shape, "float32"))
        layer._kernel.assign(np.zeros(layer._kernel.shape, "float32"))
        layer.lora_a.assign(np.eye(32, 4, dtype="float32"))
    out_q = keras.ops.convert_to_numpy(query(x, training=True))
    out_k = keras.ops.convert_to_numpy(key(x, training=True))
    assert not np.array_equal(out_q, out_k)  # independent masks, as PEFT's separate Dropouts
