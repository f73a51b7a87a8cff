"""How a run uses precision and devices: one :class:`Scaling` plan per run, from :func:`setup`
(called first by both experiments, before any data is read), passed explicitly to everything
that trains, evaluates or writes.

The README's "Scaling up" says what each setting does on each backend. In short:
``--distribute data`` is a ``keras.distribution.DataParallel`` under JAX, a
``tf.distribute.MirroredStrategy`` (synchronised batch normalisation) under TensorFlow, and one
process per device under torch (started by ``torchrun``; :mod:`project.training.torch_step`
averages their gradients). ``--batch-size`` is the global batch of one step and must divide by
the devices; under JAX and torch each process feeds its slice of every global batch
(:func:`shard_rows`), the last partial batch cut to a multiple of the devices, and
:meth:`Scaling.updates` counts the updates that happen. Process 0 (:attr:`Scaling.chief`) alone
writes the run folder. ``--grad-accum K`` is the optimizer's ``gradient_accumulation_steps``.

Example:

>>> plan = Scaling(backend="jax", precision="mixed_bfloat16", distribute="data", devices=4)
>>> plan.summary()["devices"], plan.chief
(4, True)
>>> rows, step = shard_rows(range(10), batch_size=4, devices=2, processes=2, process_id=1)
>>> rows.tolist(), step                      # process 1's half of every global batch of 4
([2, 3, 6, 7, 9], 2)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools

from project import keras_internals, settings
from project.errors import SettingError
from project.training import precision as precisions
from project.training.devices import TORCHRUN, ProcessGroup, join, join_torch, process_group


@dataclasses.dataclass(frozen=True)
class Scaling:
    """What a run does with precision and devices (see the module docstring). ``devices``
    share each batch (all processes together); ``engine`` is the backend's data-parallel object
    (JAX DataParallel, TF MirroredStrategy) made by :func:`setup`, None on one device."""

    backend: str
    precision: str = "float32"
    distribute: str = "none"
    grad_accum: int = 1
    devices: int = 1
    processes: int = 1
    process_id: int = 0
    engine: object = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def chief(self) -> bool:
        """Whether this process writes the run folder."""
        return self.process_id == 0

    def summary(self) -> dict:
        """What ``metrics.json`` records about it."""
        return {"precision": self.precision, "distribute": self.distribute,
                "grad_accum": self.grad_accum, "devices": self.devices,
                "processes": self.processes}

    def describe(self) -> str:
        """One line for the log."""
        where = (f"data parallel over {self.devices} device(s)"
                 + (f" in {self.processes} processes" if self.processes > 1 else "")
                 if self.distribute == "data" else "one device")
        accumulation = (f", gradients accumulated over {self.grad_accum} steps"
                        if self.grad_accum > 1 else "")
        return f"precision {self.precision}, {where}{accumulation}"

    @contextlib.contextmanager
    def scope(self):
        """The run's scope: under JAX data parallelism, the distribution's.

        >>> from project.experiments.config import FraudConfig
        >>> plan = setup(FraudConfig(), backend="tensorflow")
        >>> with plan.scope():                # e.g. train every part of the run
        ...     plan.describe()
        'precision float32, one device'
        """
        if self.backend == "jax" and self.engine is not None:
            with self.engine.scope():
                yield self
        else:
            yield self

    @contextlib.contextmanager
    def model_scope(self):
        """Build and compile the model inside this block: the plan's dtype policy, and under
        TensorFlow data parallelism the strategy's scope (the model then trains on its replicas).

        >>> import keras
        >>> from project.models.convnet import build_convnet, compile_convnet
        >>> plan = Scaling(backend=keras.backend.backend(), precision="mixed_bfloat16")
        >>> with plan.model_scope():
        ...     model = compile_convnet(plan.prepare(build_convnet()), grad_accum=2)
        >>> model.get_layer("conv1").compute_dtype, model.get_layer("conv1").kernel.dtype
        ('bfloat16', 'float32')
        >>> outputs = model(keras.ops.zeros((2, 29)))   # the output layer computes in float32
        >>> keras.backend.standardize_dtype(outputs.dtype)
        'float32'
        """
        with contextlib.ExitStack() as stack:
            stack.enter_context(precisions.dtype_policy(self.precision))
            if self.backend == "tensorflow" and self.engine is not None:
                stack.enter_context(self.engine.scope())
            yield

    def prepare(self, model):
        """Adapt a freshly built model to the plan; returns it: under mixed precision the output
        layer computes in float32; under TensorFlow data parallelism batch normalisation is
        synchronised (the global batch's statistics, as on one device)."""
        import keras

        precisions.prepare(model, self.precision)
        if self.backend == "tensorflow" and self.distribute == "data" and self.devices > 1:
            for layer in keras_internals.all_layers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        return model

    def epoch_rows(self, order, batch_size: int):
        """An epoch's rows and per-step batch as this process feeds them: :func:`shard_rows`
        under JAX or torch data parallelism, unchanged otherwise."""
        if self.distribute != "data" or self.backend not in ("jax", "torch"):
            return order, batch_size
        return shard_rows(order, batch_size, self.devices, self.processes, self.process_id)

    def steps_per_epoch(self, rows: int, batch_size: int) -> int:
        """Steps (batches) one epoch of ``rows`` training rows feeds this process
        (:func:`shard_rows` cuts the last partial batch under data parallelism).

        >>> Scaling("jax", distribute="data", devices=2).steps_per_epoch(257, 64)
        4
        >>> Scaling("tensorflow").steps_per_epoch(257, 64)
        5
        """
        import numpy as np

        order, step = self.epoch_rows(np.arange(int(rows)), batch_size)
        return -(-len(order) // step)

    def updates(self, rows: int, batch_size: int, epochs: int) -> int:
        """Optimizer updates in a run: the steps that happen, divided by the accumulation (Keras
        counts steps across ``fit`` calls, so across epoch ends).

        >>> Scaling("jax", distribute="data", devices=2, grad_accum=2).updates(257, 64, 3)
        6
        """
        return int(epochs) * self.steps_per_epoch(rows, batch_size) // self.grad_accum

    def fit_inputs(self, x):
        """``x`` as ``fit`` takes it: under TensorFlow data parallelism, boolean arrays (e.g. a
        padding mask) become int32, because Keras averages the first batch across replicas
        before training and TensorFlow cannot add booleans."""
        if self.backend != "tensorflow" or self.distribute != "data":
            return x
        def cast(a):
            return a.astype("int32") if a.dtype == bool else a
        return {k: cast(v) for k, v in x.items()} if isinstance(x, dict) else cast(x)

    @contextlib.contextmanager
    def training_inputs(self):
        """Inside the block (``fit``), JAX data parallelism splits inputs along the batch axis;
        outside it, inputs are replicated (predictions)."""
        if self.backend != "jax" or self.engine is None:
            yield
            return
        self.engine.shard_inputs = True
        try:
            yield
        finally:
            self.engine.shard_inputs = False


def setup(config, backend: str | None = None) -> Scaling:
    """Check ``config``'s ``precision``, ``distribute``, ``grad_accum`` and ``batch_size``
    against this machine and ``backend`` (default: Keras's), join the other processes of a
    multi-process run, and return the run's :class:`Scaling`. Call it first in a run, before
    reading data: every refusal is one SettingError (InputError: no coordinator in time).
    """
    import keras

    backend = backend or keras.backend.backend()
    precision = settings.choice("precision", config.precision, settings.PRECISIONS)
    distribute = settings.choice("distribute", config.distribute, settings.DISTRIBUTIONS)
    group = process_group()
    if group is not None and distribute != "data":
        raise SettingError(
            f"this process is {group.index} of {group.count} ({group.source}) but "
            "{distribute} is none: give {distribute} data in every process, or unset those "
            "variables")
    if distribute == "data":
        _check_backend_can_distribute(backend, group, int(config.grad_accum))
    if precision == "mixed_float16":
        precisions.check_float16(backend)
    processes, process_id, devices, engine = 1, 0, 1, None
    if distribute == "data" and backend == "torch":
        processes, process_id = torch_processes(group, config.batch_size)
        devices = processes
    elif distribute == "data":
        if group is not None:
            join(group)
            processes, process_id = group.count, group.index
        engine = _make_engine(backend)
        devices = len(_engine_devices(backend))
    _check_divides(config.batch_size, devices)
    return Scaling(backend=backend, precision=precision, distribute=distribute,
                   grad_accum=int(config.grad_accum), devices=devices, processes=processes,
                   process_id=process_id, engine=engine)


def _check_divides(batch_size: int, devices: int) -> None:
    if batch_size % devices:
        raise SettingError(f"{{batch_size}} {batch_size} does not divide by the {devices} devices "
                           f"of {{distribute}} data: it is the global batch, give a multiple of "
                           f"{devices}")


def _check_backend_can_distribute(backend: str, group: ProcessGroup | None, grad_accum) -> None:
    if backend == "torch" and group is not None and group.source == "TF_CONFIG":
        raise SettingError("TF_CONFIG describes TensorFlow workers: start the processes of a "
                           "torch run with torchrun --nproc-per-node N SCRIPT --backend torch "
                           "{distribute} data ...")
    if backend != "torch" and group is not None and group.source == TORCHRUN:
        raise SettingError(f"torchrun's processes ({group.source}) need {{backend}} torch "
                           "(several processes under JAX: KERAS_DISTRIBUTION_*)")
    if backend == "tensorflow" and group is not None:
        raise SettingError(
            f"several processes ({group.source}) need " + "{backend} jax, or {backend} torch "
            "under torchrun: Keras 3's TensorFlow trainer cannot train with "
            "MultiWorkerMirroredStrategy (keras-team/keras#20585)")
    if backend == "tensorflow" and grad_accum > 1:
        raise SettingError(
            "{grad_accum} " + str(grad_accum) + " with {distribute} data needs {backend} jax "
            "or torch: Keras's TensorFlow optimizer cannot accumulate gradients under "
            "MirroredStrategy (its update is a synchronisation point inside a conditional, "
            "which tf.distribute refuses)")


def torch_processes(group: ProcessGroup | None, batch_size: int) -> tuple[int, int]:
    """``(processes, this one)`` of ``--distribute data`` under torch, one process per device,
    joined by :func:`~project.training.devices.join_torch` once the batch is checked. Without a
    process group (no torchrun): one process, refused with how to launch if there are more GPUs.
    """
    if group is None:
        gpus = _local_gpus()
        if gpus > 1:
            raise SettingError(
                f"{{distribute}} data under {{backend}} torch runs one process per GPU ({gpus} "
                f"here): launch with torchrun --nproc-per-node {gpus} SCRIPT --backend torch "
                "{distribute} data ...")
        return 1, 0
    _check_divides(batch_size, group.count)
    join_torch(group)
    return group.count, group.index


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _engine_devices(backend: str) -> list:
    """The devices data parallelism uses: every GPU (or TPU) of the run, else every CPU."""
    if backend == "jax":
        import keras

        return keras.distribution.list_devices()
    import tensorflow as tf

    return [d.name for d in (tf.config.list_logical_devices("GPU")
                             or tf.config.list_logical_devices("CPU"))]


def _make_engine(backend: str):
    """The backend's data-parallel object over every local device."""
    if backend == "tensorflow":
        return _mirrored_strategy(tuple(_engine_devices("tensorflow")))
    import jax
    import keras

    class DataParallel(keras.distribution.DataParallel):
        """Keras's DataParallel whose inputs are split only while training
        (:meth:`Scaling.training_inputs`); predictions run on replicated inputs (any batch size,
        and every process gets every prediction)."""

        shard_inputs = False

        def get_data_layout(self, data_shape):
            if self.shard_inputs:
                return super().get_data_layout(data_shape)
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)

    # Each process feeds its own slice of every global batch (see fit_epoch / shard_rows).
    return DataParallel(devices=keras.distribution.list_devices(),
                        auto_shard_dataset=jax.process_count() == 1)


@functools.cache
def _mirrored_strategy(devices: tuple):
    """One ``MirroredStrategy`` per device set and process: a second strategy over the same
    devices reuses the first one's collective keys and meets its cached shapes ("Shape mismatch
    in the collective instance"). It holds no setting of ours."""
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=list(devices))


def shard_rows(order, batch_size: int, devices: int = 1, processes: int = 1,
               process_id: int = 0):
    """``(rows, step_batch)``: the epoch's row ``order`` as process ``process_id`` feeds it under
    data parallelism, and its rows per step. The last, partial global batch is cut to a multiple
    of ``devices``; with several processes each takes its slice (the ``i``-th of ``processes``
    equal parts) of every global batch of ``batch_size``.
    """
    import numpy as np

    order = np.asarray(order)
    full = len(order) // batch_size * batch_size
    rest = (len(order) - full) // devices * devices
    order = order[:full + rest]
    if processes == 1:
        return order, batch_size
    local = batch_size // processes
    mine = order[:full].reshape(-1, batch_size)[:, process_id * local:(process_id + 1) * local]
    tail = order[full:].reshape(processes, -1)[process_id] if rest else order[:0]
    return np.concatenate([mine.reshape(-1), tail]), local
