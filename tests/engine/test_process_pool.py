"""CPU-bound python nodes can run in a process pool; pool sizes follow the real CPUs."""

import os

import pytest

from config.cpus import available_cpus

pytestmark = pytest.mark.django_db(transaction=True)


def fib(mode=None, n=20):
    config = {"function": "braid.fib", "args": {"n": n}}
    if mode:
        config["mode"] = mode
    return {"name": "fib", "nodes": [{"id": "f", "type": "python", "config": config}],
            "edges": []}


def test_a_process_mode_node_runs_in_another_process(run_graph):
    execution = run_graph(fib("process"), timeout=60)

    assert execution.status == "succeeded", execution.error
    out = execution.output["f"]
    assert (out["n"], out["fib"]) == (20, 6765)
    assert out["pid"] != os.getpid()


def test_a_thread_mode_node_runs_in_this_process(run_graph):
    execution = run_graph(fib())

    assert execution.output["f"]["pid"] == os.getpid()


def test_a_failure_in_the_process_pool_is_classified(run_graph):
    execution = run_graph(fib("process", n=99), timeout=60)

    assert execution.status == "failed"
    assert execution.error["class"] == "configuration"
    assert "n must be from 0 to 30" in execution.error["message"]


def test_cpu_count_honours_a_cgroup_quota(tmp_path):
    (tmp_path / "cpu.max").write_text("150000 100000\n")  # 1.5 CPUs
    assert available_cpus(str(tmp_path)) == min(2, len(os.sched_getaffinity(0)))
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert available_cpus(str(tmp_path)) == len(os.sched_getaffinity(0))
