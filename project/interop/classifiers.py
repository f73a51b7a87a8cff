"""One loader for the RoBERTa pair classifier, wherever it comes from.

Example:

>>> model = load_classifier(sequence_length=32)    # the bundled tiny RoBERTa, random weights
>>> model.preprocessor.sequence_length, model.num_classes
(32, 2)
"""

from __future__ import annotations

from pathlib import Path

from project.errors import InputError
from project.interop.hf import load_hf_classifier
from project.interop.peft import is_peft_adapter, load_peft_adapter
from project.models.adapters import adapter_quantization, load_adapter
from project.models.quantize import ensure_quantized
from project.models.roberta import build_classifier, is_hf_checkpoint
from project.models.saving import load_model


def load_classifier(source=None, *, sequence_length: int | None = None, dropout: float = 0.1,
                    num_classes: int = 2, adapter=None, quantize: str | None = None,
                    **config):
    """A RoBERTa pair classifier with its preprocessor, and optionally an adapter on it.

    Args:
        source: None (a random-weight RoBERTa from ``config``: see
            :func:`project.models.roberta.build_classifier`), a keras-hub preset name or folder,
            a Hugging Face ``save_pretrained`` folder, or a ``.keras`` file of this project.
        sequence_length: padded length (None: the model's maximum; a ``.keras`` file keeps its).
        dropout: head dropout of a new or imported head.
        num_classes: logits; a saved model or a checkpoint's head must have as many.
        adapter: ours (``adapter.safetensors``, made for this very base) or a PEFT folder.
        quantize: ``"int8"``: :func:`project.models.quantize.quantize_base` (an adapter trained
            on an int8 base goes on after quantising, any other before).

    Raises:
        InputError: not a model we can read, no preprocessor, another number of classes, or an
            adapter that does not fit.
        SettingError: a preset that cannot be loaded, a sequence length above the maximum.
    """
    if source is None:
        model = build_classifier(None, num_classes, sequence_length, dropout, **config)
    elif Path(source).suffix == ".keras" or Path(source).is_file():
        path = Path(source)
        if path.suffix != ".keras":
            raise InputError(f"{path}: expected a .keras file or a model folder")
        model = load_model(path)
        if getattr(model, "preprocessor", None) is None:
            raise InputError(f"{path}: not a QQP classifier with a preprocessor (tokenizer)")
        if getattr(model, "num_classes", None) != num_classes:
            raise InputError(f"{path}: the model has {getattr(model, 'num_classes', '?')} "
                             f"outputs, not {num_classes}")
    elif not config and is_hf_checkpoint(Path(source).expanduser()):
        model, _ = load_hf_classifier(source, sequence_length, dropout, num_classes)
    else:
        model = build_classifier(str(source), num_classes, sequence_length, dropout, **config)
    early = quantize is not None and (adapter is None or (
        not is_peft_adapter(adapter) and adapter_quantization(adapter) == quantize))
    if early:
        ensure_quantized(model, quantize)
    if adapter is not None:
        if is_peft_adapter(adapter):
            load_peft_adapter(model, adapter)
        else:
            load_adapter(model, adapter)
    if quantize is not None and not early:
        ensure_quantized(model, quantize)
    return model
