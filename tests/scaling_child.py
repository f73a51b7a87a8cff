"""Run by tests/test_scaling_processes.py in a fresh interpreter: data parallelism on several
virtual CPU devices, which must be set up before JAX or TensorFlow starts.

    python -m tests.scaling_child DEVICES OUT_DIR DATA_CSV

``KERAS_BACKEND`` picks the backend; under JAX the parent sets ``XLA_FLAGS``; under TensorFlow
this script splits the CPU into DEVICES logical devices. Prints one JSON object on the last
line of stdout.
"""

import json
import os
import sys

# One intra-op thread, as in the test suite (a shared 2-core machine).
os.environ.setdefault("OMP_NUM_THREADS", "1")


def _split_cpu(devices: int) -> None:
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * devices)


def main(devices: int, out: str, data: str) -> dict:
    if os.environ["KERAS_BACKEND"] == "tensorflow":
        _split_cpu(devices)
    import keras
    import numpy as np

    from project.backend import seed_everything
    from project.errors import InputError
    from project.experiments import fraud, qqp
    from project.experiments.config import FraudConfig, QQPConfig
    from project.models import convnet
    from project.training import distribution
    from project.training.loop import train

    backend = keras.backend.backend()
    found = {"backend": backend}
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 29)).astype("float32")  # 4 batches of 64, then 44 rows
    y = (x[:, :1] + 0.5 * rng.normal(size=(300, 1)) > 1).astype("float32")

    def fit(plan, epochs, checkpoint):
        with plan.scope():
            seed_everything(0)
            with plan.model_scope():
                model = convnet.build_convnet()
                for layer in model.layers:  # dropout off: masks are drawn per replica
                    if isinstance(layer, keras.layers.Dropout):
                        layer.rate = 0.0
                convnet.compile_convnet(plan.prepare(model), 1e-3)
            train(model, x, y, validate=lambda m: {"val_loss": float(np.mean(
                      m.predict(x[:77], batch_size=50, verbose=0)))},  # batches of 50 and 27
                  epochs=epochs, batch_size=64, seed=0, monitor="val_loss",
                  checkpoint=checkpoint, data_id="x", verbose=0, plan=plan)
            weights = [keras.ops.convert_to_numpy(w) for w in model.weights]
            return weights, model.predict(x[:77], batch_size=50, verbose=0)

    one = distribution.Scaling(backend)
    several = distribution.setup(FraudConfig(distribute="data", batch_size=64))
    found["devices"] = several.devices
    w1, p1 = fit(one, 2, f"{out}/one.safetensors")
    w2, p2 = fit(several, 2, f"{out}/several.safetensors")
    found["weights_max_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(w1, w2))
    found["predictions_max_diff"] = float(np.abs(p1 - p2).max())
    # Resume on several devices: one epoch, then a fresh model continues from the checkpoint.
    fit(several, 1, f"{out}/resumed.safetensors")
    w3, _ = fit(several, 2, f"{out}/resumed.safetensors")
    found["resume_max_diff"] = max(float(np.abs(a - b).max()) for a, b in zip(w2, w3))

    try:
        distribution.setup(FraudConfig(distribute="data", batch_size=devices * 32 + 1))
    except InputError as err:
        found["indivisible"] = str(err)

    # The whole experiment: data parallel, bfloat16, uneven splits and batches.
    config = FraudConfig(data=data, epochs=1, batch_size=64, baselines=False,
                         precision="mixed_bfloat16", distribute="data").validate()
    result = fraud.run(config, f"{out}/fraud", verbose=0, log=lambda line: None)
    found["run_devices"] = result.to_dict()["config"]["devices"]
    found["run_val_ap"] = result.runs[0].val.average_precision
    saved = keras.saving.load_model(f"{out}/fraud/none/model.keras")
    found["saved_policies"] = sorted({layer.dtype_policy.name for layer in saved.layers})
    found["saved_synchronized"] = any(getattr(layer, "synchronized", False)
                                      for layer in saved.layers)

    # QQP's dict inputs (token ids and a boolean padding mask) on the same devices.
    config = QQPConfig(epochs=1, fraction=0.05, modes=("lora",), batch_size=8,
                       distribute="data").resolve()
    result = qqp.run(config, f"{out}/qqp", verbose=0, log=lambda line: None)
    found["qqp_devices"] = result.to_dict()["config"]["devices"]
    found["qqp_loss"] = result.runs[0].training.history["loss"][0]
    return found


if __name__ == "__main__":
    print(json.dumps(main(int(sys.argv[1]), sys.argv[2], sys.argv[3])))
