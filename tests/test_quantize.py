"""LoRA on an int8 frozen base (Keras's quantize) and rematerialised layers: only A, B and the
head train, the file round trip (safe mode, another backend), merge refused, adapters tied to the
int8 base and exchangeable through PEFT, damaged scales in one line, the script flags, and
--remat giving the same training, dropout included."""

import json
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest

from project.data.qqp_length import tokenize_pairs
from project.data.qqp_splits import load_qqp
from project.errors import InputError, SettingError
from project.interop import load_classifier
from project.interop.peft import load_peft_adapter, save_peft_adapter
from project.keras_internals import stored_kernel
from project.models.adapters import adapter_quantization, load_adapter, save_adapter
from project.models.backbone import rematerialize_layers
from project.models.lora import count_params, enable_lora, lora_config, lora_layers, merge_lora
from project.models.quantize import base_projections, quantization_mode, quantize_base, weight_bytes
from project.models.roberta import build_classifier, detached_preprocessor
from project.models.saving import load_model, save_model
from project.training import devices
from project.training.precision import dtype_policy, prepare
from tests.conftest import OTHER_BACKEND, call_script, run_python

QUIET = dict(backbone_dropout=0.0, dropout=0.0)
TINY = dict(vocabulary_size=300, num_layers=2, num_heads=2, hidden_dim=32, intermediate_dim=64,
            max_sequence_length=32, vocabulary=None)


@pytest.fixture(scope="module")
def data():
    return load_qqp(seed=0)


@pytest.fixture(scope="module")
def features(data):
    return tokenize_pairs(build_classifier(sequence_length=40).preprocessor, data.train.iloc[:48])


def logits(model, features, training=False):
    return keras.ops.convert_to_numpy(model(features, training=training))


def lora_model(seed=0, **kwargs):
    """The tiny RoBERTa with LoRA (r=4) and a non-zero B, so that the branch matters."""
    model = build_classifier(sequence_length=40, **QUIET)
    enable_lora(model, rank=4, alpha=8, dropout=0.0, seed=seed, **kwargs)
    rng = np.random.default_rng(seed)
    for layer in lora_layers(model).values():
        layer.lora_b.assign(rng.normal(0, 0.5, layer.lora_b.shape).astype("float32"))
    return model


def values(model) -> dict:
    return {v.path: np.array(keras.ops.convert_to_numpy(v)) for v in model.weights}


@pytest.fixture(scope="module")
def int8(features, tmp_path_factory):
    """An unmerged LoRA model on an int8 base, its logits and its ``.keras`` file (read only)."""
    model = lora_model(seed=2)
    quantize_base(model)
    path = save_model(model, tmp_path_factory.mktemp("int8") / "int8.keras")
    return model, logits(model, features), path


@pytest.mark.oldest_versions
def test_int8_base_keeps_lora_float32_and_only_lora_and_head_train(data, features):
    model = lora_model()
    float_logits, float_bytes, counts = logits(model, features), weight_bytes(model), \
        count_params(model)
    quantize_base(model)
    assert quantization_mode(model) == "int8"
    layers = base_projections(model.backbone)
    assert len(layers) == 1 + 2 * 6  # token embedding; q, k, v, attention output, 2 x FFN
    assert all(layer.quantization_mode == "int8" for layer in layers)
    for layer in layers[1:]:
        assert keras.backend.standardize_dtype(stored_kernel(layer).dtype) == "int8"
    assert count_params(model)[0] == counts[0]  # A, B and the head: float32, trainable
    assert {v.dtype for v in model.trainable_weights} == {"float32"}
    assert weight_bytes(model) < 0.45 * float_bytes
    gap = np.abs(logits(model, features) - float_logits).max()
    assert 0 < gap < 0.05 * np.abs(float_logits).max() + 1e-3  # int8 rounding, the same model

    before = values(model)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with detached_preprocessor(model):
        model.fit(features, data.train["is_duplicate"].to_numpy()[:48], batch_size=16,
                  epochs=1, verbose=0, shuffle=False)
    trained = {path for path, value in values(model).items()
               if not np.array_equal(before[path], value)}
    assert trained == {v.path for v in model.trainable_weights}  # A, B and the head, all moved
    assert all(p.endswith(("lora_a", "lora_b")) or p.startswith(("pooled_dense", "logits"))
               for p in trained)


def test_int8_base_trains_under_mixed_bfloat16(data, features):
    """Keras's int8 embedding turned float32 inside a mixed model (TensorFlow refused the sum
    with the bfloat16 position embedding); the whole model now computes in bfloat16."""
    with dtype_policy("mixed_bfloat16"):
        model = lora_model()
    prepare(model, "mixed_bfloat16")
    quantize_base(model)
    model.compile(optimizer=keras.optimizers.AdamW(1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with detached_preprocessor(model):
        loss = model.train_on_batch(features, data.train["is_duplicate"].to_numpy()[:48])
        out = model.predict_on_batch(features)
    assert np.isfinite(loss).all() and np.isfinite(out).all()
    assert keras.backend.standardize_dtype(out.dtype) == "float32"  # the float32 head
    embedded = model.backbone.embeddings(features["token_ids"])
    assert keras.backend.standardize_dtype(embedded.dtype) == "bfloat16"


@pytest.mark.oldest_versions
def test_unmerged_int8_model_through_keras_file_and_other_backend(int8, features, tmp_path):
    model, expected, path = int8
    loaded = load_model(path)  # safe mode
    assert quantization_mode(loaded) == "int8" and lora_config(loaded) == lora_config(model)
    assert count_params(loaded) == count_params(model)
    np.testing.assert_array_equal(logits(loaded, features), expected)
    np.savez(tmp_path / "features.npz", **features)
    code = (
        "import sys, numpy as np, keras\n"
        "from project.models.saving import load_model\n"
        "from project.models.quantize import quantization_mode\n"
        "model = load_model(sys.argv[1] + '/int8.keras')\n"
        "f = dict(np.load(sys.argv[1] + '/features.npz'))\n"
        "np.save(sys.argv[1] + '/out.npy', keras.ops.convert_to_numpy(model(f)))\n"
        "print(quantization_mode(model))\n"
    )
    (tmp_path / "int8.keras").write_bytes(path.read_bytes())
    result = run_python(code, tmp_path, backend=OTHER_BACKEND)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[-1] == "int8"
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), expected, atol=1e-5)


def test_merging_into_an_int8_base_is_refused_and_changes_nothing(int8, features):
    model, out, _ = int8
    before = values(model)
    for unload in (True, False):
        with pytest.raises(InputError, match="cannot merge LoRA into an int8 base"):
            merge_lora(model, unload=unload)
    assert all(np.array_equal(before[k], v) for k, v in values(model).items())
    np.testing.assert_array_equal(logits(model, features), out)


@pytest.mark.parametrize("case, error, message", [
    ("mode", SettingError, "quantize 'int4' is not one of int8"),
    ("twice", InputError, "already quantised"),
    ("per-head", InputError, "needs the matrix"),
    ("merged", InputError, "unmerge_lora before"),
])
def test_quantize_refusals(case, error, message):
    model = build_classifier(**TINY)
    if case == "per-head":
        enable_lora(model, rank=2, style="per-head")
    elif case == "merged":
        merge_lora(enable_lora(model, rank=2), unload=False)
    elif case == "twice":
        quantize_base(model)
    with pytest.raises(error, match=message):
        quantize_base(model, "int4" if case == "mode" else "int8")


def test_device_without_int8_is_refused(monkeypatch):
    devices.check_quantize_support(None, "torch")  # nothing asked: nothing checked
    devices.check_quantize_support("int8", keras.backend.backend())  # this CPU
    monkeypatch.setattr(devices, "device_info", lambda backend: {"platform": "mps"})
    with pytest.raises(SettingError, match=r"quantize int8 is not supported on MPS"):
        devices.check_quantize_support("int8", "torch")


def test_adapter_of_an_int8_base_is_tied_to_it_and_travels_through_peft(features, tmp_path):
    base = build_classifier(sequence_length=40, **QUIET)
    model = build_classifier(sequence_length=40, **QUIET)
    model.set_weights(base.get_weights())
    enable_lora(model, rank=4, alpha=8, seed=1)
    for layer in lora_layers(model).values():
        layer.lora_b.assign(np.full(layer.lora_b.shape, 0.1, "float32"))
    quantize_base(model)
    adapter = save_adapter(model, tmp_path / "int8.safetensors")
    assert adapter_quantization(adapter) == "int8"
    with pytest.raises(InputError, match=r"made for an int8 base, this model has a float base; "
                                         r"quantise the model first"):
        load_adapter(base, adapter)
    save_model(base, tmp_path / "base.keras")
    again = load_classifier(tmp_path / "base.keras", adapter=adapter, quantize="int8")
    np.testing.assert_array_equal(logits(again, features), logits(model, features))

    peft = save_peft_adapter(model, tmp_path / "peft")  # A, B and the head only
    load_peft_adapter(base, peft)  # on the float base, as PEFT users apply it
    for name, layer in lora_layers(base).items():
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(layer.lora_a),
                                      keras.ops.convert_to_numpy(lora_layers(model)[name].lora_a))
    gap = np.abs(logits(base, features) - logits(model, features)).max()
    assert gap < 0.05 * np.abs(logits(base, features)).max() + 1e-3  # int8 rounding only


def _damage(src: Path, dst: Path, key: str, shape) -> Path:
    import h5py

    with zipfile.ZipFile(src) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    weights = dst.with_suffix(".h5")
    weights.write_bytes(members["model.weights.h5"])
    with h5py.File(weights, "a") as f:
        found = [name for name in _datasets(f) if name.endswith(key)]
        assert found, key
        del f[found[0]]
        if shape is not None:
            f.create_dataset(found[0], data=np.ones(shape, "float32"))
    members["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(dst, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return dst


def _datasets(f) -> list:
    names = []
    f.visit(names.append)
    return names


@pytest.mark.parametrize("key, shape", [
    ("query_dense/vars/kernel_scale", None),                  # a LoRA layer's scales missing
    ("query_dense/vars/kernel_scale", (3,)),                  # ... mis-shaped
    ("_feedforward_output_dense/vars/2", None),               # a Dense layer's scales missing
    ("_self_attention_layer/output_dense/vars/2", (5, 5)),    # an EinsumDense's mis-shaped
])
def test_damaged_int8_scales_are_one_line(int8, tmp_path, key, shape):
    bad = _damage(int8[2], tmp_path / "bad.keras", key, shape)
    with pytest.raises(InputError) as err:
        load_model(bad)
    assert "bad.keras: int8 weights or scales missing or mis-shaped" in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.oldest_versions
def test_remat_trains_exactly_as_without_dropout_included():
    """keras.remat around every transformer layer recomputes with the same dropout masks (the
    backbone's unseeded dropout layers and LoRA's seeded branch dropout)."""
    x = {"token_ids": np.random.default_rng(0).integers(5, 300, (4, 16)).astype("int32")}
    x["padding_mask"] = np.ones_like(x["token_ids"], dtype=bool)
    y = np.array([0, 1, 1, 0], "int32")
    weights = []
    for remat in (False, True):
        keras.utils.set_random_seed(0)
        model = build_classifier(**TINY, backbone_dropout=0.3, dropout=0.1)
        enable_lora(model, rank=4, alpha=8, dropout=0.3, seed=0)
        if remat:
            rematerialize_layers(model.backbone)
        model.compile(optimizer=keras.optimizers.SGD(1.0),
                      loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        for _ in range(2):
            model.train_on_batch(x, y)
        weights.append([keras.ops.convert_to_numpy(v) for v in model.weights])
    for plain, rematerialised in zip(*weights):
        np.testing.assert_allclose(rematerialised, plain, atol=1e-6)


def test_qqp_lora_on_int8_with_remat_end_to_end(tmp_path):
    out = tmp_path / "run"
    code, stdout, err = call_script("qqp.py", "--mode", "lora", "--quantize", "int8", "--remat",
                                    "--epochs", "1", "--fraction", "0.3", "--out", out,
                                    "--verbose", "0")
    assert code == 0, err[-2000:]
    config = json.loads((out / "config.json").read_text())["config"]
    assert (config["quantize"], config["remat"]) == ("int8", True)
    result = json.loads((out / "lora" / "result.json").read_text())
    assert result["merge_max_abs_diff"] is None  # saved unmerged, on its int8 base
    model = load_model(out / "lora" / "model.keras")
    assert quantization_mode(model) == "int8" and lora_config(model)["rank"] == 8
    assert "int8" in (out / "report.md").read_text()
    code, stdout, err = call_script("evaluate.py", out / "lora" / "model.keras", "--task", "qqp",
                                    "--json", tmp_path / "eval.json")
    assert code == 0, err[-2000:]
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["accuracy"] == pytest.approx(result["val"]["accuracy"])
    code, stdout, err = call_script("predict.py", out / "lora" / "model.keras", "How do I?",
                                    "How can I?", "--quantize", "int8")  # already int8: as is
    assert code == 0 and stdout.startswith("duplicate probability"), err[-2000:]


@pytest.mark.parametrize("script, args, message", [
    ("qqp.py", ["--quantize", "int8"], "--quantize int8 quantises LoRA's frozen base: use it "
                                       "with --mode lora"),
    ("qqp.py", ["--quantize", "int8", "--mode", "full"], "--mode lora"),
    ("qqp.py", ["--quantize", "int4", "--mode", "lora"], "--quantize 'int4' is not one of int8"),
    ("qqp.py", ["--quantize", "int8", "--mode", "lora", "--precision", "mixed_float16"],
     "--precision mixed_float16"),
    ("predict.py", ["m.keras", "a", "b", "--quantize", "int4"], "--quantize 'int4'"),
    ("evaluate.py", ["m.keras", "--task", "fraud", "--quantize", "int8"], "--task qqp"),
])
def test_bad_quantize_is_one_line_and_exit_2(script, args, message):
    code, out, err = call_script(script, *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
