"""Analytic matmul FLOPs of one RoBERTa (encoder) training step, full fine-tuning or LoRA, for
model FLOPs utilisation (MFU). Only matrix products count (nearly all the work); embeddings,
layer norms, softmax and the classification head are left out.

Forward, per sequence of T tokens, per layer with hidden size h and feed-forward size f:

* weights: ``2 T (4 h^2 + 2 h f)`` (query, key, value, attention output; two feed-forward);
* attention: ``4 T^2 h`` (scores Q K^T and the weighted sum of V);
* a LoRA branch per target: ``2 T (h r + r h)``; per-head LoRA (A: h x heads x r):
  ``2 T (h heads r + r h)``.

A training step is forward plus backward: 3x the forward in full fine-tuning; with LoRA 2x for
the frozen weights (input gradients only), 3x for attention and the branch. At T = 128 a LoRA
step needs about 0.68 of a full step's FLOPs at RoBERTa-base and -large dimensions.

Example:

>>> base = dict(num_layers=12, hidden_dim=768, intermediate_dim=3072, num_heads=12)
>>> full = train_step_flops(base, batch=8, length=128, lora=False)
>>> round(full / 1e12, 2)                                 # TFLOP per step
0.54
>>> round(train_step_flops(base, 8, 128, lora=True) / full, 2)
0.68
"""

from __future__ import annotations


def train_step_flops(dims: dict, batch: int, length: int, lora: bool, rank: int = 8,
                     targets: int = 3, style: str = "matrix") -> float:
    """Matmul FLOPs of one training step (see the module docstring) for the encoder ``dims``
    (``num_layers``, ``hidden_dim``, ``intermediate_dim``, and ``num_heads`` for per-head LoRA),
    ``batch`` sequences of ``length`` tokens; LoRA of ``rank`` on ``targets`` projections per
    layer, or full fine-tuning."""
    h, layers, inner = dims["hidden_dim"], dims["num_layers"], dims["intermediate_dim"]
    weights = 2.0 * layers * (4 * h * h + 2 * h * inner) * batch * length  # forward pass
    attention = 4.0 * layers * length * length * h * batch
    if not lora:
        return 3.0 * (weights + attention)
    a_out = rank * (dims["num_heads"] if style == "per-head" else 1)
    branch = 2.0 * layers * targets * (h * a_out + rank * h) * batch * length
    return 2.0 * weights + 3.0 * attention + 3.0 * branch
