"""project.io: atomic writes and their temporaries, kill-safe logs, the run lock; load_model's
checks (project.models.saving); and the TensorFlow start-up filter (project.quiet_tensorflow)."""

import os
import signal
import subprocess
import sys
import textwrap
import time
import zipfile

import pytest

from project.errors import InputError
from project.io import (
    MAX_CONFIG_BYTES,
    RunLock,
    atomic_path,
    is_stale_temporary,
    remove_stale_temporaries,
    temporary_path,
    write_json,
    write_text,
)
from project.models.saving import load_model
from project.quiet_tensorflow import filter_noise, is_noise

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python(code: str, **kwargs) -> subprocess.Popen:
    """A fresh interpreter running ``code`` with this checkout first on the path."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(kwargs.pop("env", {}))
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs)


def wait_for_line(process: subprocess.Popen, expected: str, timeout: float = 60) -> None:
    line = process.stdout.readline().strip()
    assert line == expected, (line, process.stderr.read() if process.poll() is not None else "")


def dead_pid() -> int:
    """The pid of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# ---------------------------------------------------------------------------------------------
# Atomic writes and stale temporaries


def test_atomic_path_writes_under_a_recognisable_name_then_renames(tmp_path):
    target = tmp_path / "out" / "history.png"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".history.tmp-")
        assert tmp.suffix == ".png" and str(os.getpid()) in tmp.name
        tmp.write_bytes(b"png")
        assert not target.exists()
    assert target.read_bytes() == b"png" and list(target.parent.iterdir()) == [target]


def test_atomic_path_leaves_nothing_when_the_write_fails(tmp_path):
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "m.keras") as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_an_output_under_a_file_is_one_line_naming_the_file(tmp_path):
    blocker = tmp_path / "data.csv"
    blocker.write_text("x")
    with pytest.raises(InputError, match=r"^.*report\.md: cannot write there \(.*data\.csv is a "
                                         r"file, not a folder\)$"):
        write_text(blocker / "run" / "report.md", "text")
    assert [p.name for p in tmp_path.iterdir()] == ["data.csv"]


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    live = python("import time; print('ready', flush=True); time.sleep(60)")
    try:
        wait_for_line(live, "ready")
        ours = temporary_path(tmp_path / "metrics.json")
        host, start = ours.name.split(".tmp-")[1].split(".")[0].split("-")[1:]
        names = {
            "dead": f".history.tmp-{dead_pid()}-{host}-{start}.png",
            "legacy_dead": f".model.tmp-{dead_pid()}.keras",        # the old naming
            "live": f".model.tmp-{live.pid}-{host}-0.keras",       # start unknown: trust the pid
            "reused_pid": f".report.tmp-{os.getpid()}-{host}-1.md",   # our pid, another start
            "ours": ours.name,
            "other_host_recent": f".a.tmp-{dead_pid()}-00000000-5.csv",
            "other_host_old": f".b.tmp-{dead_pid()}-00000000-5.csv",
            "not_a_temporary": "history.png",
        }
        paths = {key: tmp_path / name for key, name in names.items()}
        for path in paths.values():
            path.write_bytes(b"x")
        day_ago = time.time() - 2 * 24 * 3600
        os.utime(paths["other_host_old"], (day_ago, day_ago))

        removed = remove_stale_temporaries(tmp_path)

        stale = {"dead", "legacy_dead", "reused_pid", "other_host_old"}
        assert sorted(removed) == sorted(paths[k] for k in stale)
        for key, path in paths.items():
            assert path.exists() == (key not in stale), key
        assert not is_stale_temporary(paths["live"])
    finally:
        live.kill()
        live.wait()


def test_a_write_killed_midway_leaves_a_temporary_that_the_next_run_removes(tmp_path):
    writer = python(f"""
        from project.io import atomic_path
        with atomic_path({str(tmp_path / "model.keras")!r}) as tmp:
            tmp.write_bytes(b"half a model")
            print("writing", flush=True)
            input()
    """, stdin=subprocess.PIPE)
    wait_for_line(writer, "writing")
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    left = [p for p in tmp_path.iterdir()]
    assert len(left) == 1 and left[0].name.startswith(".model.tmp-")
    assert remove_stale_temporaries(tmp_path) == left
    assert list(tmp_path.iterdir()) == []


def test_remove_stale_temporaries_recursive_and_missing_folder(tmp_path):
    sub = tmp_path / "full"
    sub.mkdir()
    stale = sub / f".model.tmp-{dead_pid()}.keras"
    stale.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == []
    assert remove_stale_temporaries(tmp_path, recursive=True) == [stale]
    assert remove_stale_temporaries(tmp_path / "missing") == []


# ---------------------------------------------------------------------------------------------
# Append-only logs


def test_a_second_run_is_refused_until_the_first_dies(tmp_path):
    holder = python(f"""
        from project.io import RunLock
        with RunLock({str(tmp_path)!r}):
            print("locked", flush=True)
            input()
    """, stdin=subprocess.PIPE)
    try:
        wait_for_line(holder, "locked")
        with pytest.raises(InputError, match=rf"is in use by another run \(pid {holder.pid}\)"):
            RunLock(tmp_path).acquire()
        contender = python(f"""
            from project.io import RunLock
            from project.errors import InputError
            try:
                RunLock({str(tmp_path)!r}).acquire()
            except InputError as err:
                print(err)
        """)
        out, _ = contender.communicate(timeout=60)
        assert f"in use by another run (pid {holder.pid})" in out
    finally:
        holder.send_signal(signal.SIGKILL)  # no clean-up runs: the kernel drops the lock
        holder.wait()
    with RunLock(tmp_path) as lock:
        assert lock.path.read_text().strip() == str(os.getpid())
    with RunLock(tmp_path):  # released: can be taken again
        pass


# ---------------------------------------------------------------------------------------------
# load_model


def test_load_model_refuses_a_huge_config_before_reading_it(tmp_path):
    path = tmp_path / "bomb.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("config.json", b" " * (MAX_CONFIG_BYTES + 1))
        archive.writestr("metadata.json", b"{}")
    assert path.stat().st_size < 1_000_000
    with pytest.raises(InputError, match=r"config\.json is 64 MiB, more than the 64 MiB") as info:
        load_model(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such model file"),
        (b"not a zip", "not a Keras model"),
        ({"metadata.json": "{}"}, r"cannot load as a Keras model \(no config\.json inside\)"),
        ({"config.json": "{not json"}, "cannot load as a Keras model"),
    ],
    ids=["missing", "not-zip", "no-config", "bad-config"],
)
def test_load_model_bad_files(tmp_path, content, message):
    path = tmp_path / "model.keras"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, dict):
        with zipfile.ZipFile(path, "w") as archive:
            for name, text in content.items():
                archive.writestr(name, text)
    with pytest.raises(InputError, match=message) as info:
        load_model(path)
    assert "\n" not in str(info.value)


def test_write_text_is_atomic_and_replaces(tmp_path):
    path = write_text(tmp_path / "report.md", "one")
    write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["report.md"]


# ---------------------------------------------------------------------------------------------
# TensorFlow's start-up lines


NOISE = [
    "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
    "I0000 00:00:1795950060.172747    5176 port.cc:153] oneDNN custom operations are on.",
    "I0000 00:00:1795950060.173099    5176 cudart_stub.cc:31] Could not find cuda drivers.",
    "2025-09-17 14:44:05.157831: I external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] Could not",
    "W0000 00:00:1758131045.228 3722035 computation_placer.cc:177] computation placer already "
    "registered. Please check linkage and avoid linking the same target more than once.",
    "E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Unable to register cuDNN factory: "
    "Attempting to register factory for plugin cuDNN when one has already been registered",
]
REAL = [
    "E0000 00:00:1758131045.203198 3722035 cuda_dnn.cc:8579] Could not create cudnn handle",
    "F0000 00:00:1758131045.203198 3722035 x.cc:1] Check failed",
    "Traceback (most recent call last):",
    "UserWarning: something the user must see",
]


def test_noise_is_recognised_and_real_errors_are_not():
    assert all(is_noise(line, 2) for line in NOISE)
    assert not any(is_noise(line, 2) for line in REAL)
    assert not any(is_noise(line, 0) for line in NOISE)  # TF_CPP_MIN_LOG_LEVEL=0: show all
    assert is_noise(NOISE[1], 1) and not is_noise(NOISE[4], 1)  # level 1 hides INFO only
    text = "\n".join(NOISE + REAL).encode() + b"\n"
    assert filter_noise(text, 2).decode().splitlines() == REAL


def test_the_import_hook_filters_only_noise(tmp_path):
    """A stand-in ``tensorflow`` that writes noise and a real error on fd 2 while imported."""
    package = tmp_path / "fake" / "tensorflow"
    package.mkdir(parents=True)
    lines = "".join(f"{line}\n" for line in [NOISE[0], NOISE[1], REAL[0], NOISE[2]])
    (package / "__init__.py").write_text(
        f"import os, sys\nos.write(2, {lines.encode()!r})\n"
        "print('python warning', file=sys.stderr)\nVALUE = 42\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), ROOT])}
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)
    code = ("from project.backend import quiet_tensorflow_startup; quiet_tensorflow_startup(); "
            "import tensorflow; print(tensorflow.VALUE, tensorflow.__loader__.__class__)")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={k: v for k, v in os.environ.items()
                                  if k != "TF_CPP_MIN_LOG_LEVEL"} | env, timeout=120)
    assert process.returncode == 0, process.stderr
    assert process.stdout.startswith("42 <class '_frozen_importlib_external.SourceFileLoader'>")
    assert process.stderr.splitlines() == [REAL[0], "python warning"]


def test_selecting_the_backend_quiets_tensorflow_and_importing_project_does_nothing():
    """Under this backend, in a fresh process, with TF_CPP_MIN_LOG_LEVEL left unset: a script's
    start (select_backend, then keras-hub) prints nothing; ``import project`` alone changes
    neither the environment nor the import machinery."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env["PYTHONPATH"] = ROOT
    code = "from project.backend import select_backend; select_backend([]); import keras_hub"
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=300)
    assert process.returncode == 0, process.stderr
    assert process.stderr == ""
    code = ("import os, sys; hooks = list(sys.meta_path); import project; "
            "print(list(sys.meta_path) == hooks, 'TF_CPP_MIN_LOG_LEVEL' in os.environ)")
    process = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, timeout=300)
    assert process.stdout.split() == ["True", "False"], process.stderr


def test_write_json_writes_numpy_values_as_lists(tmp_path):
    import json

    import numpy as np

    data = {"mean": np.arange(3.0), "seed": 50, "name": "adasyn-train"}
    written = json.loads(write_json(tmp_path / "p.json", data).read_text())
    assert written == {**data, "mean": [0.0, 1.0, 2.0]}
