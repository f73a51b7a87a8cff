"""scripts/device_check.py (its measurements: benchmarks/device.py): a --quick run on the CPU
(without TensorFlow where the backend allows), the largest-batch search, and bad input."""

import json
import os
import sys
import textwrap

import pytest

from tests.conftest import BACKEND, ROOT, call_script, run_script

sys.path.insert(0, str(ROOT))

from benchmarks.device import search_largest  # noqa: E402

# A sitecustomize that makes TensorFlow look uninstalled (find_spec None, import fails), as on a
# machine with only torch or JAX.
HIDE_TENSORFLOW = textwrap.dedent('''
    import sys
    HIDDEN = ("tensorflow", "tensorflow_text", "tf_keras")

    class _Hide:
        def __init__(self, finder):
            self.finder = finder
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in HIDDEN:
                return None
            return self.finder.find_spec(name, path, target)
        def __getattr__(self, attr):
            return getattr(self.finder, attr)

    sys.meta_path[:] = [_Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
''')


def test_search_doubles_then_bisects_to_within_a_sixteenth():
    calls = []

    def fits(batch):
        calls.append(batch)
        return batch <= 300

    r = search_largest(fits, start=16, cap=4096, budget=60)
    assert r["complete"] and not r["capped"]
    assert r["largest_fitting"] <= 300 < r["first_failing"]
    assert r["first_failing"] - r["largest_fitting"] <= r["largest_fitting"] // 16
    assert calls[:6] == [16, 32, 64, 128, 256, 512]  # doubling first
    assert [b for b, _ in r["tried"]] == calls


def test_search_stops_at_the_cap_and_at_the_time_budget():
    capped = search_largest(lambda b: True, start=1, cap=8, budget=60)
    assert capped["largest_fitting"] == 8 and capped["capped"] and capped["complete"]
    assert search_largest(lambda b: False, start=4, cap=64, budget=60)["largest_fitting"] == 0
    out_of_time = search_largest(lambda b: True, start=1, cap=1024, budget=-1)
    assert not out_of_time["complete"] and out_of_time["tried"] == []


def test_quick_check_measures_everything(tmp_path, monkeypatch):
    if BACKEND != "tensorflow":  # torch and JAX must work on a machine without TensorFlow
        (tmp_path / "sitecustomize.py").write_text(HIDE_TENSORFLOW)
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
            [str(tmp_path), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    out = tmp_path / "device.json"
    result = run_script("device_check.py", "--quick", "--backends", BACKEND, "--json", out,
                        timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-3000:]
    assert result.stdout.startswith("CPU: ") and "largest batch" in result.stdout
    r = json.loads(out.read_text())["backends"][BACKEND]
    assert "error" not in r and r["skipped"] == []
    assert r["device"]["platform"] == "cpu"
    if BACKEND != "tensorflow":
        assert "tensorflow" not in r["versions"]  # it really ran without TensorFlow
    assert r["matmul"]["float32_tflops"] > 0 and r["matmul"]["bfloat16_tflops"] > 0
    assert r["convnet"]["samples_per_second"] > 0
    runs = {(x["mode"], x["precision"]): x for x in r["roberta"]["runs"]}
    assert set(runs) == {(m, p) for m in ("lora", "full", "lora-remat", "lora-int8")
                         for p in ("float32", "mixed_bfloat16")}
    for run in runs.values():
        assert run["tokens_per_second"] > 0 and 0 < run["mfu"] < 1
    assert runs[("lora", "float32")]["trainable"] < runs[("full", "float32")]["trainable"]
    assert runs[("lora-int8", "float32")]["trainable"] == runs[("lora", "float32")]["trainable"]
    gap = r["logit_gap"]
    assert 0 < gap["max_abs"] < 0.1 * gap["scale"] + 0.01  # bf16 rounding, not a different model
    (search,) = r["largest_batch"]
    assert search["largest_fitting"] == search["cap"] and search["capped"]


@pytest.mark.parametrize("args, message", [
    (["--budget", "0"], "--budget"),
    (["--backends", "theano"], "--backends"),
    (["--backends", ","], "--backends"),
    (["--json", "."], "--json"),
    (["--frobnicate"], "unrecognized"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    code, out, err = call_script("device_check.py", *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
