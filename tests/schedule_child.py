"""Run by tests/test_schedule.py, in a fresh interpreter where there are several devices:
gradient clipping and the learning-rate schedule on one device and on DEVICES devices.

    python -m tests.schedule_child DEVICES

``KERAS_BACKEND`` picks the backend; under JAX the parent sets ``XLA_FLAGS``; under TensorFlow
this script splits the CPU into DEVICES logical devices (DEVICES 1: one device only, in any
process). Prints one JSON object on the last line of stdout.
"""

import json
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")

ROWS, BATCH, EPOCHS = 257, 64, 3  # 4 full batches and 1 row: on 2 JAX devices that row is cut


def _split_cpu(devices: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def one_weight(plan, clip_summed: bool) -> float:
    """One weight w = 1, MSE, SGD lr 1, global_clipnorm 1, one batch of two rows x = 1, y = 3:
    the whole batch's gradient is -4, clipped to -1, so w = 2 (per replica: -1 each, w = 3)."""
    import keras
    import numpy as np

    from project.keras_internals import clip_summed_gradients

    with plan.scope(), plan.model_scope():
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(
            1, use_bias=False, kernel_initializer="ones")])
        optimizer = keras.optimizers.SGD(1.0, global_clipnorm=1.0)
        model.compile(clip_summed_gradients(optimizer) if clip_summed else optimizer, "mse")
    with plan.scope(), plan.training_inputs():
        model.fit(np.ones((2, 1), "float32"), np.full((2, 1), 3.0, "float32"), batch_size=2,
                  epochs=1, shuffle=False, verbose=0)
    return float(keras.ops.convert_to_numpy(model.weights[0]).reshape(-1)[0])


def fine_tuned(plan, clip_norm: float, grad_accum: int = 1, rows: int = 256) -> dict:
    """A small dense model trained with the fine-tuning optimizer (AdamW, 25% warm-up, linear
    decay, clipping) for EPOCHS epochs; its weights and the learning rate of every update."""
    import keras
    import numpy as np

    from project.backend import seed_everything
    from project.training.loop import fit_epoch
    from project.training.optimizer import fine_tuning_optimizer

    class Rates(keras.callbacks.Callback):
        """The learning rate of each update that happens (read before its step)."""

        def __init__(self):
            super().__init__()
            self.rates = []

        def _now(self):
            optimizer = self.model.optimizer
            return (int(keras.ops.convert_to_numpy(optimizer.iterations)),
                    float(keras.ops.convert_to_numpy(optimizer.learning_rate)))

        def on_train_batch_begin(self, batch, logs=None):
            self.before = self._now()

        def on_train_batch_end(self, batch, logs=None):
            if self._now()[0] > self.before[0]:
                self.rates.append(self.before[1])

    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 29)).astype("float32")
    y = (x[:, :1] + 0.5 * rng.normal(size=(rows, 1)) > 0.5).astype("float32")
    updates = plan.updates(rows, BATCH, EPOCHS)
    rates = Rates()
    with plan.scope():
        seed_everything(0)
        with plan.model_scope():
            model = keras.Sequential([keras.Input((29,)), keras.layers.Dense(8, activation="relu"),
                                      keras.layers.Dense(1, activation="sigmoid")])
            model.compile(fine_tuning_optimizer(0.05, updates, warmup_ratio=0.25,
                                                weight_decay=0.01, clip_norm=clip_norm,
                                                grad_accum=grad_accum),
                          loss="binary_crossentropy")
        for epoch in range(EPOCHS):
            fit_epoch(model, x, y, batch_size=BATCH, epoch=epoch, seed=3, plan=plan,
                      callbacks=[rates])
    return {"weights": [keras.ops.convert_to_numpy(w).tolist() for w in model.weights],
            "updates": updates, "rates": rates.rates}


def main(devices: int) -> dict:
    backend = os.environ["KERAS_BACKEND"]
    if backend == "tensorflow" and devices > 1:
        _split_cpu(devices)
    from project.errors import InputError
    from project.experiments.config import FraudConfig
    from project.training import distribution

    one = distribution.Scaling(backend)
    found = {"backend": backend, "one_weight": {"one": one_weight(one, False)}}
    # One device: accumulation over 2 steps, 5 steps per epoch (the last one of a row).
    found["one_device"] = fine_tuned(distribution.Scaling(backend, grad_accum=2), 0.05, 2, ROWS)
    if devices == 1:
        return found
    several = distribution.setup(FraudConfig(distribute="data", batch_size=BATCH))
    found["devices"] = several.devices
    found["one_weight"].update(several=one_weight(several, False),
                               several_summed=one_weight(several, True))
    # A clip that cuts: one device and several give the same weights.
    for name, plan in (("one", one), ("several", several)):
        found[f"clipped_{name}"] = fine_tuned(plan, 0.05)["weights"]
    found["unclipped_several"] = fine_tuned(several, 0.0)["weights"]
    # The schedule on several devices, with accumulation where the backend can.
    try:
        accumulating = distribution.setup(FraudConfig(distribute="data", batch_size=BATCH,
                                                      grad_accum=2))
        found["several_devices"] = fine_tuned(accumulating, 0.05, 2, ROWS)
    except InputError as err:  # TensorFlow: Keras cannot accumulate under MirroredStrategy
        found["accumulation_refused"] = str(err)
        found["several_devices"] = fine_tuned(several, 0.05, 1, ROWS)
    return found


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]))))
