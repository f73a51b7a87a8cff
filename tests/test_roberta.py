"""The RoBERTa classifier: configuration and presets, `.keras` round trips (safe mode), loading
in the other backend."""

import json
import time
from pathlib import Path

import keras
import numpy as np
import pytest

from project.data.qqp import read_qqp
from project.data.qqp_length import tokenize_pairs
from project.errors import InputError
from project.models import roberta
from project.models.lora import count_params, enable_lora, lora_config, merge_lora
from project.models.roberta import build_classifier
from project.models.saving import load_model
from tests.conftest import OTHER_BACKEND, run_python

ROOT = Path(__file__).resolve().parents[1]
PAIRS = (["How can I learn Python quickly?", "Is Paris a good city to live in?"],
         ["What is the fastest way to learn Python?", "How much does a pilot earn?"])


def predict_logits(model, features):
    """Logits for pre-tokenised features (calling a keras-hub task skips its preprocessor)."""
    return keras.ops.convert_to_numpy(model(features))


def pair_features(model):
    """Tokenise PAIRS with the model's own preprocessor (keras-hub's raw-string ``predict`` is
    slow: it retraces the tokenizer in tf.data on every call)."""
    import pandas as pd

    frame = pd.DataFrame({"question1": PAIRS[0], "question2": PAIRS[1]})
    return tokenize_pairs(model.preprocessor, frame)


def test_tiny_default_and_sequence_length():
    model = build_classifier(sequence_length=24)
    config = json.loads((roberta.ASSETS_DIR / "qqp_tiny_config.json").read_text())
    assert model.backbone.hidden_dim == config["hidden_dim"]
    assert model.backbone.vocabulary_size == model.preprocessor.tokenizer.vocabulary_size()
    assert model.preprocessor.sequence_length == 24
    assert model.dropout == 0.1
    assert predict_logits(model, pair_features(model)).shape == (2, 2)
    assert build_classifier().preprocessor.sequence_length == config["max_sequence_length"]


def test_bad_configuration():
    with pytest.raises(InputError, match=r"^sequence_length 129 is above the model's maximum 128$"):
        build_classifier(sequence_length=129)
    with pytest.raises(InputError, match=r"unknown model configuration key\(s\): hidden_size"):
        build_classifier(hidden_size=8)
    with pytest.raises(InputError, match=r"more than the model's vocabulary_size 100"):
        build_classifier(vocabulary_size=100)


def test_missing_preset_directory(tmp_path):
    with pytest.raises(InputError, match=r"^preset .*no_such_dir: no such directory"):
        build_classifier(preset=str(tmp_path / "no_such_dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"^preset .*empty: not a model folder \(no config"):
        build_classifier(preset=str(tmp_path / "empty"))


def test_named_preset_offline_fails_fast(monkeypatch):
    # Simulate "no network, nothing cached" whatever the machine: the check must come before
    # keras-hub/kagglehub try (and retry) a download.
    monkeypatch.setattr(roberta, "_reachable", lambda host, timeout=3.0: False)
    monkeypatch.setattr(roberta, "_kaggle_cached", lambda handle: False)
    start = time.perf_counter()
    with pytest.raises(InputError, match=r"roberta_large_en needs the network once, or a local "
                                         r"copy: give preset a folder"):
        build_classifier(preset="roberta_large_en")
    assert time.perf_counter() - start < 5
    with pytest.raises(InputError, match=r"not a directory nor a keras-hub RoBERTa preset"):
        build_classifier(preset="roberta_huge_en")


def test_unreachable_host_probe_is_bounded():
    start = time.perf_counter()
    assert roberta._reachable("host.invalid", timeout=1.0) is False
    assert time.perf_counter() - start < 3


def test_local_preset_folder(tmp_path):
    model = build_classifier(sequence_length=24)
    model.save_to_preset(str(tmp_path / "preset"))
    loaded = build_classifier(preset=str(tmp_path / "preset"), sequence_length=20)
    assert loaded.preprocessor.sequence_length == 20
    for a, b in zip(model.backbone.weights, loaded.backbone.weights, strict=True):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a),
                                      keras.ops.convert_to_numpy(b))
    with pytest.raises(InputError, match=r"takes no model configuration \(hidden_dim\)"):
        build_classifier(preset=str(tmp_path / "preset"), hidden_dim=8)


@pytest.mark.parametrize("lora", ["none", "merged", "unmerged"])
def test_keras_round_trip_safe_mode(tmp_path, lora):
    """Full model, merged LoRA model (plain keras-hub), and a LoRA model saved as is (it reloads
    with LoRA on: A and B travel)."""
    model = build_classifier(sequence_length=24)
    if lora != "none":
        enable_lora(model, rank=4, alpha=8, seed=0)
        for v in model.weights:
            if v.path.endswith("lora_b"):
                v.assign(np.full(v.shape, 0.05, "float32"))
    if lora == "merged":
        merge_lora(model)
    features = pair_features(model)
    expected = predict_logits(model, features)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = load_model(path)
    # The preprocessor travels with the model: same tokens, then the same logits.
    loaded_features = pair_features(loaded)
    for key in features:
        np.testing.assert_array_equal(loaded_features[key], features[key])
    np.testing.assert_allclose(predict_logits(loaded, loaded_features), expected, atol=1e-5)
    assert lora_config(loaded) == lora_config(model)
    assert count_params(loaded) == count_params(model)
    plain = len(build_classifier(sequence_length=24).weights)
    assert len(loaded.weights) == plain + (2 * 2 * 3 if lora == "unmerged" else 0)


def test_other_backend_loads_the_same_model(tmp_path):
    """Full and merged-LoRA models saved here give the same predictions in the other backend."""
    other = OTHER_BACKEND
    features = tokenize_pairs(build_classifier(sequence_length=24).preprocessor,
                              read_qqp(roberta.ASSETS_DIR / "qqp_sample.csv.gz").frame.iloc[:8])
    np.savez(tmp_path / "features.npz", **features)
    expected = {}
    for name in ("full", "lora"):
        model = build_classifier(sequence_length=24)
        if name == "lora":
            enable_lora(model, rank=4, alpha=8, seed=1)
            for v in model.weights:
                if v.path.endswith("lora_b"):
                    v.assign(np.full(v.shape, 0.05, "float32"))
            merge_lora(model)
        model.save(tmp_path / f"{name}.keras")
        expected[name] = predict_logits(model, features)
    code = (
        "import sys, numpy as np, keras\n"
        "from project.models.saving import load_model\n"
        "d = sys.argv[1]\n"
        "f = dict(np.load(d + '/features.npz'))\n"
        "for name in ('full', 'lora'):\n"
        "    out = keras.ops.convert_to_numpy(load_model(d + f'/{name}.keras')(f))\n"
        "    np.save(d + f'/{name}-{keras.backend.backend()}.npy', out)\n"
    )
    result = run_python(code, tmp_path, backend=other)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("full", "lora"):
        np.testing.assert_allclose(np.load(tmp_path / f"{name}-{other}.npy"), expected[name],
                                   atol=1e-5)
