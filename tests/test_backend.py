import importlib.util

import pytest

from project import backend
from project.errors import InputError
from tests.conftest import BACKEND, call_script, run_script


def test_argv_wins_over_environment(monkeypatch):
    import keras  # noqa: F401  (loaded by the suite already, with BACKEND)

    other = "torch" if BACKEND == "tensorflow" else "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", other)
    assert backend.select_backend(["--data", "x", "--backend", BACKEND]) == BACKEND
    monkeypatch.setenv("KERAS_BACKEND", other)
    assert backend.select_backend([f"--backend={BACKEND}"]) == BACKEND
    assert backend.select_backend(["--data", "x"]) == BACKEND  # the choice was exported


def test_backends_list_option():
    assert backend.parse_backends(" torch, jax ,torch") == ["torch", "jax"]
    with pytest.raises(InputError, match=r"^--backends: give one or more of"):
        backend.parse_backends(" , ")
    with pytest.raises(InputError, match=r"^--only: unknown backend 'mxnet'"):
        backend.parse_backends("jax,mxnet", option="--only")


def test_select_backend_keeps_the_loaded_backend(monkeypatch):
    import keras  # noqa: F401  (loaded by the suite already)

    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    assert backend.select_backend(["--backend", BACKEND]) == BACKEND
    other = "torch" if BACKEND == "tensorflow" else "tensorflow"
    with pytest.raises(InputError, match="already imported with backend"):
        backend.select_backend(["--backend", other])


def test_unknown_backend_lists_the_choices():
    with pytest.raises(InputError, match="unknown backend 'mxnet'.*tensorflow, torch, jax"):
        backend.check_backend("mxnet")


def test_uninstalled_backend_is_one_clear_error(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        backend.importlib.util, "find_spec", lambda name: None if name == "jax" else real(name)
    )
    with pytest.raises(InputError, match="'jax' is not installed.*pip install jax"):
        backend.check_backend("jax")


def test_script_rejects_an_unknown_backend_with_exit_2():
    code, _, err = call_script("fraud.py", "--backend", "mxnet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: ") and "'mxnet'" in err and "tensorflow" in err
    done = run_script("fraud.py", "--epochs", "1", backend="mxnet")  # from KERAS_BACKEND
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "error: unknown backend 'mxnet': choose one of tensorflow, torch, jax "
        "(--backend or KERAS_BACKEND)"]
