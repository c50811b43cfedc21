"""diagnose names what is wrong with one execution, and what to try."""

import threading
import time
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from apps.engine.models import Execution, NodeRun
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from apps.operations.diagnose import diagnose
from apps.operations.models import HostSample
from apps.workflows.services import publish_version

HANGS = {"name": "hangs", "nodes": [{"id": "wedge", "type": "python",
                                     "config": {"function": "tests.hang",
                                                "args": {"seconds": 2}}}], "edges": []}
FAILING = {"name": "always fails",
           "nodes": [{"id": "boom", "type": "fail", "config": {"times": 99},
                      "retry": {"max_attempts": 1}}],
           "edges": []}


@pytest.mark.django_db(transaction=True)
def test_diagnose_names_the_stuck_node_of_a_hung_handler(settings):
    settings.BRAID_ALERT_RULES = {"node_stuck": {"min_s": 0.3}}
    publish_version("hangs", HANGS)
    # Its recent history: the node usually takes 5 ms.
    usual = start_execution(StartRequest(workflow="hangs"))
    NodeRun.objects.filter(execution=usual).update(status="succeeded", duration_ms=5.0)
    Execution.objects.filter(pk=usual.pk).update(status="succeeded")

    hung = start_execution(StartRequest(workflow="hangs"))
    worker = threading.Thread(target=drain, kwargs={"budget_s": 4}, daemon=True)
    worker.start()
    try:
        deadline = time.monotonic() + 10
        report = None
        while time.monotonic() < deadline:
            report = diagnose(hung.pk)
            if report["stuck_nodes"]:
                break
            time.sleep(0.1)
        [stuck] = report["stuck_nodes"]
        assert stuck["node"] == "wedge" and stuck["ran_s"] >= stuck["expected_s"]
        assert stuck["worker"]
        assert any("hung handler" in advice for advice in report["suggestions"])
        assert [r["node"] for r in report["why"]] == ["wedge"]

        out = StringIO()
        call_command("braid", "diagnose", str(hung.pk), stdout=out)
        assert "STUCK  wedge" in out.getvalue()
    finally:
        worker.join(timeout=15)


@pytest.mark.django_db(transaction=True)
def test_diagnose_of_a_failed_execution_lists_its_errors_and_suggests_what_to_do(run_graph):
    failed = run_graph(FAILING)
    report = diagnose(failed.pk)
    assert report["status"] == "failed"
    assert report["node_errors"][0]["node"] == "boom"
    assert report["recent_events"][-1]["type"] == "execution.failed"
    assert any("retry the node" in advice for advice in report["suggestions"])


@pytest.mark.django_db
def test_diagnose_of_an_unknown_id_is_a_clear_error():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="no execution"):
        call_command("braid", "diagnose", "00000000-0000-0000-0000-000000000000")


@pytest.mark.django_db
def test_braid_workers_lists_the_hosts_seen_recently():
    HostSample.objects.create(host="worker-a", at=timezone.now(), cpu_percent=12.5,
                              memory_percent=40.0, memory_used_mb=800.0,
                              processes=[{"pid": 1}, {"pid": 2}])
    HostSample.objects.create(host="gone", at=timezone.now() - timedelta(minutes=10),
                              cpu_percent=1.0, memory_percent=1.0, memory_used_mb=1.0)
    out = StringIO()
    call_command("braid", "workers", stdout=out)
    assert "worker-a" in out.getvalue() and "CPU  12.5 %" in out.getvalue()
    assert "gone" not in out.getvalue()


@pytest.mark.django_db
def test_the_monitor_records_this_host_with_its_processes():
    from apps.operations import monitor

    sample = monitor.record()
    assert sample.host == monitor.HOST
    assert 0 <= sample.memory_percent <= 100
    assert any(p["pid"] for p in sample.processes)


@pytest.mark.django_db(transaction=True)
def test_executor_stats_show_each_worker_s_busy_slots_at_its_last_beat(run_graph,
                                                                        monkeypatch):
    from apps.engine import heartbeats
    from apps.operations import resources

    monkeypatch.setattr(heartbeats, "_last", {})  # beats are rate-limited per process

    run_graph(HANGS | {"nodes": [{"id": "quick", "type": "noop"}]})
    stats = resources.executor_stats()
    [worker] = stats["workers"]
    assert worker["thread"]["size"] >= 1 and worker["async"]["size"] >= 1
    assert worker["inflight"] == 0 and worker["max_inflight"] >= 1
    assert stats["totals"]["thread"]["size"] == worker["thread"]["size"]


@pytest.mark.django_db
def test_db_pool_stats_say_what_the_database_is():
    from apps.operations import resources

    info = resources.db_pool_stats()
    assert info["vendor"] in ("sqlite", "postgresql")
    if info["vendor"] == "postgresql":
        assert info["max_connections"] > 0 and info["this_database"] >= 1
