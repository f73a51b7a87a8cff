"""Per-epoch checkpoints: everything needed to continue a killed run exactly where it stopped.

One file, ``checkpoint.safetensors``, rewritten atomically at every epoch end, holds every
variable of the model (dropout seed states included) and of its optimizer, the best epoch's
``model.weights``, and a JSON record (the safetensors metadata: epochs done, history, best epoch,
seconds, the training data's identity). Data order and PyTorch's generator come from
``(seed, epoch)`` alone (:mod:`project.training.loop`), so no other state needs saving.

>>> import tempfile, numpy as np
>>> from project.models.convnet import build_convnet, compile_convnet
>>> model = compile_convnet(build_convnet())
>>> path = tempfile.mkdtemp() + "/checkpoint.safetensors"
>>> _ = save_checkpoint(path, model, {"epochs_done": 3}, best_weights=model.get_weights())
>>> other = compile_convnet(build_convnet())     # another initialisation
>>> state, best = load_checkpoint(path, other)
>>> state["epochs_done"], all(np.array_equal(a, b)
...                           for a, b in zip(other.get_weights(), model.get_weights()))
(3, True)
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import numpy as np

from project.errors import InputError
from project.io import atomic_path

FORMAT = 1


def _arrays(prefix: str, variables) -> dict:
    from keras import ops

    return {f"{prefix}/{i:05d}": np.array(ops.convert_to_numpy(v), order="C")
            for i, v in enumerate(variables)}


def _optimizer_variables(model) -> list:
    optimizer = model.optimizer
    if not optimizer.built:
        # Under a tf.distribute strategy the optimizer's variables are made in its scope.
        strategy = getattr(model, "distribute_strategy", None)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            optimizer.build(model.trainable_variables)
    return list(optimizer.variables)


def save_checkpoint(path, model, state: dict, best_weights: list | None) -> Path:
    """Write the model, its optimizer, ``best_weights`` (NumPy copies of ``model.weights``, or
    None) and the JSON-serialisable ``state`` to ``path``, atomically."""
    from safetensors.numpy import save_file

    tensors = {**_arrays("model", model.variables),
               **_arrays("optimizer", _optimizer_variables(model))}
    if best_weights is not None:
        tensors.update({f"best/{i:05d}": np.array(w, order="C")
                        for i, w in enumerate(best_weights)})
    metadata = {"format": str(FORMAT), "state": json.dumps(state)}
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=metadata)
    return Path(path)


def read_state(path) -> dict:
    """The JSON record of a checkpoint, without loading any tensor (InputError: missing,
    truncated or not a checkpoint of ours)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        with safe_open(str(path), framework="numpy") as f:
            metadata = f.metadata() or {}
        if metadata.get("format") != str(FORMAT) or "state" not in metadata:
            raise ValueError("not a checkpoint written by project")
        return json.loads(metadata["state"])
    except Exception as err:  # safetensors raises several types for a damaged file
        reason = (str(err).strip() or type(err).__name__).splitlines()[0][:160]
        raise InputError(f"{path}: damaged or not a checkpoint ({reason})") from None


def load_checkpoint(path, model) -> tuple[dict, list | None]:
    """Restore the model's and optimizer's variables from ``path``; return (state, best weights).
    Everything is checked before anything is assigned, so a checkpoint that does not match
    (InputError: damaged, or for another model or optimizer) leaves the model untouched."""
    from safetensors import safe_open

    state = read_state(path)
    try:
        with safe_open(str(path), framework="numpy") as f:
            tensors = {key: f.get_tensor(key) for key in f.keys()}
    except Exception as err:
        reason = (str(err).strip() or type(err).__name__).splitlines()[0][:160]
        raise InputError(f"{path}: damaged checkpoint ({reason})") from None

    def group(prefix):
        keys = sorted(k for k in tensors if k.startswith(prefix + "/"))
        return [tensors[k] for k in keys]

    plan = []
    for prefix, variables in (("model", list(model.variables)),
                              ("optimizer", _optimizer_variables(model))):
        saved = group(prefix)
        if len(saved) != len(variables):
            raise InputError(f"{path}: written for another model ({len(saved)} {prefix} "
                             f"variables, this one has {len(variables)})")
        for variable, value in zip(variables, saved):
            if tuple(value.shape) != tuple(variable.shape):
                raise InputError(f"{path}: {prefix} variable {variable.path} has shape "
                                 f"{value.shape} in the checkpoint, {tuple(variable.shape)} in "
                                 "this model")
            plan.append((variable, value))
    for variable, value in plan:
        variable.assign(value)
    best = group("best") or None
    if best is not None and len(best) != len(model.weights):
        raise InputError(f"{path}: best weights do not match this model")
    return state, best
