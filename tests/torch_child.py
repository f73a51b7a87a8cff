"""Run by tests/test_scaling_processes.py under torchrun (two gloo processes on 127.0.0.1):

    python -m torch.distributed.run --nproc-per-node 2 ... -m tests.torch_child OUT DATA_CSV

Each process joins the run (``distribution.setup``), trains the ConvNet with dropout off (batch
norm on, synchronised) on its half of every global batch, resumes from process 0's checkpoint,
then runs ``scripts/fraud.py --distribute data`` and resumes that run. Process 0 alone writes:
the run folder, and OUT/weights.npz and one JSON object on the last line of its stdout.
"""

import json
import sys

import numpy as np


def data():
    """300 rows: 4 global batches of 64, then 44 (22 per process)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 29)).astype("float32")
    y = (x[:, :1] + 0.5 * rng.normal(size=(300, 1)) > 1).astype("float32")
    return x, y


def fit(plan, epochs: int, checkpoint) -> list:
    """The ConvNet without dropout, trained by ``plan``'s processes; its weights."""
    import keras

    from project.backend import seed_everything
    from project.models import convnet
    from project.training.loop import train

    x, y = data()
    seed_everything(0)
    model = convnet.build_convnet()
    for layer in model.layers:
        if isinstance(layer, keras.layers.Dropout):
            layer.rate = 0.0
    convnet.compile_convnet(plan.prepare(model), 1e-3)
    result = train(model, x, y, validate=lambda m: {"val_loss": float(np.mean(
                       m.predict(x[:77], batch_size=50, verbose=0)))},
                   epochs=epochs, batch_size=64, seed=0, monitor="val_loss",
                   checkpoint=checkpoint, data_id="x", verbose=0, plan=plan)
    return [keras.ops.convert_to_numpy(w) for w in model.weights], result.history["loss"]


def main(out: str, csv: str) -> None:
    import torch.distributed as dist

    from project.experiments.config import FraudConfig
    from project.training import distribution
    from scripts import fraud

    plan = distribution.setup(FraudConfig(distribute="data", batch_size=64))
    weights, losses = fit(plan, 2, f"{out}/whole.safetensors")
    fit(plan, 1, f"{out}/part.safetensors")
    dist.barrier()  # process 0's checkpoint is written before anyone resumes from it
    resumed, _ = fit(plan, 2, f"{out}/part.safetensors")
    found = {"processes": plan.processes, "devices": plan.devices, "chief": plan.chief,
             "losses": losses,
             "resume_max_diff": max(float(np.abs(a - b).max()) for a, b in zip(weights, resumed))}

    common = ["--data", csv, "--epochs", "2", "--batch-size", "64", "--no-baselines",
              "--verbose", "2", "--distribute", "data"]
    found["run_code"] = fraud.main([*common, "--out", f"{out}/run"])
    dist.barrier()  # process 0 has written the run before it is resumed
    found["resume_code"] = fraud.main(["--resume", f"{out}/run", "--distribute", "data"])
    if plan.chief:
        np.savez(f"{out}/weights.npz", *weights)
        print(json.dumps(found), flush=True)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
