"""Paper-faithful LoRA on keras-hub RoBERTa: counts, start equal to the base model, only A/B/head
train, merge = W0 + (alpha/r) A B, merge/unmerge, an unmerged LoRA model through `.keras`,
mixed precision, safetensors adapters (names, base hash, task switching, atomic refusals)."""

import math
from pathlib import Path

import keras
import numpy as np
import pytest

from project.data.qqp_length import tokenize_pairs
from project.data.qqp_splits import load_qqp
from project.errors import InputError
from project.keras_internals import stored_kernel
from project.models.adapters import load_adapter, save_adapter
from project.models.backbone import projections
from project.models.lora import (
    LoraEinsumDense,
    count_params,
    enable_lora,
    lora_config,
    lora_layers,
    merge_lora,
    unmerge_lora,
)
from project.models.roberta import ROBERTA_LARGE, build_classifier, detached_preprocessor
from project.models.saving import load_model
from tests.conftest import OTHER_BACKEND, run_python

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64)
QUIET = dict(backbone_dropout=0.0, dropout=0.0)  # deterministic training for comparisons


def n_params(model):
    return sum(math.prod(v.shape) for v in model.weights)


def head_params(hidden, classes):
    return hidden * hidden + hidden + hidden * classes + classes


def snapshot(model):
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}


def randomize_b(model, seed=0):
    """Give every B a non-zero value, so that the LoRA branch matters."""
    rng = np.random.default_rng(seed)
    for layer in lora_layers(model).values():
        layer.lora_b.assign(rng.normal(0, 0.5, layer.lora_b.shape).astype("float32"))


def randomize_head(model, seed=0):
    rng = np.random.default_rng(seed)
    for name in ("pooled_dense", "logits"):
        for v in model.get_layer(name).weights:
            v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))


def same_base(model):
    """A fresh classifier with ``model``'s base weights (no LoRA)."""
    fresh = build_classifier(sequence_length=40)
    fresh.set_weights(model.get_weights())
    return fresh


@pytest.fixture(scope="module")
def data():
    return load_qqp(seed=0)


@pytest.fixture(scope="module")
def features(data):
    model = build_classifier(sequence_length=40)
    return tokenize_pairs(model.preprocessor, data.train.iloc[:64])


def logits(model, features, training=False):
    return keras.ops.convert_to_numpy(model(features, training=training))


def train_one_epoch(model, data, features, batch_size=16):
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), metrics=["accuracy"],
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    labels = data.train["is_duplicate"].to_numpy()[:64]
    with detached_preprocessor(model):
        history = model.fit(features, labels, batch_size=batch_size, epochs=1, verbose=0,
                            shuffle=False)
    return history.history["loss"][-1]


@pytest.mark.oldest_versions
@pytest.mark.parametrize("rank", [1, 4])
def test_matrix_counts_by_formula(rank):
    model = build_classifier(**TINY, sequence_length=16)
    base = n_params(model)
    h, layers, classes = TINY["hidden_dim"], TINY["num_layers"], 2
    enable_lora(model, rank=rank, alpha=8, dropout=0.0)
    lora = layers * 3 * (h * rank + rank * h)
    assert count_params(model) == (lora + head_params(h, classes), base + lora)
    assert len(lora_layers(model)) == layers * 3


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


# RoBERTa-large's counts, head initialisation and int8 bytes are the architecture's and Keras's
# initialisers', the same under every backend (the tiny models check each backend's behaviour):
# the 355M random weights are built once, under make test's first backend.
large_once = pytest.mark.backend_independent


@pytest.fixture(scope="module")
def large():
    """RoBERTa-large dimensions, random weights, no tokenizer: built once (~10 s, ~3 GB)."""
    return build_classifier(**ROBERTA_LARGE, vocabulary=None)


@large_once
def test_roberta_large_head_is_initialised_like_hugging_face(large):
    for name in ("pooled_dense", "logits"):
        kernel = keras.ops.convert_to_numpy(large.get_layer(name).kernel)
        bias = keras.ops.convert_to_numpy(large.get_layer(name).bias)
        assert abs(kernel.std() - 0.02) < 0.02 * (0.05 if name == "pooled_dense" else 0.1)
        assert abs(kernel.mean()) < 3e-3 and not bias.any()


@large_once
@pytest.mark.parametrize("targets, trainable", [
    (("query", "value"), 1_838_082),          # the paper's: 786,432 LoRA + 1,051,650 head
    (("query", "key", "value"), 2_231_298),   # the report's (PEFT's count): 1,179,648 + head
])
def test_roberta_large_dimensions_train_peft_counts(large, targets, trainable):
    assert n_params(large) == 355_358_722
    enable_lora(large, rank=8, alpha=16, dropout=0.05, targets=targets)
    try:
        assert count_params(large) == (trainable, 355_358_722 + trainable - 1_051_650)
    finally:
        merge_lora(large)  # B is zero: the base is unchanged for the next case
    assert count_params(large) == (355_358_722, 355_358_722)


@large_once
def test_roberta_large_on_an_int8_base_trains_the_same_count(large):
    """The last user of ``large``: it quantises it. LoRA on q,k,v still trains 2,231,298
    parameters; the weights take about a quarter of float32's bytes."""
    from project.models.quantize import quantize_base, weight_bytes

    enable_lora(large, rank=8, alpha=16, dropout=0.05)
    float_bytes = weight_bytes(large)
    quantize_base(large)
    assert count_params(large)[0] == 2_231_298
    assert weight_bytes(large) < 0.3 * float_bytes


@pytest.mark.oldest_versions
def test_starts_equal_to_base_then_only_lora_and_head_train(data, features):
    model = build_classifier(sequence_length=40)
    base = logits(model, features)
    enable_lora(model, rank=4, alpha=8, dropout=0.1, seed=0)
    np.testing.assert_array_equal(logits(model, features), base)  # B = 0

    before = snapshot(model)
    train_one_epoch(model, data, features)
    after = snapshot(model)
    changed = {p for p in before if not np.array_equal(before[p], after[p])}
    expected = {p for p in before if p.endswith(("lora_a", "lora_b"))}
    expected |= {p for p in before if p.startswith(("pooled_dense/", "logits/"))}
    assert changed == expected
    assert model.preprocessor is not None  # put back after training


@pytest.mark.oldest_versions
def test_merge_is_w0_plus_scaled_ab(features):
    model = build_classifier(sequence_length=40, backbone_dropout=0.0)
    randomize_head(model)  # a head of scale 0.5, not the initial one: the branch shows in the logits
    base = same_base(model)
    enable_lora(model, rank=4, alpha=8, dropout=0.2, seed=0)
    randomize_b(model)
    query = lora_layers(model)["layer_1.query"]
    assert isinstance(query, LoraEinsumDense) and lora_config(model)["rank"] == 4
    w0 = keras.ops.convert_to_numpy(query.kernel) - keras.ops.convert_to_numpy(query.delta())
    a, b = keras.ops.convert_to_numpy(query.lora_a), keras.ops.convert_to_numpy(query.lora_b)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(query.delta()),
                               (8 / 4) * (a @ b).reshape(w0.shape), atol=1e-6)
    lora_out = logits(model, features)
    gap = np.abs(lora_out - logits(base, features)).max()
    assert gap > 1e-3  # the branch matters

    merge_lora(model)
    assert lora_layers(model) == {} and lora_config(model) is None
    np.testing.assert_allclose(logits(model, features), lora_out, atol=1e-5)
    assert count_params(model) == (n_params(model), n_params(model))
    assert type(model.backbone) is type(build_classifier(sequence_length=8).backbone)


@pytest.mark.oldest_versions
def test_merge_without_unload_then_unmerge_at_every_step(data, features):
    model = build_classifier(sequence_length=40, **QUIET)
    enable_lora(model, rank=4, alpha=8, dropout=0.0, seed=0)
    randomize_b(model)
    counts = count_params(model)
    for _ in range(2):
        lora_out = logits(model, features)
        kernels = {k: keras.ops.convert_to_numpy(v.kernel) for k, v in lora_layers(model).items()}
        merge_lora(model, unload=False)
        assert count_params(model) == counts and len(lora_layers(model)) == 6  # A, B kept
        np.testing.assert_allclose(logits(model, features), lora_out, atol=1e-5)
        unmerge_lora(model)
        np.testing.assert_allclose(logits(model, features), lora_out, atol=1e-5)
        for key, layer in lora_layers(model).items():
            np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.kernel), kernels[key],
                                       atol=1e-6)
        train_one_epoch(model, data, features)  # and training goes on between the checks


def test_lora_dropout_only_in_training(features):
    model = build_classifier(sequence_length=40, **QUIET)
    enable_lora(model, rank=4, alpha=8, dropout=0.5, seed=0)
    randomize_b(model)
    inference = logits(model, features)
    np.testing.assert_array_equal(logits(model, features), inference)
    assert np.abs(logits(model, features, training=True) - inference).max() > 1e-3

    no_dropout = build_classifier(sequence_length=40, **QUIET)
    enable_lora(no_dropout, rank=4, alpha=8, dropout=0.0, seed=0)
    randomize_b(no_dropout)
    np.testing.assert_allclose(
        logits(no_dropout, features, training=True), logits(no_dropout, features), atol=1e-6
    )


def test_per_head_trains_and_merges(features):
    model = build_classifier(sequence_length=40, backbone_dropout=0.0)
    enable_lora(model, rank=2, alpha=4, dropout=0.0, style="per-head")
    for v in model.weights:
        if v.path.endswith("lora_kernel_b"):
            v.assign(np.full(v.shape, 0.3, "float32"))
    lora_out = logits(model, features)
    with pytest.raises(InputError, match="only be merged with unload=True"):
        merge_lora(model, unload=False)
    merge_lora(model)
    np.testing.assert_allclose(logits(model, features), lora_out, atol=1e-5)
    assert count_params(model)[0] == n_params(model)


@pytest.mark.oldest_versions
def test_per_head_branch_is_scaled_by_alpha_over_rank():
    """keras-hub's per-head LoRA takes its scale from ``lora_alpha`` (Keras 3.10 and later; an
    older Keras ignores the attribute and scales by 1)."""
    model = build_classifier(sequence_length=16, backbone_dropout=0.0)
    enable_lora(model, rank=2, alpha=8, dropout=0.0, style="per-head")
    dense = projections(model.backbone, ("query",))[0][3]  # layer 0's query projection
    dense.lora_kernel_b.assign(np.full(dense.lora_kernel_b.shape, 0.3, "float32"))
    x = np.random.default_rng(0).normal(size=(1, 3, 32)).astype("float32")
    a, b = (keras.ops.convert_to_numpy(v) for v in (dense.lora_kernel_a, dense.lora_kernel_b))
    w = keras.ops.convert_to_numpy(stored_kernel(dense)) + (8 / 2) * np.einsum("dhr,rk->dhk", a, b)
    expected = np.einsum("btd,dhk->bthk", x, w) + keras.ops.convert_to_numpy(dense.bias)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(dense(x)), expected, atol=1e-4)


@pytest.mark.oldest_versions
def test_unmerged_lora_model_through_keras_file(data, features, tmp_path):
    """Saved with LoRA on, reloaded in safe mode: LoRA still on, same counts and outputs, and
    training continues exactly as it would have in the original model."""
    model = build_classifier(sequence_length=40, **QUIET)
    enable_lora(model, rank=4, alpha=8, dropout=0.0, targets=("query", "value"), seed=0)
    randomize_b(model)
    model.save(tmp_path / "lora.keras")
    loaded = load_model(tmp_path / "lora.keras")
    assert lora_config(loaded) == lora_config(model)
    assert count_params(loaded) == count_params(model)
    np.testing.assert_allclose(logits(loaded, features), logits(model, features), atol=1e-5)
    losses = [train_one_epoch(m, data, features) for m in (model, loaded)]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5)
    np.testing.assert_allclose(logits(loaded, features), logits(model, features), atol=1e-4)


@pytest.mark.oldest_versions
def test_unmerged_lora_model_loads_in_the_other_backend(features, tmp_path):
    other = OTHER_BACKEND
    model = build_classifier(sequence_length=40, **QUIET)
    enable_lora(model, rank=2, alpha=4, dropout=0.1, seed=3)
    randomize_b(model)
    model.save(tmp_path / "lora.keras")
    np.savez(tmp_path / "features.npz", **features)
    code = (
        "import sys, numpy as np, keras\n"
        "import project.models.roberta\n"
        "from project.models.saving import load_model\n"
        "from project.models.lora import count_params, lora_config\n"
        "model = load_model(sys.argv[1] + '/lora.keras')\n"
        "f = dict(np.load(sys.argv[1] + '/features.npz'))\n"
        "np.save(sys.argv[1] + '/out.npy', keras.ops.convert_to_numpy(model(f)))\n"
        "print(lora_config(model)['rank'], count_params(model)[0])\n"
    )
    result = run_python(code, tmp_path, backend=other)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["2", str(count_params(model)[0])]
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), logits(model, features), atol=1e-5)


def test_mixed_precision_keeps_lora_in_float32(features, tmp_path):
    keras.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = build_classifier(sequence_length=40, **QUIET)
        enable_lora(model, rank=4, alpha=8, dropout=0.0, seed=0)
        randomize_b(model)
        query = lora_layers(model)["layer_0.query"]
        assert (query.lora_a.dtype, query.lora_b.dtype) == ("float32", "float32")
        x = keras.ops.ones((1, 3, 32), dtype="bfloat16")
        assert keras.backend.standardize_dtype(query(x).dtype) == "bfloat16"
        mixed = logits(model, features)
        model.save(tmp_path / "mixed.keras")
    finally:
        keras.config.set_dtype_policy("float32")
    full = build_classifier(sequence_length=40, **QUIET)  # float32, the same LoRA layout
    enable_lora(full, rank=4, alpha=8, dropout=0.0, seed=0)
    full.load_weights(tmp_path / "mixed.keras")
    assert all(v.dtype == "float32" for v in full.weights)
    exact = logits(full, features)
    assert np.abs(exact - mixed).max() < 0.05 * (1 + np.abs(exact).max())  # bfloat16 rounding
    loaded = load_model(tmp_path / "mixed.keras")
    assert lora_config(loaded) == lora_config(full)
    np.testing.assert_allclose(logits(loaded, features), mixed, atol=1e-2)


def test_adapter_round_trip_names_and_size(features, tmp_path):
    model = build_classifier(sequence_length=40)
    base = same_base(model)
    for _ in range(2):
        build_classifier(sequence_length=8)  # other models in the process change no name
    enable_lora(model, rank=4, alpha=8, dropout=0.05, targets=("query", "value"), seed=0)
    randomize_b(model)
    randomize_head(model)
    expected = logits(model, features)
    adapter = save_adapter(model, tmp_path)
    assert adapter == tmp_path / "adapter.safetensors"

    from safetensors import safe_open

    with safe_open(str(adapter), "numpy") as f:
        names, metadata = set(f.keys()), f.metadata()
    assert names == {f"layer_{i}.{t}.lora_{m}" for i in (0, 1) for t in ("query", "value")
                     for m in "ab"} | {f"head.{n}.{k}" for n in ("pooled_dense", "logits")
                                       for k in ("kernel", "bias")}
    assert len(metadata["base_sha256"]) == 64 and '"rank": 4' in metadata["lora"]

    load_adapter(base, adapter)
    np.testing.assert_allclose(logits(base, features), expected, atol=1e-6)
    assert lora_config(base) == lora_config(model)
    merge_lora(model)
    model.save(tmp_path / "full.keras")
    assert adapter.stat().st_size < (tmp_path / "full.keras").stat().st_size / 3


def test_per_head_adapter_round_trip(features, tmp_path):
    model = build_classifier(sequence_length=40)
    base = same_base(model)
    enable_lora(model, rank=2, alpha=4, dropout=0.0, style="per-head")
    rng = np.random.default_rng(0)
    for v in model.trainable_weights:  # B, and the q/k/v biases per-head LoRA trains
        v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))
    adapter = save_adapter(model, tmp_path / "per-head.safetensors")
    load_adapter(base, adapter)
    assert lora_config(base) == lora_config(model)
    np.testing.assert_allclose(logits(base, features), logits(model, features), atol=1e-6)


@pytest.mark.oldest_versions
def test_two_adapters_switch_on_one_base(features, tmp_path):
    base = build_classifier(sequence_length=40)
    tasks = {}
    for name, settings, seed in (("a", dict(rank=4, alpha=8, targets=("query", "value")), 1),
                                 ("b", dict(rank=2, alpha=6, dropout=0.1), 2)):
        model = same_base(base)
        enable_lora(model, seed=seed, **settings)
        randomize_b(model, seed)
        randomize_head(model, seed)
        tasks[name] = (save_adapter(model, tmp_path / f"{name}.safetensors"),
                       logits(model, features), lora_config(model))
    embeddings = base.backbone.token_embedding.embeddings
    for name in ("a", "b", "a", "b"):
        path, expected, settings = tasks[name]
        load_adapter(base, path)
        np.testing.assert_allclose(logits(base, features), expected, atol=1e-5)
        assert lora_config(base) == settings
    assert base.backbone.token_embedding.embeddings is embeddings  # the base was not rebuilt


@pytest.mark.oldest_versions
def test_merge_unmerge_gives_the_exact_base_so_another_adapter_still_loads(features, tmp_path):
    """W0 + delta - delta is not W0 in float32: unmerge must give the stored base back bit for
    bit, or the base fingerprint changes and the base's other adapters are refused. Also after
    a merged model went through a .keras file."""
    base = build_classifier(sequence_length=40)
    tasks = {}
    for name, seed in (("a", 1), ("b", 2)):
        model = same_base(base)
        enable_lora(model, rank=4, alpha=8, seed=seed)
        randomize_b(model, seed)
        tasks[name] = (save_adapter(model, tmp_path / f"{name}.safetensors"),
                       logits(model, features))
    kernels = snapshot(base)
    load_adapter(base, tasks["a"][0])
    for _ in range(2):
        merge_lora(base, unload=False)
        np.testing.assert_allclose(logits(base, features), tasks["a"][1], atol=1e-5)
        unmerge_lora(base)
    for layer in lora_layers(base).values():
        kernel = stored_kernel(layer)
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(kernel), kernels[kernel.path])
    load_adapter(base, tasks["b"][0])  # the same base: accepted
    np.testing.assert_allclose(logits(base, features), tasks["b"][1], atol=1e-5)

    merge_lora(base, unload=False)
    base.save(tmp_path / "merged.keras")
    reloaded = load_model(tmp_path / "merged.keras")
    unmerge_lora(reloaded)
    load_adapter(reloaded, tasks["a"][0])
    np.testing.assert_allclose(logits(reloaded, features), tasks["a"][1], atol=1e-5)


def test_adapter_for_another_base_is_refused(features, tmp_path):
    model = build_classifier(sequence_length=40)
    enable_lora(model, rank=2)
    adapter = save_adapter(model, tmp_path / "a.safetensors")
    other = build_classifier(sequence_length=40)  # same shapes, other random weights
    before = logits(other, features)
    with pytest.raises(InputError, match=r"a\.safetensors: made for another base model"):
        load_adapter(other, adapter)
    assert lora_config(other) is None
    np.testing.assert_array_equal(logits(other, features), before)


def _rewrite(adapter, out, change):
    """Write ``adapter``'s tensors and metadata, changed by ``change(tensors, metadata)``."""
    from safetensors.numpy import save_file

    from project.models.tensor_files import read_safetensors

    tensors, metadata = read_safetensors(adapter)
    tensors = {name: value.copy() for name, value in tensors.items()}
    change(tensors, metadata)
    save_file(tensors, str(out), metadata=metadata)
    return out


def _set(mapping, key, value):
    mapping[key] = value


BAD_ADAPTERS = {
    "missing file": (None, r"nothing\.safetensors: no such adapter file"),
    "truncated": ("truncate", r"not a readable safetensors file"),
    "not safetensors": ("junk", r"not a readable safetensors file"),
    "bad settings JSON": (lambda t, m: _set(m, "lora", "{rank: 4"),
                          r"bad LoRA settings in the metadata"),
    "bad rank setting": (lambda t, m: _set(m, "lora", m["lora"].replace('"rank": 4',
                                                                      '"rank": -4')),
                         r"bad LoRA settings .*rank must be >= 1"),
    "rank differs from tensors": (lambda t, m: _set(m, "lora", m["lora"].replace('"rank": 4',
                                                                               '"rank": 2')),
                                  r"layer_0\.query\.lora_a has shape \(32, 4\), the model "
                                  r"expects \(32, 2\)"),
    "wrong dtype": (lambda t, m: _set(t, "head.logits.bias", t["head.logits.bias"]
                                      .astype("float64")),
                    r"head\.logits\.bias is stored as F64, expected F32"),
    "missing tensor": (lambda t, m: t.pop("layer_1.value.lora_b"),
                       r"adapter lacks 1 tensor\(s\), e\.g\. layer_1\.value\.lora_b"),
    "unexpected tensor": (lambda t, m: _set(t, "layer_9.query.lora_a", t["layer_0.query.lora_a"]),
                          r"unexpected tensor layer_9\.query\.lora_a"),
    "mis-shaped tensor": (lambda t, m: _set(t, "head.pooled_dense.bias", np.zeros(3, "float32")),
                          r"head\.pooled_dense\.bias has shape \(3,\), the model expects"),
    "NaN weights": (lambda t, m: t["layer_0.key.lora_b"].__setitem__((0, 0), np.nan),
                    r"layer_0\.key\.lora_b holds NaN or infinite values"),
    "another format": (lambda t, m: _set(m, "format", "something-else"),
                       r"not an adapter of this project"),
}


@pytest.mark.parametrize("case", list(BAD_ADAPTERS))
def test_bad_adapter_changes_nothing(case, features, tmp_path):
    model = build_classifier(sequence_length=40)
    source = same_base(model)
    enable_lora(source, rank=4, alpha=8, seed=0)
    randomize_b(source)
    randomize_head(source)
    good = save_adapter(source, tmp_path / "good.safetensors")
    change, message = BAD_ADAPTERS[case]
    bad = tmp_path / "bad.safetensors"
    if change is None:
        bad = tmp_path / "nothing.safetensors"
    elif change == "truncate":
        bad.write_bytes(good.read_bytes()[:-10])
    elif change == "junk":
        bad.write_bytes(b"PK\x03\x04 this is a zip, not safetensors")
    else:
        _rewrite(good, bad, change)
    before, counts = logits(model, features), count_params(model)
    with pytest.raises(InputError, match=message) as info:
        load_adapter(model, bad)
    assert "\n" not in str(info.value)
    assert lora_config(model) is None and count_params(model) == counts  # nothing half-applied
    np.testing.assert_array_equal(logits(model, features), before)


def test_save_adapter_errors(tmp_path):
    model = build_classifier(sequence_length=16)
    with pytest.raises(InputError, match="no LoRA enabled"):
        save_adapter(model, tmp_path / "a.safetensors")
    enable_lora(model, rank=2)
    with pytest.raises(InputError, match=r"a\.npz: an adapter file name must end in .safetensors"):
        save_adapter(model, tmp_path / "a.npz")
    merge_lora(model, unload=False)
    with pytest.raises(InputError, match="merged into the kernels: call unmerge_lora first"):
        save_adapter(model, tmp_path / "a.safetensors")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(rank=0), r"^rank must be >= 1, got 0$"),
        (dict(rank=2.5), r"^rank must be a whole number, got 2.5$"),
        (dict(alpha=0), r"^alpha must be > 0, got 0$"),
        (dict(dropout=1.0), r"^lora_dropout must be < 1, got 1$"),
        (dict(dropout=-0.1), r"^lora_dropout must be >= 0, got -0.1$"),
        (dict(targets=("query", "dense")), r"^targets has unknown dense: choose from query"),
        (dict(style="qlora"), r"^lora_style 'qlora' is not one of matrix, per-head$"),
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
    a_values = [keras.ops.convert_to_numpy(layer.lora_a) for layer in lora_layers(model).values()]
    assert len(a_values) == 2 * 3
    assert all(not np.array_equal(a_values[0], other) for other in a_values[1:])
    again = build_classifier(sequence_length=16)
    enable_lora(again, rank=4, alpha=8, dropout=0.5, seed=0)
    first = keras.ops.convert_to_numpy(lora_layers(again)["layer_0.query"].lora_a)
    np.testing.assert_array_equal(first, a_values[0])  # the seed makes it reproducible
    # Two projections that compute the same thing differ in training only by their masks.
    x = keras.ops.ones((1, 4, 32))
    outputs = []
    for seed in (1, 2):
        layer = LoraEinsumDense("abc,cde->abde", (None, 2, 16), bias_axes="de", rank=4, alpha=8,
                                dropout=0.5, seed=seed)
        layer.build((None, None, 32))
        layer.set_weights([np.zeros((32, 2, 16), "float32"), np.zeros((2, 16), "float32"),
                           np.eye(32, 4, dtype="float32"), np.ones((4, 32), "float32")])
        outputs.append(keras.ops.convert_to_numpy(layer(x, training=True)))
    assert not np.array_equal(outputs[0], outputs[1])  # independent masks, as PEFT's Dropouts
