"""How a run uses precision and devices: dtype policy, data parallelism, several hosts, and
gradient accumulation's batch arithmetic.

One :class:`Scaling` per run, from :func:`setup` (called first thing by both experiments, before
any data is read), says what the run does:

* **precision** (``--precision``): a Keras dtype policy. ``mixed_bfloat16`` and ``mixed_float16``
  keep every variable in float32 and compute in the half type; the model's output layer
  computes in float32 (:meth:`Scaling.prepare`), as Keras's mixed-precision guide advises, so
  probabilities and logits are not rounded to 8 or 11 bits. Under ``mixed_float16`` Keras's
  ``compile`` wraps the optimizer in a ``LossScaleOptimizer`` (dynamic loss scaling); its
  variables are part of the checkpoint like any optimizer's. float16 needs a GPU with float16
  arithmetic (compute capability 5.3 or later): anywhere else it is refused, use
  ``mixed_bfloat16``. The saved ``.keras`` file carries float32 policies
  (:func:`save_model`), so it evaluates in float32 on any backend.
* **data parallelism** (``--distribute data``): under JAX a ``keras.distribution.DataParallel``
  over every device (global batch split along the batch axis; batch-norm statistics and
  gradients are those of the whole batch, so N devices train the same model as one); under
  TensorFlow a ``tf.distribute.MirroredStrategy`` over the local GPUs (or logical CPUs), with
  synchronised batch normalisation for the same reason. ``--batch-size`` is the global batch
  of one step; it must divide by the device count. Under JAX the last, partial batch of an
  epoch is cut to a multiple of the device count (at most N-1 rows of that epoch's order are
  skipped that epoch; TensorFlow splits uneven batches itself), and predictions run on
  replicated inputs (every device sees the whole batch), which accepts any batch size.
  The torch backend has no Keras data parallelism: one clear line says what to use.
* **several hosts**: the same ``--distribute data`` in every process, under JAX, with Keras's
  own environment variables (what ``keras.distribution.initialize`` reads)::

      KERAS_DISTRIBUTION_JOB_ADDRESSES=10.0.0.1:1234   # the coordinator (process 0), or all
      KERAS_DISTRIBUTION_NUM_PROCESSES=2
      KERAS_DISTRIBUTION_PROCESS_ID=0                   # 1 on the second host
      PROJECT_DISTRIBUTION_TIMEOUT=300                  # seconds to wait for the others

  Each process feeds its slice of every global batch; process 0 alone writes the run folder
  (:func:`project.io.set_writer`): the others compute the same things and write nothing, and
  on ``--resume`` read process 0's checkpoints, so the run folder must be visible to every
  host (a shared file system). A coordinator that does not answer, or processes that do not
  all join within the timeout, end the run with one line and exit code 2. TensorFlow's
  ``MultiWorkerMirroredStrategy`` (``TF_CONFIG``) is refused with one line: Keras 3's
  TensorFlow trainer cannot fit with it (keras-team/keras#20585; ``fit`` reduces a nested
  batch across workers and fails, ``predict`` fails on empty shards).
* **gradient accumulation** (``--grad-accum K``): the optimizer's
  ``gradient_accumulation_steps``; each update averages the gradients of K steps of
  ``--batch-size`` rows, so K x B follows batch K·B (same data, same learning-rate schedule:
  :class:`project.models.roberta.LinearWarmupDecay` counts updates). Exceptions: batch
  normalisation normalises each step's B rows (the ConvNet's BN layers see batches of B, not
  K·B), and Keras counts steps across ``fit`` calls, so when an epoch's steps do not divide by
  K the last update of the epoch also takes the first steps of the next.

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
import json
import os
import socket
import sys
import threading
import time

from project.errors import InputError
from project.experiments.config import DISTRIBUTIONS, PRECISIONS

#: Keras's own variables for a multi-process run (``keras.distribution.initialize`` reads them).
ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
#: Seconds a process waits for the coordinator and for the others to join.
ENV_TIMEOUT = "PROJECT_DISTRIBUTION_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
#: The smallest CUDA compute capability with float16 arithmetic.
FLOAT16_CAPABILITY = (5, 3)


# --- the process group, from the environment (light: no Keras) ---------------------------------


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """The processes of a multi-process run, as the environment describes them.

    Attributes:
        count: number of processes; index: this one (0 is the coordinator and the writer).
        coordinator: ``host:port`` of process 0 (None under ``TF_CONFIG``, which lists all).
        source: the variables it came from, for messages.
    """

    count: int
    index: int
    coordinator: str | None
    source: str


def _int_variable(environ, name: str):
    text = environ.get(name)
    if text is None or not text.strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name}={text!r} is not a whole number") from None


def process_group(environ=None) -> ProcessGroup | None:
    """The multi-process setting of this process, or None for a single process.

    Reads Keras's ``KERAS_DISTRIBUTION_*`` variables, else ``TF_CONFIG``. Raises InputError for
    a setting that cannot be right (a process id out of range, a count below 1, a malformed
    address or ``TF_CONFIG``).

    >>> process_group({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
    ...                "KERAS_DISTRIBUTION_PROCESS_ID": "1",
    ...                "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234"}).index
    1
    >>> process_group({}) is None
    True
    """
    environ = os.environ if environ is None else environ
    count = _int_variable(environ, ENV_PROCESSES)
    index = _int_variable(environ, ENV_PROCESS_ID)
    addresses = (environ.get(ENV_ADDRESSES) or "").strip()
    if count is not None or index is not None or addresses:
        listed = [a.strip() for a in addresses.split(",") if a.strip()]
        if count is None:
            count = len(listed) if len(listed) > 1 else None
        if count is None or index is None or not listed:
            raise InputError(
                f"a multi-process run needs {ENV_ADDRESSES} (the coordinator's host:port), "
                f"{ENV_PROCESSES} and {ENV_PROCESS_ID}; set all three or none"
            )
        if count < 1:
            raise InputError(f"{ENV_PROCESSES}={count}: must be at least 1")
        if not 0 <= index < count:
            raise InputError(f"{ENV_PROCESS_ID}={index}: must be in 0..{count - 1} "
                             f"({ENV_PROCESSES}={count})")
        if len(listed) > 1 and len(listed) != count:
            raise InputError(f"{ENV_ADDRESSES} lists {len(listed)} addresses for {count} "
                             f"processes ({ENV_PROCESSES})")
        _host_port(listed[0], ENV_ADDRESSES)
        if count == 1:
            return None
        return ProcessGroup(count, index, listed[0], "KERAS_DISTRIBUTION_*")
    text = environ.get("TF_CONFIG")
    if text:
        try:
            tf_config = json.loads(text)
            workers = list(tf_config["cluster"].get("worker", []))
            chiefs = list(tf_config["cluster"].get("chief", []))
            task = tf_config["task"]
            kind, task_index = task["type"], int(task["index"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise InputError("TF_CONFIG is not a valid cluster description (JSON with "
                             "cluster.worker and task.type/index)") from None
        count = len(workers) + len(chiefs)
        index = task_index if kind == "chief" else task_index + len(chiefs)
        if count <= 1:
            return None
        return ProcessGroup(count, index, None, "TF_CONFIG")
    return None


def is_chief(environ=None) -> bool:
    """Whether this process writes the run folder: a single process, or process 0 of several.

    Light (reads the environment only), so scripts and :mod:`project.experiments.rundir` can
    ask before Keras is imported.
    """
    try:
        group = process_group(environ)
    except InputError:
        return True  # the run will stop at setup() with the message; nothing is written before
    return group is None or group.index == 0


def _host_port(address: str, where: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{where}: {address!r} is not host:port")
    return host.strip("[]"), int(port)


def _timeout(environ=None) -> float:
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_TIMEOUT)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise InputError(f"{ENV_TIMEOUT}={text!r}: give a number of seconds > 0")
    return value


def wait_for(address: str, timeout: float, where: str = ENV_ADDRESSES) -> None:
    """Wait until ``host:port`` accepts a TCP connection, at most ``timeout`` seconds.

    Raises:
        InputError: no answer in time (one line naming the address and the variable).
    """
    host, port = _host_port(address, where)
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            socket.create_connection((host, port), timeout=max(min(left, 2.0), 0.1)).close()
            return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise InputError(
                f"no answer from the coordinator {address} within {timeout:g} s ({where}; "
                f"start process 0 first, or raise {ENV_TIMEOUT})"
            )
        time.sleep(min(0.25, max(deadline - time.monotonic(), 0)))


# --- the plan --------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Scaling:
    """What a run does with precision and devices (see the module docstring).

    Attributes:
        backend: the Keras backend.
        precision: a Keras dtype policy name (:data:`PRECISIONS`).
        distribute: ``"none"`` or ``"data"``.
        grad_accum: steps whose gradients make one update.
        devices: devices that share each batch (all processes together).
        processes: processes of the run; process_id: this one's.
    """

    backend: str
    precision: str = "float32"
    distribute: str = "none"
    grad_accum: int = 1
    devices: int = 1
    processes: int = 1
    process_id: int = 0

    @property
    def chief(self) -> bool:
        """Whether this process writes the run folder."""
        return self.process_id == 0

    @property
    def mixed(self) -> bool:
        return self.precision != "float32"

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

    def distribution(self):
        """The backend's data-parallel object (JAX DataParallel, TF MirroredStrategy), or None."""
        return _distribution(self.backend) if self.distribute == "data" else None

    @contextlib.contextmanager
    def scope(self):
        """The run's scope: under JAX data parallelism, the distribution's.

        Example:

        >>> from project.experiments.config import FraudConfig
        >>> plan = setup(FraudConfig(), backend="tensorflow")
        >>> with plan.scope():                # e.g. train every part of the run
        ...     plan.describe()
        'precision float32, one device'
        """
        distribution = self.distribution()
        if self.backend == "jax" and distribution is not None:
            with distribution.scope():
                yield self
        else:
            yield self

    @contextlib.contextmanager
    def model_scope(self):
        """Build and compile the model inside this block: the plan's dtype policy, and under
        TensorFlow data parallelism the strategy's scope (the model then trains on its replicas).

        Example:

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
            stack.enter_context(dtype_policy(self.precision))
            distribution = self.distribution()
            if self.backend == "tensorflow" and distribution is not None:
                stack.enter_context(distribution.scope())
            yield

    def prepare(self, model):
        """Adapt a freshly built model to the plan; returns it.

        * mixed precision: the output layer computes in float32 (logits and probabilities keep
          float32 resolution; the loss sees float32);
        * TensorFlow data parallelism over several replicas: batch normalisation is
          synchronised, so its statistics are the global batch's, as on one device.
        """
        import keras

        if self.mixed:
            for layer in _output_layers(model):
                layer.dtype_policy = "float32"
        if self.backend == "tensorflow" and self.distribute == "data" and self.devices > 1:
            for layer in _all_layers(model):
                if isinstance(layer, keras.layers.BatchNormalization):
                    layer.synchronized = True
        return model

    def epoch_rows(self, order, batch_size: int):
        """An epoch's rows and per-step batch as this process feeds them: :func:`shard_rows`
        under JAX data parallelism, unchanged otherwise."""
        if self.distribute != "data" or self.backend != "jax":
            return order, batch_size
        return shard_rows(order, batch_size, self.devices, self.processes, self.process_id)

    def fit_inputs(self, x):
        """``x`` as ``fit`` takes it: under TensorFlow data parallelism, boolean arrays (e.g. a
        padding mask) become int32, because Keras averages the first batch across replicas
        before training and TensorFlow cannot add booleans."""
        if self.backend != "tensorflow" or self.distribute != "data":
            return x
        import numpy as np

        def cast(a):
            return a.astype(np.int32) if np.asarray(a).dtype == bool else a
        return {k: cast(v) for k, v in x.items()} if isinstance(x, dict) else cast(x)

    @contextlib.contextmanager
    def training_inputs(self):
        """Inside the block (``fit``), JAX data parallelism splits inputs along the batch axis;
        outside it, inputs are replicated (predictions)."""
        distribution = self.distribution() if self.backend == "jax" else None
        if distribution is None:
            yield
            return
        distribution.shard_inputs = True
        try:
            yield
        finally:
            distribution.shard_inputs = False


_INITIALIZED: ProcessGroup | None = None  # jax.distributed joins once per process


def _backend() -> str:
    import keras

    return keras.backend.backend()


def setup(config, backend: str | None = None) -> Scaling:
    """Check a configuration's precision and distribution against this machine and backend,
    join the other processes of a multi-process run, and return the run's :class:`Scaling`.

    Call it first in a run, before reading data: every refusal is one line (InputError).
    Processes other than process 0 stop writing files here (:func:`project.io.set_writer`).

    Args:
        config: anything with ``precision``, ``distribute``, ``grad_accum``, ``batch_size``
            (a :class:`~project.experiments.config.FraudConfig` or resolved ``QQPConfig``).
        backend: the Keras backend (default: the one Keras runs).

    Raises:
        InputError: unknown precision or distribution; float16 without a GPU that has it;
            data parallelism the backend cannot do; a batch that does not divide by the
            devices; a multi-process environment without ``--distribute data``; a coordinator
            that does not answer in time.
    """
    from project import io

    backend = backend or _backend()
    precision, distribute = config.precision, config.distribute
    if precision not in PRECISIONS:
        raise InputError(f"unknown --precision {precision!r}: choose one of "
                         f"{', '.join(PRECISIONS)}")
    if distribute not in DISTRIBUTIONS:
        raise InputError(f"unknown --distribute {distribute!r}: choose one of "
                         f"{', '.join(DISTRIBUTIONS)}")
    group = process_group()
    if group is not None and distribute != "data":
        raise InputError(
            f"this process is {group.index} of {group.count} ({group.source}) but --distribute "
            "is none: give --distribute data in every process, or unset those variables"
        )
    if distribute == "data":
        _check_backend_can_distribute(backend, group)
    if precision == "mixed_float16":
        check_float16(backend)
    processes, process_id = 1, 0
    if distribute == "data":
        if group is not None:
            _initialize(group)
            processes, process_id = group.count, group.index
        devices = len(_distribution_devices(backend))
    else:
        devices = 1
    if config.batch_size % devices:
        raise InputError(
            f"--batch-size {config.batch_size} does not divide by the {devices} devices of "
            f"--distribute data: it is the global batch, give a multiple of {devices}"
        )
    io.set_writer(process_id == 0)
    return Scaling(backend=backend, precision=precision, distribute=distribute,
                   grad_accum=int(config.grad_accum), devices=devices, processes=processes,
                   process_id=process_id)


def _check_backend_can_distribute(backend: str, group: ProcessGroup | None) -> None:
    if backend == "torch":
        raise InputError(
            "--distribute data is not available with the torch backend (Keras has no torch "
            "data parallelism): use --backend jax or --backend tensorflow"
        )
    if backend == "tensorflow" and group is not None:
        raise InputError(
            f"several processes ({group.source}) need --backend jax: Keras 3's TensorFlow "
            "trainer cannot train with MultiWorkerMirroredStrategy (keras-team/keras#20585)"
        )


def float16_support(backend: str) -> tuple[bool, str]:
    """Whether the device Keras computes on has float16 arithmetic, and what it is."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform in ("gpu", "cuda", "rocm"):
            capability = getattr(device, "compute_capability", None)
            if capability and device.platform != "rocm":
                major, minor = (int(p) for p in str(capability).split(".")[:2])
                return (major, minor) >= FLOAT16_CAPABILITY, f"GPU {capability}"
            return True, "GPU"
        return False, device.platform.upper()
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if not gpus:
            return False, "CPU"
        details = tf.config.experimental.get_device_details(gpus[0])
        capability = details.get("compute_capability")
        if capability:
            return tuple(capability) >= FLOAT16_CAPABILITY, f"GPU {capability[0]}.{capability[1]}"
        return True, "GPU"
    import torch

    if torch.cuda.is_available():
        capability = torch.cuda.get_device_capability()
        return capability >= FLOAT16_CAPABILITY, f"GPU {capability[0]}.{capability[1]}"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return True, "MPS"
    return False, "CPU"


def check_float16(backend: str) -> None:
    """Refuse ``mixed_float16`` where the device has no float16 arithmetic (a CPU, a TPU, a GPU
    before compute capability 5.3): Keras would emulate it, slower than float32."""
    supported, device = float16_support(backend)
    if not supported:
        raise InputError(
            f"--precision mixed_float16 needs a GPU with float16 arithmetic; this run computes "
            f"on {device}: use --precision mixed_bfloat16 or float32"
        )


def _initialize(group: ProcessGroup) -> None:
    """Join the other processes (JAX), once per process, within the timeout.

    What ``keras.distribution.initialize`` does (``jax.distributed.initialize`` with the
    coordinator, count and id), plus a bounded wait: a process that is not coordinator first
    waits for the coordinator's port; then a watchdog ends the process with one line and exit
    code 2 if not every process joins in time (JAX itself would abort with a core dump).
    """
    global _INITIALIZED
    if _INITIALIZED is not None:
        if _INITIALIZED != group:
            raise InputError("this process already joined another multi-process run")
        return
    import jax

    timeout = _timeout()
    if group.index != 0:
        wait_for(group.coordinator, timeout)
    # CPU devices exchange gradients through gloo (GPUs use NCCL; this setting leaves them be).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    done = threading.Event()

    def watchdog():
        if not done.wait(timeout):
            print(f"error: process {group.index} of {group.count}: the processes did not all "
                  f"join within {timeout:g} s (coordinator {group.coordinator}, "
                  f"{ENV_PROCESSES}={group.count}; {ENV_TIMEOUT} sets the wait)",
                  file=sys.stderr, flush=True)
            os._exit(2)

    threading.Thread(target=watchdog, daemon=True, name="project-join-watchdog").start()
    try:
        jax.distributed.initialize(
            coordinator_address=group.coordinator, num_processes=group.count,
            process_id=group.index, initialization_timeout=int(timeout) + 60,
        )
    except Exception as err:  # jax raises RuntimeError / XlaRuntimeError with a long text
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise InputError(f"process {group.index} of {group.count} cannot join the run at "
                         f"{group.coordinator}: {reason}") from None
    finally:
        done.set()
    _INITIALIZED = group


def _distribution_devices(backend: str) -> list:
    """The devices data parallelism uses: every GPU (or TPU) of the run, else every CPU."""
    if backend == "jax":
        import keras

        return keras.distribution.list_devices()
    import tensorflow as tf

    return [d.name for d in (tf.config.list_logical_devices("GPU")
                             or tf.config.list_logical_devices("CPU"))]


@functools.cache
def _distribution(backend: str):
    """The backend's data-parallel object over every local device, made once per process."""
    if backend == "jax":
        return _make_data_parallel()
    import tensorflow as tf

    return tf.distribute.MirroredStrategy(devices=_distribution_devices("tensorflow"))


def _make_data_parallel():
    import keras

    class DataParallel(keras.distribution.DataParallel):
        """Keras's DataParallel whose inputs are split along the batch only while training
        (:meth:`Scaling.training_inputs`); predictions run on replicated inputs, which accept any
        batch size and, with several processes, give every process every prediction."""

        shard_inputs = False

        def get_data_layout(self, data_shape):
            if self.shard_inputs:
                return super().get_data_layout(data_shape)
            return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)

    import jax

    # Each process feeds its own slice of every global batch (see fit_epoch / shard_rows).
    return DataParallel(devices=keras.distribution.list_devices(),
                        auto_shard_dataset=jax.process_count() == 1)


@contextlib.contextmanager
def dtype_policy(name: str):
    """Keras's global dtype policy is ``name`` inside the block, and what it was afterwards.

    >>> import keras
    >>> with dtype_policy("mixed_bfloat16"):
    ...     keras.layers.Dense(2).compute_dtype
    'bfloat16'
    >>> keras.config.dtype_policy().name
    'float32'
    """
    import keras

    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _output_layers(model) -> list:
    """The layers of a functional model that produce its outputs."""
    outputs = {id(t) for t in getattr(model, "outputs", None) or []}
    found = []
    for layer in getattr(model, "layers", []):
        try:
            if id(layer.output) in outputs:
                found.append(layer)
        except (AttributeError, ValueError):  # a shared layer has no single output
            continue
    return found


def _all_layers(model) -> list:
    # Keras's own walk over every nested layer (the model included).
    return list(model._flatten_layers(include_self=True, recursive=True))


def shard_rows(order, batch_size: int, devices: int = 1, processes: int = 1,
               process_id: int = 0):
    """An epoch's row order as one process feeds it under data parallelism.

    The last, partial global batch is cut to a multiple of ``devices`` (a batch split over
    devices must divide evenly); with several processes, each takes its slice of every global
    batch (process ``i`` the ``i``-th of ``processes`` equal parts).

    Args:
        order: the epoch's row order (:func:`project.training.loop.epoch_order`).
        batch_size: the global batch (a multiple of ``devices``).
        devices, processes, process_id: the run's layout.

    Returns:
        ``(rows, step_batch)``: this process's rows in feeding order, and its rows per step.
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


@contextlib.contextmanager
def portable(model):
    """Inside the block the model's layers carry float32 policies and unsynchronised batch
    normalisation: what a ``.keras`` file written there records, so that it loads and
    evaluates in float32 on any backend (and the model itself predicts in float32 there).
    Everything is put back afterwards."""
    import keras

    changed = []
    for layer in _all_layers(model):
        policy = layer.dtype_policy
        if policy.quantization_mode is None and policy.compute_dtype != policy.variable_dtype \
                and policy.variable_dtype == "float32":
            changed.append((layer, "dtype_policy", policy))
            layer.dtype_policy = "float32"
        if isinstance(layer, keras.layers.BatchNormalization) and layer.synchronized:
            changed.append((layer, "synchronized", True))
            layer.synchronized = False
    _forget_traced_functions(model, changed)
    try:
        yield model
    finally:
        for layer, name, value in reversed(changed):
            setattr(layer, name, value)
        _forget_traced_functions(model, changed)


def _forget_traced_functions(model, changed) -> None:
    """A traced train/test/predict function keeps the dtypes it was traced with: drop them."""
    if changed and hasattr(model, "predict_function"):
        model.train_function = model.test_function = model.predict_function = None


def save_model(model, path):
    """Save ``model`` to a ``.keras`` file (atomically) with float32 policies
    (:func:`portable`); returns the path."""
    from project.io import save_model as save

    with portable(model):
        return save(model, path)
