"""Models in and out: Hugging Face transformers checkpoints and PEFT adapters, both ways, and the
one classifier loader.

* :func:`load_classifier`: a RoBERTa pair classifier from a preset, a Hugging Face folder or a
  ``.keras`` file, optionally with an adapter (ours or PEFT's);
* :func:`load_hf_classifier` / :func:`save_hf_classifier`: a ``save_pretrained`` directory of
  ``RobertaForSequenceClassification`` (or ``RobertaModel``) <-> our keras-hub classifier;
* :func:`load_peft_adapter` / :func:`save_peft_adapter`: a PEFT LoRA adapter directory <-> our
  LoRA (:mod:`project.models.lora`).

Nothing here imports transformers or torch: the files are read and written with safetensors and
JSON, so this works in every Keras backend. The name table both directions share:
:mod:`project.interop.names`.
"""

from project.interop.classifiers import load_classifier
from project.interop.hf import load_hf_classifier, save_hf_classifier
from project.interop.peft import is_peft_adapter, load_peft_adapter, save_peft_adapter

__all__ = [
    "load_classifier", "load_hf_classifier", "save_hf_classifier",
    "is_peft_adapter", "load_peft_adapter", "save_peft_adapter",
]
