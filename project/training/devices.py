"""Devices and processes: what the backend computes on (:func:`device_info`) and can compute,
its memory peak, and the processes of a multi-process run: :func:`process_group` reads them from
Keras's ``KERAS_DISTRIBUTION_*`` variables, torchrun's or ``TF_CONFIG`` (the environment only);
:func:`join` (JAX) and :func:`join_torch` (``torch.distributed``) join them within
``PROJECT_DISTRIBUTION_TIMEOUT`` seconds.

>>> process_group({"KERAS_DISTRIBUTION_NUM_PROCESSES": "2",
...                "KERAS_DISTRIBUTION_PROCESS_ID": "1",
...                "KERAS_DISTRIBUTION_JOB_ADDRESSES": "10.0.0.1:1234"}).index
1
>>> process_group({}) is None
True
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import sys
import threading
import time

from project.errors import InputError, SettingError

ENV_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
ENV_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
ENV_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
TORCHRUN = "torchrun (RANK, WORLD_SIZE)"
ENV_TIMEOUT = "PROJECT_DISTRIBUTION_TIMEOUT"
DEFAULT_TIMEOUT = 300.0
FLOAT16_CAPABILITY = (5, 3)  # the smallest CUDA compute capability with float16 arithmetic
#: Where Keras's int8 layers run: not Apple's MPS (no int8 matmul in PyTorch there).
INT8_PLATFORMS = ("cpu", "gpu", "tpu")


def device_info(backend: str) -> dict:
    """The device the backend computes on: ``{"platform": "gpu" | "cpu", "name", "count",
    "capability"}`` (capability: CUDA compute capability as a tuple, or None)."""
    from project.machine import cpu_model

    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return {"platform": "gpu", "name": torch.cuda.get_device_name(0),
                    "count": torch.cuda.device_count(),
                    "capability": tuple(torch.cuda.get_device_capability())}
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return {"platform": "mps", "name": "MPS", "count": 1, "capability": None}
    elif backend == "jax":
        import jax

        device = jax.devices()[0]
        if device.platform in ("gpu", "cuda", "rocm"):
            capability = getattr(device, "compute_capability", None)
            if capability and device.platform != "rocm":
                capability = tuple(int(p) for p in str(capability).split(".")[:2])
            else:
                capability = None
            return {"platform": "gpu", "name": device.device_kind,
                    "count": len(jax.devices()), "capability": capability}
        if device.platform != "cpu":
            return {"platform": device.platform, "name": device.device_kind,
                    "count": len(jax.devices()), "capability": None}
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            capability = details.get("compute_capability")
            return {"platform": "gpu", "name": details.get("device_name", "GPU"),
                    "count": len(gpus), "capability": tuple(capability) if capability else None}
    return {"platform": "cpu", "name": cpu_model(), "count": 1, "capability": None}


def float16_support(backend: str) -> tuple[bool, str]:
    """Whether the device Keras computes on has float16 arithmetic, and what it is."""
    device = device_info(backend)
    capability = device["capability"]
    where = device["platform"].upper() + (f" {capability[0]}.{capability[1]}" if capability
                                          else "")
    if device["platform"] == "mps":
        return True, where
    if device["platform"] != "gpu":
        return False, where
    return capability is None or capability >= FLOAT16_CAPABILITY, where


def check_quantize_support(mode: str | None, backend: str) -> None:
    """Refuse (SettingError naming ``quantize``) a quantisation the device Keras computes on
    cannot run; None passes."""
    platform = device_info(backend)["platform"] if mode is not None else "cpu"
    if platform not in INT8_PLATFORMS:
        raise SettingError.about("quantize", f"{mode} is not supported on {platform.upper()} "
                                             f"({backend} backend): use a CPU or a CUDA GPU")


def reset_device_peak(backend: str) -> None:
    """Start a new accelerator memory peak (torch, TensorFlow; JAX counts from its start)."""
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                tf.config.experimental.reset_memory_stats("GPU:0")
    except Exception:  # memory statistics are optional everywhere
        pass


def device_peak_mb(backend: str) -> float | None:
    """The accelerator's peak allocation in MiB: since :func:`reset_device_peak` (torch,
    TensorFlow) or since the process started (JAX); None on a CPU or where unknown."""
    try:
        if backend == "torch":
            import torch

            if torch.cuda.is_available():
                return torch.cuda.max_memory_allocated() / 2**20
        elif backend == "tensorflow":
            import tensorflow as tf

            if tf.config.list_physical_devices("GPU"):
                return tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "gpu":
                return device.memory_stats()["peak_bytes_in_use"] / 2**20
    except Exception:  # memory statistics are optional everywhere
        return None
    return None


@dataclasses.dataclass(frozen=True)
class ProcessGroup:
    """The processes of a multi-process run: ``count``, this one's ``index`` (0 coordinates and
    writes), the ``coordinator``'s ``host:port`` (None under ``TF_CONFIG``), the variables it
    came from (``source``, for messages) and ``local_index`` (torchrun's ``LOCAL_RANK``: its GPU).
    """

    count: int
    index: int
    coordinator: str | None
    source: str
    local_index: int = 0


def _int_variable(environ, name: str):
    text = environ.get(name)
    if not (text or "").strip():
        return None
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{name}={text!r} is not a whole number") from None


def process_group(environ=None) -> ProcessGroup | None:
    """The multi-process setting of this process (Keras's ``KERAS_DISTRIBUTION_*`` variables,
    else torchrun's, else ``TF_CONFIG``), or None for a single process. InputError for a
    setting that cannot be right (an id out of range, a malformed address, variables in part).
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
            raise InputError(f"a multi-process run needs {ENV_ADDRESSES} (the coordinator's "
                             f"host:port), {ENV_PROCESSES} and {ENV_PROCESS_ID}; set all three "
                             "or none")
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
    if any(environ.get(name) for name in TORCHRUN_VARIABLES):
        return _torchrun_group(environ)
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


def _torchrun_group(environ) -> ProcessGroup | None:
    """The process group torchrun describes (:func:`process_group`)."""
    missing = [name for name in TORCHRUN_VARIABLES if not (environ.get(name) or "").strip()]
    if missing:
        raise InputError(f"torchrun's variables are set in part ({', '.join(missing)} missing): "
                         "launch with torchrun, or set RANK, WORLD_SIZE, MASTER_ADDR and "
                         "MASTER_PORT together")
    count, index = _int_variable(environ, "WORLD_SIZE"), _int_variable(environ, "RANK")
    local = _int_variable(environ, "LOCAL_RANK") or 0
    if count < 1:
        raise InputError(f"WORLD_SIZE={count}: must be at least 1")
    if not 0 <= index < count:
        raise InputError(f"RANK={index}: must be in 0..{count - 1} (WORLD_SIZE={count})")
    coordinator = f"{environ['MASTER_ADDR'].strip()}:{environ['MASTER_PORT'].strip()}"
    _host_port(coordinator, "MASTER_ADDR:MASTER_PORT")
    return None if count == 1 else ProcessGroup(count, index, coordinator, TORCHRUN, local)


def _host_port(address: str, where: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputError(f"{where}: {address!r} is not host:port")
    return host.strip("[]"), int(port)


def join_timeout(environ=None) -> float:
    """Seconds to wait for the coordinator and the other processes (``ENV_TIMEOUT``)."""
    environ = os.environ if environ is None else environ
    text = environ.get(ENV_TIMEOUT)
    if not text:
        return DEFAULT_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise InputError(f"{ENV_TIMEOUT}={text!r}: give a number of seconds > 0")
    return value


def wait_for(address: str, timeout: float, where: str = ENV_ADDRESSES) -> None:
    """Wait until ``host:port`` accepts a TCP connection, at most ``timeout`` seconds (else a
    one-line InputError naming the address and the variable ``where``)."""
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
            raise InputError(f"no answer from the coordinator {address} within {timeout:g} s "
                             f"({where}; start process 0 first, or raise {ENV_TIMEOUT})")
        time.sleep(min(0.25, max(deadline - time.monotonic(), 0)))


@contextlib.contextmanager
def _joining(group: ProcessGroup, timeout: float):
    """Around the library's join: a watchdog ends the process with one line and exit code 2 if
    the processes do not all join within ``timeout`` seconds; the library's error is one line."""
    done = threading.Event()

    def watchdog():
        if not done.wait(timeout):
            print(f"error: process {group.index} of {group.count}: the processes did not all "
                  f"join within {timeout:g} s (coordinator {group.coordinator}, "
                  f"{group.source}; {ENV_TIMEOUT} sets the wait)", file=sys.stderr, flush=True)
            os._exit(2)

    threading.Thread(target=watchdog, daemon=True, name="project-join-watchdog").start()
    try:
        yield
    except Exception as err:  # RuntimeError, XlaRuntimeError, DistStoreError: a long text
        reason = (str(err).strip() or type(err).__name__).splitlines()[0]
        raise InputError(f"process {group.index} of {group.count} cannot join the run at "
                         f"{group.coordinator}: {reason}") from None
    finally:
        done.set()


def join(group: ProcessGroup) -> None:
    """Join the other processes of ``group`` (JAX), once per process: what
    ``keras.distribution.initialize`` does, plus a bounded wait for the coordinator's port and
    :func:`_joining`'s watchdog (JAX itself would abort with a core dump)."""
    import jax

    if jax.distributed.is_initialized():
        if (jax.process_count(), jax.process_index()) != (group.count, group.index):
            raise InputError("this process already joined another multi-process run")
        return
    timeout = join_timeout()
    if group.index != 0:
        wait_for(group.coordinator, timeout)
    # CPU devices exchange gradients through gloo (GPUs use NCCL; this setting leaves them be).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    with _joining(group, timeout):
        jax.distributed.initialize(
            coordinator_address=group.coordinator, num_processes=group.count,
            process_id=group.index, initialization_timeout=int(timeout) + 60,
        )


def join_torch(group: ProcessGroup) -> None:
    """Join the other processes of ``group`` with ``torch.distributed``, once per process, as
    :func:`join` does: gloo on CPUs, NCCL on GPUs (the GPU of ``local_index``). The rendezvous is
    torchrun's (``env://``), or process 0's at the coordinator's address. Collectives may wait
    longer (process 0 writes while the others wait): at least 30 minutes."""
    import datetime

    import torch
    import torch.distributed as dist

    if dist.is_initialized():
        if (dist.get_world_size(), dist.get_rank()) != (group.count, group.index):
            raise InputError("this process already joined another multi-process run")
        return
    timeout = join_timeout()
    if group.index != 0:
        wait_for(group.coordinator, timeout, "MASTER_ADDR:MASTER_PORT"
                 if group.source == TORCHRUN else ENV_ADDRESSES)
    gpu = torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(group.local_index % torch.cuda.device_count())
    with _joining(group, timeout):
        dist.init_process_group(
            "nccl" if gpu else "gloo",
            init_method="env://" if group.source == TORCHRUN else f"tcp://{group.coordinator}",
            world_size=group.count, rank=group.index,
            timeout=datetime.timedelta(seconds=max(timeout, 1800)))
