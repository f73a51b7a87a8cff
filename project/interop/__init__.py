"""Models in and out: Hugging Face transformers checkpoints and PEFT adapters, both ways, and the
one classifier loader. Nothing here imports transformers or torch: it works in every backend."""

from project.interop.classifiers import load_classifier
from project.interop.hf import load_hf_classifier, save_hf_classifier
from project.interop.peft import is_peft_adapter, load_peft_adapter, save_peft_adapter

__all__ = ["load_classifier", "load_hf_classifier", "save_hf_classifier", "is_peft_adapter",
           "load_peft_adapter", "save_peft_adapter"]
