"""Hugging Face interop, both ways, against transformers and PEFT themselves.

Tiny random checkpoints and adapters are made, and our exports checked, by tests/hf_reference.py
in a PyTorch-only process (two runs per module); our side runs in this backend."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from project.errors import InputError
from project.interop import (
    load_classifier,
    load_hf_classifier,
    load_peft_adapter,
    save_hf_classifier,
    save_peft_adapter,
)
from project.models.adapters import save_adapter
from project.models.lora import enable_lora, lora_config, lora_layers
from project.models.roberta import build_classifier
from project.models.saving import save_model
from project.models.tensor_files import read_safetensors, write_safetensors
from tests.conftest import ROOT, call_script
from tests.hf_reference import LENGTH, PAIRS

pytest.importorskip("transformers")
pytest.importorskip("peft")
HERE = Path(__file__).resolve().parent


def reference(command: str, folder: Path) -> None:
    result = subprocess.run([sys.executable, str(HERE / "hf_reference.py"), command, str(folder)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    """The folder with cls/, base/, peft_qv/, peft_qkv/ and reference.npz (see hf_reference)."""
    folder = tmp_path_factory.mktemp("hf")
    reference("make", folder)
    return folder


@pytest.fixture(scope="module")
def ref(hf):
    return dict(np.load(hf / "reference.npz"))


def inputs(ref):
    return {"token_ids": ref["ids"].astype("int32"), "padding_mask": ref["mask"].astype(bool)}


def logits(model, x):
    return keras.ops.convert_to_numpy(model(x))


def token_ids(preprocessor):
    return keras.ops.convert_to_numpy(preprocessor(PAIRS, y=None)["token_ids"])


def copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


@pytest.mark.oldest_versions
def test_classifier_in_matches_transformers(hf, ref, tmp_path):
    model, preprocessor = load_hf_classifier(hf / "cls", sequence_length=LENGTH)
    assert model.preprocessor is preprocessor and model.num_classes == 3
    np.testing.assert_array_equal(token_ids(preprocessor), ref["ids"])  # transformers' ids
    np.testing.assert_allclose(logits(model, inputs(ref)), ref["cls_logits"], atol=1e-4)
    assert model.backbone.max_sequence_length == 64  # 66 HF positions, padding offset 2

    # vocab.json + merges.txt instead of tokenizer.json: the same ids
    other = copy(hf / "cls", tmp_path / "cls")
    (other / "tokenizer.json").unlink()
    for name in ("vocab.json", "merges.txt"):
        shutil.copy(HERE.parent / "assets" / "qqp_tokenizer" / name, other / name)
    _, preprocessor = load_hf_classifier(other, sequence_length=LENGTH)
    np.testing.assert_array_equal(token_ids(preprocessor), ref["ids"])


def test_model_without_head_matches_transformers(hf, ref):
    keras.utils.set_random_seed(0)
    model, _ = load_hf_classifier(hf / "base", sequence_length=LENGTH)
    hidden = keras.ops.convert_to_numpy(model.backbone(inputs(ref)))
    real = ref["mask"].astype(bool)  # padded positions are masked out in both
    np.testing.assert_allclose(hidden[real], ref["base_hidden"][real], atol=1e-4)
    assert model.num_classes == 2  # a new head, initialised as transformers does
    bias = keras.ops.convert_to_numpy(model.get_layer("pooled_dense").bias)
    kernel = keras.ops.convert_to_numpy(model.get_layer("pooled_dense").kernel)
    assert not bias.any() and 0.3 < kernel.std() < 0.7  # initializer_range 0.5


def test_load_classifier_reads_a_hf_folder(hf, ref):
    """What scripts/qqp.py --preset DIR does."""
    model = load_classifier(str(hf / "cls"), sequence_length=20, dropout=0.1, num_classes=3)
    assert model.preprocessor.sequence_length == 20 and model.dropout == 0.1
    assert model.backbone.max_sequence_length == 64
    assert model.preprocessor.tokenizer.vocabulary_size() == 846
    np.testing.assert_allclose(logits(model, inputs(ref)), ref["cls_logits"], atol=1e-4)
    with pytest.raises(InputError, match=r"head has 3 labels, 2 were asked for"):
        load_classifier(str(hf / "cls"), sequence_length=20)


@pytest.mark.oldest_versions
@pytest.mark.parametrize("adapter", ["peft_qv", "peft_qkv"])
def test_peft_adapter_in_matches_peft(hf, ref, adapter):
    model, _ = load_hf_classifier(hf / "cls", sequence_length=LENGTH)
    load_peft_adapter(model, hf / adapter)
    np.testing.assert_allclose(logits(model, inputs(ref)), ref[f"{adapter}_logits"], atol=1e-4)
    expected = ["query", "value"] if adapter == "peft_qv" else ["query", "key", "value"]
    assert lora_config(model)["targets"] == expected
    # switching to the other adapter on the same base
    other = "peft_qkv" if adapter == "peft_qv" else "peft_qv"
    load_peft_adapter(model, hf / other)
    np.testing.assert_allclose(logits(model, inputs(ref)), ref[f"{other}_logits"], atol=1e-4)


def _our_models(hf, ref):
    """Our side of the export checks: models, their logits on the reference ids."""
    keras.utils.set_random_seed(0)
    full = build_classifier(sequence_length=LENGTH)  # keras-hub's own class, default settings
    rng = np.random.default_rng(0)
    for v in full.weights:  # every weight random, layer norms included
        v.assign(rng.normal(1 if v.path.endswith("gamma") else 0, 0.3, v.shape)
                 .astype("float32"))
    imported, _ = load_hf_classifier(hf / "cls", sequence_length=LENGTH)  # eps 1e-3
    lora, _ = load_hf_classifier(hf / "cls", sequence_length=LENGTH)
    enable_lora(lora, rank=4, alpha=8, dropout=0.1, targets=("query", "value"), seed=0)
    for layer in lora_layers(lora).values():
        layer.lora_b.assign(rng.normal(0, 0.5, layer.lora_b.shape).astype("float32"))
    for v in lora.get_layer("logits").weights:
        v.assign(rng.normal(0, 0.5, v.shape).astype("float32"))
    return {"full": full, "imported": imported, "lora": lora}


@pytest.mark.oldest_versions
def test_exports_match_transformers_and_peft(hf, ref, tmp_path):
    models = _our_models(hf, ref)
    x = inputs(ref)
    exports = []
    for name, model in models.items():
        save_hf_classifier(model, tmp_path / name)  # LoRA: the deltas folded in
        exports.append({"name": name, "kind": "hf", "path": str(tmp_path / name)})
    save_peft_adapter(models["lora"], tmp_path / "peft")
    exports.append({"name": "peft", "kind": "peft", "path": str(tmp_path / "peft"),
                    "base": str(hf / "cls")})
    (tmp_path / "exports.json").write_text(json.dumps(exports))
    np.savez(tmp_path / "inputs.npz", **x)
    reference("check", tmp_path)
    check = np.load(tmp_path / "check.npz")
    for name, model in models.items():
        np.testing.assert_allclose(check[f"{name}_logits"], logits(model, x), atol=1e-4,
                                   err_msg=name)
        np.testing.assert_array_equal(check[f"{name}_ids"], token_ids(model.preprocessor))
    np.testing.assert_allclose(check["peft_logits"], logits(models["lora"], x), atol=1e-4)
    # and back in: our own export reads as what was written
    again, _ = load_hf_classifier(tmp_path / "full", sequence_length=LENGTH)
    np.testing.assert_allclose(logits(again, x), logits(models["full"], x), atol=1e-5)
    assert type(again.backbone) is type(models["full"].backbone)
    imported, _ = load_hf_classifier(hf / "cls", sequence_length=LENGTH)
    load_peft_adapter(imported, tmp_path / "peft")
    np.testing.assert_allclose(logits(imported, x), logits(models["lora"], x), atol=1e-5)


# ---------------------------------------------------------------------------- bad input


def _edit_config(folder: Path, **changes) -> Path:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _edit_weights(folder: Path, change) -> Path:
    tensors, metadata = read_safetensors(folder / "model.safetensors")
    tensors = {k: v.copy() for k, v in tensors.items()}
    change(tensors)
    write_safetensors(folder / "model.safetensors", tensors, metadata)
    return folder


BAD_CHECKPOINTS = {
    "not roberta": (lambda f: _edit_config(f, model_type="bert"),
                    r"model_type 'bert' is not RoBERTa"),
    "no config": (lambda f: (f / "config.json").unlink(), r"no config\.json"),
    "relative positions": (lambda f: _edit_config(f, position_embedding_type="relative_key"),
                           r"position_embedding_type 'relative_key': keras-hub has absolute "
                           r"positions only"),
    "decoder": (lambda f: _edit_config(f, is_decoder=True), r"is_decoder=true"),
    "activation": (lambda f: _edit_config(f, hidden_act="gelu_fast"),
                   r"hidden_act 'gelu_fast' is not supported"),
    "heads": (lambda f: _edit_config(f, num_attention_heads=3),
              r"hidden_size 32 is not divisible by num_attention_heads 3"),
    "no tokenizer": (lambda f: (f / "tokenizer.json").unlink(),
                     r"no tokenizer \(tokenizer\.json, or vocab\.json \+ merges\.txt\)"),
    "missing tensor": (lambda f: _edit_weights(
        f, lambda t: t.pop("roberta.encoder.layer.1.attention.self.key.bias")),
        r"lacks 1 tensor\(s\), e\.g\. roberta\.encoder\.layer\.1\.attention\.self\.key\.bias"),
    "mis-shaped tensor": (lambda f: _edit_weights(
        f, lambda t: t.__setitem__("roberta.encoder.layer.0.intermediate.dense.weight",
                                   np.zeros((64, 30), "float32"))),
        r"intermediate\.dense\.weight has shape \(64, 30\), the config implies \(64, 32\)"),
    "truncated weights": (lambda f: (f / "model.safetensors").write_bytes(
        (f / "model.safetensors").read_bytes()[:-100]), r"not a readable safetensors file"),
    "pickle only": (lambda f: ((f / "model.safetensors").unlink(),
                               (f / "pytorch_model.bin").write_bytes(b"x")),
                    r"only pickled \.bin weights"),
    "NaN weights": (lambda f: _edit_weights(
        f, lambda t: t["classifier.dense.bias"].__setitem__(0, np.nan)),
        r"classifier\.dense\.bias holds NaN or infinite values"),
}


@pytest.mark.parametrize("case", list(BAD_CHECKPOINTS))
def test_bad_checkpoint_is_one_line(hf, tmp_path, case):
    change, message = BAD_CHECKPOINTS[case]
    folder = copy(hf / "cls", tmp_path / "cls")
    change(folder)
    with pytest.raises(InputError, match=message) as info:
        load_hf_classifier(folder)
    assert "\n" not in str(info.value)


def _edit_adapter(folder: Path, config=None, change=None) -> Path:
    if config:
        data = json.loads((folder / "adapter_config.json").read_text())
        data.update(config)
        (folder / "adapter_config.json").write_text(json.dumps(data))
    if change:
        tensors, _ = read_safetensors(folder / "adapter_model.safetensors")
        tensors = {k: v.copy() for k, v in tensors.items()}
        change(tensors)
        write_safetensors(folder / "adapter_model.safetensors", tensors, {"format": "pt"})
    return folder


KEY = "base_model.model.roberta.encoder.layer.0.attention.self.key.lora_A.weight"
BAD_ADAPTERS = {
    "rank differs from config": (dict(r=8), None, r"has rank 4, the config's r is 8"),
    "targets differ from config": (dict(target_modules=["query"]), None,
                                   r"unexpected tensor .*value\.lora_A\.weight \(the config "
                                   r"targets query"),
    "extra target tensor": (None, lambda t: t.__setitem__(KEY, np.zeros((4, 32), "float32")),
                            r"unexpected tensor .*layer\.0\.attention\.self\.key\.lora_A"),
    "missing tensor": (None, lambda t: t.pop(
        "base_model.model.roberta.encoder.layer.1.attention.self.value.lora_B.weight"),
        r"lacks 1 tensor\(s\), e\.g\. layer_1\.value\.lora_b"),
    "DoRA": (dict(use_dora=True), None, r"DoRA is not supported"),
    "other targets": (dict(target_modules=["query", "dense"]), None,
                      r"target .*dense is not query/key/value"),
    "some layers": (dict(layers_to_transform=[0]), None,
                    r"a subset of layers \(layers_to_transform\) is not supported"),
    "PiSSA": (dict(init_lora_weights="pissa"), None, r"changes the base weights"),
    "unknown option": (dict(fancy_new_option={"on": True}), None,
                       r"option fancy_new_option=\{'on': True\} is not supported"),
}


@pytest.mark.parametrize("case", list(BAD_ADAPTERS))
def test_bad_peft_adapter_changes_nothing(hf, ref, tmp_path, case):
    config, change, message = BAD_ADAPTERS[case]
    folder = _edit_adapter(copy(hf / "peft_qv", tmp_path / "adapter"), config, change)
    model, _ = load_hf_classifier(hf / "cls", sequence_length=LENGTH)
    with pytest.raises(InputError, match=message) as info:
        load_peft_adapter(model, folder)
    assert "\n" not in str(info.value)
    assert lora_config(model) is None  # nothing half-applied: the base's logits still
    np.testing.assert_allclose(logits(model, inputs(ref)), ref["cls_logits"], atol=1e-4)


def test_peft_adapter_for_another_base_is_refused(hf, tmp_path):
    other = build_classifier(sequence_length=LENGTH, hidden_dim=16, num_classes=3)
    enable_lora(other, rank=4, alpha=8, targets=("query", "value"))
    save_peft_adapter(other, tmp_path / "other")
    model, _ = load_hf_classifier(hf / "cls", sequence_length=LENGTH)
    with pytest.raises(InputError, match=r"made for a base with hidden size 16; this model's is "
                                         r"32"):
        load_peft_adapter(model, tmp_path / "other")
    assert lora_config(model) is None


# ---------------------------------------------------------------------------- scripts/predict.py


def test_predict_script(hf, tmp_path):
    model = build_classifier(sequence_length=32)
    save_model(model, tmp_path / "full.keras")
    save_hf_classifier(model, tmp_path / "hf")
    enable_lora(model, rank=2, alpha=4, seed=0)
    for layer in lora_layers(model).values():
        layer.lora_b.assign(np.full(layer.lora_b.shape, 0.5, "float32"))
    adapter = save_adapter(model, tmp_path / "adapter.safetensors")
    save_peft_adapter(model, tmp_path / "peft")
    save_model(model, tmp_path / "lora.keras")
    pair = ["How do I learn Python?", "How can I learn Python fast?"]
    frame = {"question1": pair[:1], "question2": pair[1:]}
    import pandas as pd

    from project.data.qqp_length import tokenize_pairs
    from project.training.metrics import positive_scores

    expected = positive_scores(logits(model, tokenize_pairs(model.preprocessor,
                                                            pd.DataFrame(frame))))[0]
    for args in (["lora.keras"], ["full.keras", "--adapter", "adapter.safetensors"],
                 ["hf", "--adapter", "peft"], ["full.keras", "--adapter", str(tmp_path)]):
        argv = [str(tmp_path / args[0]), *pair, *[str(tmp_path / a) if not a.startswith("-")
                                                  else a for a in args[1:]]]
        code, out, err = call_script("predict.py", *argv)
        assert code == 0, err
        assert out.strip() == f"duplicate probability {expected:.4f}", args

    for argv, message in (
        ([tmp_path / "none.keras", *pair], r"none\.keras: no such model file or folder"),
        ([tmp_path / "full.keras", "", "q"], r"question1 is empty"),
        ([hf / "cls", *pair], r"head has 3 labels, 2 were asked for"),
        ([tmp_path / "full.keras", *pair, "--adapter", tmp_path / "x.safetensors"],
         r"--adapter .*x\.safetensors: no such file or folder"),
        ([tmp_path / "adapter.safetensors", *pair], r"expected a \.keras file or a model folder"),
    ):
        code, out, err = call_script("predict.py", *argv)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1
        assert re.search(message, err), err
    other = build_classifier(sequence_length=32)  # another base: our adapter is refused
    save_model(other, tmp_path / "other.keras")
    code, _, err = call_script("predict.py", tmp_path / "other.keras", *pair, "--adapter",
                                   adapter)
    assert code == 2 and "made for another base model" in err


def test_predict_help_is_light():
    probe = (
        "import runpy, sys\n"
        f"sys.argv = [{str(ROOT / 'scripts' / 'predict.py')!r}, '--help']\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('HEAVY', [m for m in ('keras', 'tensorflow', 'torch', 'jax') if m in sys.modules])\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "usage: predict.py" in done.stdout and "HEAVY []" in done.stdout
    assert done.stderr == ""



def test_qqp_script_trains_from_a_hf_folder(hf, tmp_path):
    """scripts/qqp.py --preset DIR: a RobertaModel folder (fresh head) trains and reloads."""
    from tests.conftest import call_script

    code, _, err = call_script("qqp.py", "--preset", hf / "base", "--mode", "lora", "--epochs", "1",
                               "--fraction", "0.1", "--sequence-length", "32", "--out",
                               tmp_path / "run", "--verbose", "0")
    assert code == 0, err
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["config"]["preset"] == str(hf / "base")
    assert metrics["model"]["random_weights"] is False
    assert (tmp_path / "run" / "lora" / "adapter.safetensors").is_file()
