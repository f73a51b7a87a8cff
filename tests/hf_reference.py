"""The Hugging Face side of tests/test_interop.py, run in a separate PyTorch-only process.

    python tests/hf_reference.py make DIR    # tiny checkpoints, PEFT adapters, reference logits
    python tests/hf_reference.py check DIR   # load our exports (DIR/exports.json) with HF, score

``make`` writes, from random weights chosen to catch shortcuts (every parameter random, including
layer-norm weights, biases and the token-type embedding; a large initialiser range; non-default
layer_norm_eps or hidden_act; non-zero LoRA B):

* ``cls``: ``RobertaForSequenceClassification`` (3 labels, layer_norm_eps 1e-3, 2 token types),
  tokenizer.json only (what transformers 5 writes);
* ``base``: ``RobertaModel`` (hidden_act gelu_new), tokenizer.json only;
* ``peft_qv`` (r=4, alpha=8, query/value) and ``peft_qkv`` (r=2, alpha=6, rsLoRA, dropout 0.1,
  query/key/value): PEFT adapters on ``cls``, each with its own trained head;
* ``reference.npz``: the token ids of :data:`PAIRS` (padded to :data:`LENGTH`), the logits of
  ``cls`` and of both adapters, and ``base``'s last hidden states.

``check`` reads ``exports.json`` (``[{"name", "kind": "hf" | "peft", "path", "base"}]``) and
``inputs.npz`` (``token_ids``, ``padding_mask``) and writes ``check.npz``: ``<name>_logits`` and,
for "hf" exports, ``<name>_ids`` (AutoTokenizer's ids for PAIRS).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

PAIRS = (["How do I learn Python quickly?", "Is Paris a good city to live in?"],
         ["What is the fastest way to learn Python?", "How much does a pilot earn?"])
LENGTH = 24
TOKENIZER = Path(__file__).resolve().parents[1] / "assets" / "qqp_tokenizer"
DIMS = dict(vocab_size=846, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
            intermediate_size=64, max_position_embeddings=66)


def _randomize(module, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if "LayerNorm.weight" in name:
                p.copy_(1 + 0.3 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(0.5 * torch.randn(p.shape, generator=generator))


def _encode(tokenizer):
    return tokenizer(*PAIRS, padding="max_length", max_length=LENGTH, return_tensors="pt")


def make(folder: Path) -> None:
    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import (
        RobertaConfig,
        RobertaForSequenceClassification,
        RobertaModel,
        RobertaTokenizerFast,
    )

    tokenizer = RobertaTokenizerFast(vocab=str(TOKENIZER / "vocab.json"),
                                     merges=str(TOKENIZER / "merges.txt"))
    cls_config = RobertaConfig(**DIMS, type_vocab_size=2, layer_norm_eps=1e-3,
                               initializer_range=0.5, num_labels=3)
    cls = RobertaForSequenceClassification(cls_config)
    _randomize(cls, 0)
    cls.save_pretrained(folder / "cls")
    tokenizer.save_pretrained(folder / "cls")
    base = RobertaModel(RobertaConfig(**DIMS, hidden_act="gelu_new", layer_norm_eps=1e-5,
                                      initializer_range=0.5))
    _randomize(base, 1)
    base.save_pretrained(folder / "base")
    tokenizer.save_pretrained(folder / "base")

    enc = _encode(tokenizer)
    out = {"ids": enc["input_ids"].numpy(), "mask": enc["attention_mask"].numpy()}
    with torch.no_grad():
        out["cls_logits"] = cls.eval()(**enc).logits.numpy()
        out["base_hidden"] = base.eval()(**enc).last_hidden_state.numpy()
    adapters = {
        "peft_qv": LoraConfig(task_type="SEQ_CLS", r=4, lora_alpha=8,
                              target_modules=["query", "value"], init_lora_weights=False),
        "peft_qkv": LoraConfig(task_type="SEQ_CLS", r=2, lora_alpha=6, lora_dropout=0.1,
                               use_rslora=True, target_modules=["query", "key", "value"],
                               init_lora_weights=False),
    }
    for seed, (name, config) in enumerate(adapters.items(), start=2):
        torch.manual_seed(seed)
        model = get_peft_model(RobertaForSequenceClassification.from_pretrained(folder / "cls"),
                               config)
        generator = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for key, p in model.named_parameters():
                if "modules_to_save" in key:
                    p.copy_(0.5 * torch.randn(p.shape, generator=generator))
        model.save_pretrained(folder / name)
        with torch.no_grad():
            out[f"{name}_logits"] = model.eval()(**enc).logits.numpy()
    np.savez(folder / "reference.npz", **out)


def check(folder: Path) -> None:
    import numpy as np
    import torch
    from peft import PeftModel
    from transformers import AutoTokenizer, RobertaForSequenceClassification

    exports = json.loads((folder / "exports.json").read_text())
    inputs = np.load(folder / "inputs.npz")
    ids = torch.from_numpy(inputs["token_ids"].astype("int64"))
    mask = torch.from_numpy(inputs["padding_mask"].astype("int64"))
    out = {}
    for export in exports:
        if export["kind"] == "hf":
            model = RobertaForSequenceClassification.from_pretrained(export["path"])
            tokenizer = AutoTokenizer.from_pretrained(export["path"])
            out[export["name"] + "_ids"] = _encode(tokenizer)["input_ids"].numpy()
        else:
            base = RobertaForSequenceClassification.from_pretrained(export["base"])
            model = PeftModel.from_pretrained(base, export["path"])
        with torch.no_grad():
            out[export["name"] + "_logits"] = model.eval()(input_ids=ids,
                                                           attention_mask=mask).logits.numpy()
    np.savez(folder / "check.npz", **out)


if __name__ == "__main__":
    {"make": make, "check": check}[sys.argv[1]](Path(sys.argv[2]))
