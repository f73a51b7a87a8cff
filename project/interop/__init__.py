"""Hugging Face interoperability: transformers checkpoints and PEFT adapters, both ways.

* :func:`load_hf_classifier` / :func:`save_hf_classifier`: a ``save_pretrained`` directory of
  ``RobertaForSequenceClassification`` (or ``RobertaModel``) <-> our keras-hub classifier.
* :func:`load_peft_adapter` / :func:`save_peft_adapter`: a PEFT LoRA adapter directory <-> our
  LoRA (:mod:`project.models.lora`).

Nothing here imports transformers or torch: the files are read and written with safetensors and
JSON, so this works in every Keras backend.
"""

from project.interop.hf import is_hf_checkpoint, load_hf_classifier, save_hf_classifier
from project.interop.peft import is_peft_adapter, load_peft_adapter, save_peft_adapter

__all__ = [
    "is_hf_checkpoint", "load_hf_classifier", "save_hf_classifier",
    "is_peft_adapter", "load_peft_adapter", "save_peft_adapter",
]
