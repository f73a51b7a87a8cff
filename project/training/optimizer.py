"""The fine-tuning optimizer both QQP modes train with, as Hugging Face's Trainer sets it up:
AdamW with a linear learning-rate schedule (optional warm-up), no weight decay on biases and
layer-norm weights, and gradient clipping at a global norm.

Example:

>>> opt = fine_tuning_optimizer(3e-4, total_steps=1000, warmup_ratio=0.06, weight_decay=0.1)
>>> float(opt.learning_rate), opt.global_clipnorm    # step 0 of the warm-up; clipping at 1
(0.0, 1.0)
"""

from __future__ import annotations

import math

import keras

from project.keras_internals import clip_summed_gradients


@keras.saving.register_keras_serializable(package="project")
class LinearWarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Hugging Face's linear schedule: 0 -> ``peak`` over ``warmup_steps``, then down to 0 at
    ``total_steps`` (``get_linear_schedule_with_warmup``; with no warm-up it starts at ``peak``).

    Steps are optimizer updates. Keras calls a schedule with its micro-step counter, which with
    gradient accumulation advances ``accumulation`` times per update; the schedule divides it
    back, so K accumulated batches of B follow the same learning rates as batches of K·B.
    """

    def __init__(self, peak: float, total_steps: int, warmup_steps: int = 0,
                 accumulation: int = 1):
        self.peak = float(peak)
        self.total_steps, self.warmup_steps = int(total_steps), int(warmup_steps)
        self.accumulation = int(accumulation)

    def __call__(self, step):
        step = keras.ops.cast(keras.ops.floor_divide(step, self.accumulation), "float32")
        warm = step / max(self.warmup_steps, 1)
        decay = (self.total_steps - step) / max(self.total_steps - self.warmup_steps, 1)
        factor = keras.ops.where(step < self.warmup_steps, warm, decay)
        return self.peak * keras.ops.maximum(factor, 0.0)

    def get_config(self):
        return {"peak": self.peak, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "accumulation": self.accumulation}


def fine_tuning_optimizer(
    learning_rate: float,
    total_steps: int,
    warmup_ratio: float = 0.0,
    weight_decay: float = 0.0,
    clip_norm: float = 1.0,
    grad_accum: int = 1,
) -> keras.optimizers.AdamW:
    """AdamW as Hugging Face's Trainer sets it up: epsilon 1e-8, peak ``learning_rate`` with
    linear decay over ``total_steps`` updates (those that happen:
    :meth:`project.training.distribution.Scaling.updates`) after ``ceil(warmup_ratio x
    total_steps)`` warm-up updates, no weight decay on biases and layer-norm weights, the whole
    batch's gradient clipped to a global norm of ``clip_norm`` (0: off) on every engine
    (:func:`project.keras_internals.clip_summed_gradients`), ``grad_accum`` batches per update.
    """
    schedule = LinearWarmupDecay(learning_rate, total_steps,
                                 math.ceil(total_steps * warmup_ratio), accumulation=grad_accum)
    optimizer = keras.optimizers.AdamW(
        learning_rate=schedule, weight_decay=weight_decay, epsilon=1e-8,
        global_clipnorm=clip_norm or None,
        gradient_accumulation_steps=grad_accum if grad_accum > 1 else None,
    )
    optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
    return clip_summed_gradients(optimizer)
