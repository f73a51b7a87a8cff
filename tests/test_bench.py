"""The benchmark harness and scripts/bench.py: protocol, targets, a --quick smoke run, bad input."""

import json
import os
import sys
import textwrap

import pytest

from tests.conftest import BACKEND, BACKENDS, ROOT, call_script, run_script

sys.path.insert(0, str(ROOT))  # `benchmarks` beside `project`

from benchmarks.harness import Contender, Target, check_targets, measure  # noqa: E402

CONTENDER_MODULE = textwrap.dedent('''
    import os, time
    from benchmarks.harness import Prepared

    def prepare_sleep(seconds):
        info = {"pid": os.getpid(), "backend": os.environ.get("KERAS_BACKEND"), "calls": 0}
        def step():
            info["calls"] += 1  # a fact about the calls, reported back after each turn
            time.sleep(seconds)
        return Prepared(step, info)

    def prepare_broken():
        raise ValueError("this contender cannot be built")
''')


@pytest.fixture
def contender_module(tmp_path, monkeypatch):
    (tmp_path / "bench_contenders.py").write_text(CONTENDER_MODULE)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), str(ROOT)]))
    return "bench_contenders"


def test_targets_are_data_evaluated_as_met_or_missed():
    targets = [
        Target("faster", "speedup", ">=", 2.0, aim=3.0),
        Target("cheaper", "cost", "<=", 0.9),
        Target("absent", "nothing", "<=", 1.0),
    ]
    rows = check_targets(targets, {"speedup": 3.5, "cost": 0.95})
    assert [r["met"] for r in rows] == [True, False, None]
    assert rows[0]["aim_met"] is True and rows[1]["aim_met"] is None
    assert [r["status"] for r in rows] == ["met (aim 3 met)", "MISSED", "not measured"]
    assert check_targets(targets[:1], {"speedup": 2.5})[0]["status"] == "met (aim 3 missed)"


def test_contenders_run_in_their_own_processes_and_take_turns(contender_module):
    fast = Contender("fast", "fast", f"{contender_module}:prepare_sleep", {"seconds": 0.01},
                     backend=BACKEND)
    slow = Contender("slow", "slow", f"{contender_module}:prepare_sleep", {"seconds": 0.08})
    peer = Contender("peer", "peer", f"{contender_module}:prepare_sleep", {"seconds": 0.0})
    results = measure([[fast], [slow]], shared=[peer], repeats=3, calls=2, warmup=1,
                      log=lambda _: None)
    assert set(results) == {"fast", "slow", "peer"}
    pids = {r["info"]["pid"] for r in results.values()}
    assert len(pids) == 3 and os.getpid() not in pids
    assert results["fast"]["info"]["backend"] == BACKEND  # KERAS_BACKEND set per contender
    assert len(results["fast"]["times"]) == len(results["slow"]["times"]) == 6
    assert len(results["peer"]["times"]) == 12  # its turns in both groups' rounds
    assert sorted(results["peer"]["times_by_group"]) == [0, 1]
    assert min(results["slow"]["times"]) >= 0.08 > max(results["fast"]["times"]) - 0.05
    assert results["slow"]["info"]["peak_rss_mb"] > 0
    # info as of the last turn: one warm-up call, then 3 rounds of 2 calls (the peer: 2 groups)
    assert results["fast"]["info"]["calls"] == 7 and results["peer"]["info"]["calls"] == 13


def test_a_contender_that_fails_reports_its_error(contender_module):
    broken = Contender("broken", "broken", f"{contender_module}:prepare_broken")
    with pytest.raises(RuntimeError, match="cannot be built"):
        measure([[broken]], repeats=1, log=lambda _: None)


# The quick suites measure every backend in one run (a process per contender), so they run once:
# under the first backend's session, not again under each.
@pytest.mark.backend_independent
def test_quick_convnet_suite_runs_and_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("bench.py", "--suite", "convnet", "--quick", "--repeats", "1",
                        "--backends", ",".join(BACKENDS), "--json", out, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.startswith("CPU: ")  # the machine comes first
    assert "plain PyTorch (peer)" in result.stdout and "target: " in result.stdout
    data = json.loads(out.read_text())
    assert data["suite"] == "convnet" and data["quick"] is True
    assert {r["key"] for r in data["rows"]} == {"pytorch", *BACKENDS}
    assert all(r["samples_per_second"] > 0 for r in data["rows"])
    assert all(data["ratios"][f"{b}_vs_pytorch"] > 0 for b in BACKENDS)
    assert {t["key"] for t in data["targets"]} >= {"torch_vs_pytorch", "fastest_vs_pytorch"}


@pytest.mark.backend_independent
def test_quick_lora_suite_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("bench.py", "--suite", "lora", "--quick", "--repeats", "1",
                        "--backends", ",".join(BACKENDS), "--json", out, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = {r["key"]: r for r in data["rows"]}
    assert set(rows) == {"peft", *(f"{b}:lora" for b in BACKENDS)}
    for b in BACKENDS:
        # same LoRA (r=8 on q/k/v, head trained): the same number of trainable parameters as PEFT
        assert rows["peft"]["trainable"] == rows[f"{b}:lora"]["trainable"]
        assert 0 < rows[f"{b}:lora"]["peak_fraction"]
        assert data["ratios"][f"{b}_lora_vs_peft"] > 0
        assert data["ratios"][f"matmul_peak_gflops_{b}"] > 0


@pytest.mark.backend_independent  # NumPy and imbalanced-learn only
def test_quick_adasyn_suite_runs(tmp_path):
    out = tmp_path / "bench.json"
    result = run_script("bench.py", "--suite", "adasyn", "--quick", "--repeats", "1",
                        "--json", out, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "report's loop (peer)" in result.stdout and "target: " in result.stdout
    data = json.loads(out.read_text())
    assert data["suite"] == "adasyn" and data["quick"] is True
    rows = {r["key"]: r for r in data["rows"]}
    assert set(rows) == {"ours", "ours-report", "imblearn", "report", "ours-large",
                         "imblearn-large"}
    assert all(r["seconds"] > 0 and r["calls"] == 1 for r in rows.values())
    # each contender in its own process: the large size's output (2 x 50,000 x 29 float64
    # rows) shows in the peak RSS above the process's peak before its first call
    assert rows["ours-large"]["peak_mb"] > 10 and rows["imblearn-large"]["peak_mb"] > 10
    ratios = data["ratios"]
    assert ratios["report_counts_match"] is True  # variant="report" == the report's loop
    assert ratios["ours_makes_G_rows"] is True
    assert rows["report"]["n_synthetic"] < rows["ours"]["n_synthetic"]  # the loop truncates
    assert ratios["ours_vs_imblearn_time"] > 0 and ratios["ours_vs_imblearn_cpu_large"] > 0
    assert [t["key"] for t in data["targets"]] == ["ours_vs_imblearn_time"]


@pytest.mark.parametrize("args, message", [
    (["--suite", "nope"], "--suite"),
    (["--suite", "convnet", "--repeats", "0"], "--repeats"),
    (["--suite", "convnet", "--threads", "-1"], "--threads"),
    (["--suite", "convnet", "--backends", "theano"], "--backends"),
    (["--suite", "convnet", "--json", "."], "--json"),
])
def test_bad_input_is_one_line_and_exit_2(args, message):
    code, out, err = call_script("bench.py", *args)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_bad_input_from_the_command_line_exits_2():
    result = run_script("bench.py", "--suite", "lora", "--repeats", "x", timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
