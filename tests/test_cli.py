"""`manage.py braid …`: validate, run, status, reap, ticker, demo, serve."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.engine.models import Execution
from apps.engine.start import StartRequest, start_execution
from tests.conftest import EXAMPLES, load_example, run_until_done

ROOT = Path(__file__).resolve().parent.parent
THREE_STEPS = str(EXAMPLES / "three_steps.json")
FAILING = {"name": "Always fails", "nodes": [
    {"id": "ok", "type": "noop", "config": {"output": {"x": 1}}},
    {"id": "boom", "type": "fail", "config": {"times": -1}},
], "edges": [{"from": "ok", "to": "boom"}]}


def braid(*args, **kwargs):
    """call_command('braid', …) returning (stdout, stderr)."""
    out, err = StringIO(), StringIO()
    call_command("braid", *[str(a) for a in args], stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def braid_error(*args) -> tuple[CommandError, str, str]:
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError) as info:
        call_command("braid", *[str(a) for a in args], stdout=out, stderr=err)
    return info.value, out.getvalue(), err.getvalue()


def write_json(path: Path, data) -> str:
    path.write_text(json.dumps(data))
    return str(path)


# --- validate -------------------------------------------------------------------------

def test_validate_ok():
    out, err = braid("validate", THREE_STEPS)
    assert out.strip() == "OK: Three steps (3 nodes)"
    assert err == ""


def test_validate_lists_every_problem_with_its_node(tmp_path):
    bad = write_json(tmp_path / "bad.json", {
        "name": "Bad",
        "nodes": [{"id": "a", "type": "no-such-type"}, {"id": "b", "type": "noop"}],
        "edges": [{"from": "a", "to": "ghost"}, {"from": "b", "to": "b"}],
    })
    error, out, err = braid_error("validate", bad)
    assert error.returncode == 1
    assert "3 problem(s)" in str(error)
    lines = err.strip().splitlines()
    assert len(lines) == 3, lines
    assert any("'a'" in line and "unknown type" in line for line in lines)
    assert any("ghost" in line and "dangling" in line for line in lines)
    assert any("'b'" in line and "cycle" in line for line in lines)
    assert all(": " in line for line in lines)
    assert out == ""


def test_validate_exit_code_and_stderr_from_the_shell(tmp_path):
    bad = write_json(tmp_path / "bad.json", {"name": "Bad", "nodes": [
        {"id": "only", "type": "no-such-type"}], "edges": []})
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings")
    done = subprocess.run([sys.executable, "manage.py", "braid", "validate", bad], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "node 'only': unknown type 'no-such-type'" in done.stderr
    assert done.stdout == ""
    ok = subprocess.run([sys.executable, "manage.py", "braid", "validate", THREE_STEPS],
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.strip() == "OK: Three steps (3 nodes)"


def test_validate_bad_json_says_where(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('{\n  "name": "x",\n  "nodes" []\n}')
    error, _, _ = braid_error("validate", path)
    assert error.returncode == 1
    assert "invalid JSON at line 3, column 11" in str(error)


def test_validate_missing_file(tmp_path):
    error, _, _ = braid_error("validate", tmp_path / "nope.json")
    assert "no such file" in str(error)


# --- run ------------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_run_json_waits_and_prints_the_execution_with_node_runs(engine):
    out, _ = braid("run", THREE_STEPS, "--input", '{"who": "cli"}', "--json", "--wait", 20,
                   "--client-id", "tests", "--priority", 7)
    detail = json.loads(out)
    assert detail["status"] == "succeeded"
    assert detail["output"] == {"step": 3, "who": "cli"}
    assert detail["adhoc"] is True
    assert detail["priority"] == 7 and detail["client_id"] == "tests"
    assert detail["progress"] == {"current_nodes": [], "completed": 3, "total": 3,
                                  "percent": 100}
    assert detail["duration_ms"] >= 0
    runs = detail["node_runs"]
    assert [r["node_id"] for r in runs] == ["a", "b", "c"]
    for run in runs:
        assert run["attempt"] == 1 and run["status"] == "succeeded"
        for key in ("output", "error_class", "error_message", "started_at", "finished_at",
                    "duration_ms"):
            assert key in run
    assert runs[2]["output"] == {"step": 3, "who": "cli"}


@pytest.mark.django_db(transaction=True)
def test_run_by_slug_with_progress_then_status(engine, publish):
    publish("three-steps", load_example("three_steps"))
    out, err = braid("run", "three-steps", "--input", '{"who": "x"}', "--wait", 20)
    execution = Execution.objects.get()
    assert out.splitlines()[0].startswith(f"{execution.pk}  (three-steps v1)")
    assert "succeeded in" in out and "(3/3 nodes)" in out
    assert '"who": "x"' in out
    assert "3/3" in err  # the progress bar's last frame
    assert execution.status == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_run_without_wait_prints_the_id_then_status(publish):
    publish("three-steps", load_example("three_steps"))
    out, _ = braid("run", "three-steps", "--input", '{"who": "y"}', "--wait", 0)
    execution_id = out.strip()
    assert Execution.objects.filter(pk=execution_id).exists()
    assert run_until_done(execution_id).status == "succeeded"

    out, _ = braid("status", execution_id, "--json")
    detail = json.loads(out)
    assert detail["id"] == execution_id and detail["status"] == "succeeded"
    assert detail["workflow"] == "three-steps" and detail["version"] == 1
    assert len(detail["node_runs"]) == 3

    out, _ = braid("status", execution_id)
    assert re.search(r"^Status\s+succeeded$", out, re.M)
    assert "three-steps v1" in out and "3/3 nodes (100%)" in out
    for node in ("a", "b", "c"):
        assert re.search(rf"│ {node}\s+│ 1\s+│ succeeded", out), out


@pytest.mark.django_db
def test_run_file_names_its_ad_hoc_workflow_after_the_definitions_name():
    out, _ = braid("run", THREE_STEPS, "--wait", 0)
    execution = Execution.objects.select_related("definition").get(pk=out.strip())

    assert execution.definition.adhoc
    assert execution.definition.name == "Three steps"
    assert re.fullmatch(r"three-steps-[0-9a-f]{12}", execution.definition.slug)
    out, _ = braid("run", THREE_STEPS, "--wait", 0)  # the same graph: the same workflow
    assert Execution.objects.get(pk=out.strip()).definition == execution.definition


@pytest.mark.django_db(transaction=True)
def test_run_failed_execution_exits_1(engine, tmp_path):
    path = write_json(tmp_path / "failing.json", FAILING)
    error, out, _ = braid_error("run", path, "--wait", 20)
    assert error.returncode == 1
    assert "failed" in str(error)
    assert "error: [execution] node boom:" in out


@pytest.mark.django_db(transaction=True)
def test_run_still_running_exits_2(publish):
    publish("three-steps", load_example("three_steps"))  # no engine runs here
    error, out, _ = braid_error("run", "three-steps", "--json", "--wait", 0.2)
    assert error.returncode == 2
    assert "still pending" in str(error) and "braid status" in str(error)
    assert json.loads(out)["status"] == "pending"


@pytest.mark.django_db
def test_run_idempotency_key_returns_the_same_execution(publish):
    publish("three-steps", load_example("three_steps"))
    first, _ = braid("run", "three-steps", "--wait", 0, "--idempotency-key", "k-1")
    second, err = braid("run", "three-steps", "--wait", 0, "--idempotency-key", "k-1")
    assert first == second
    assert "used before" in err
    assert Execution.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("args, message", [
    (["no-such-workflow"], "no workflow 'no-such-workflow'"),
    (["missing.json"], "missing.json: no such file"),
    (["{three}", "--input", '{"who": '], "--input: invalid JSON at line 1, column 9"),
    (["{three}", "--input", "[1, 2]"], "input must be a JSON object"),
    (["{three}", "--priority", "12"], "priority must be from 0 to 9"),
    (["{three}", "--input", "{}", "--input-file", "x.json"], "not both"),
    (["{three}", "--wait", "-1"], "--wait must be 0 or more"),
])
def test_run_bad_input_is_a_clear_error(args, message):
    args = [THREE_STEPS if a == "{three}" else a for a in args]
    error, _, _ = braid_error("run", *args)
    assert error.returncode == 1
    assert message in str(error)
    assert Execution.objects.count() == 0


DEEP = "[" * 10_000 + "]" * 10_000


@pytest.mark.django_db
def test_run_input_nested_10000_deep_is_a_clear_error():
    error, _, _ = braid_error("run", THREE_STEPS, "--input", DEEP)
    assert error.returncode == 1
    assert str(error) == "--input: nested more than 64 levels deep"
    assert Execution.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("command", ["validate", "run"])
def test_definition_file_nested_10000_deep_is_a_clear_error(command, tmp_path):
    path = tmp_path / "deep.json"
    path.write_text('{"name": "deep", "nodes": ' + DEEP + "}")
    error, _, _ = braid_error(command, path)
    assert error.returncode == 1
    assert str(error) == f"{path}: nested more than 64 levels deep"


def test_validate_3000_nodes_stops_at_max_nodes(tmp_path):
    path = write_json(tmp_path / "big.json", {
        "name": "big", "nodes": [{"id": f"n{i}", "type": "noop"} for i in range(3000)],
        "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(2999)]})
    error, _, err = braid_error("validate", path)
    assert error.returncode == 1
    assert err.strip() == "nodes: has 3000 nodes, more than the limit of 500 (BRAID_MAX_NODES)"


def test_deep_input_from_the_shell_exits_1_without_a_traceback(tmp_path):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings")
    deep = tmp_path / "deep.json"
    deep.write_text(DEEP)
    done = subprocess.run([sys.executable, "manage.py", "braid", "validate", str(deep)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip() == f"CommandError: {deep}: nested more than 64 levels deep"
    assert "Traceback" not in done.stderr


@pytest.mark.django_db
def test_run_invalid_definition_lists_problems(tmp_path):
    bad = write_json(tmp_path / "bad.json", {"name": "Bad", "nodes": [
        {"id": "x", "type": "nope"}], "edges": [{"from": "x", "to": "y"}]})
    error, _, err = braid_error("run", bad, "--wait", 0)
    assert error.returncode == 1
    assert "2 problem(s)" in str(error)
    assert "node 'x': unknown type 'nope'" in err
    assert "edge x → y" in err


@pytest.mark.django_db
def test_run_input_from_file_checked_against_schema(tmp_path):
    spec = dict(load_example("three_steps"), input_schema={
        "type": "object", "required": ["who"], "properties": {"who": {"type": "string"}}})
    definition = write_json(tmp_path / "typed.json", spec)
    data = write_json(tmp_path / "input.json", {"who": 5})
    error, _, err = braid_error("run", definition, "--input-file", data, "--wait", 0)
    assert "input_schema" in str(error)
    assert "input/who: 5 is not of type 'string'" in err
    good = write_json(tmp_path / "good.json", {"who": "z"})
    out, _ = braid("run", definition, "--input-file", good, "--wait", 0)
    assert Execution.objects.get(pk=out.strip()).input == {"who": "z"}


# --- status ---------------------------------------------------------------------------

@pytest.mark.django_db
@pytest.mark.parametrize("execution_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000"])
def test_status_unknown_id(execution_id):
    error, _, _ = braid_error("status", execution_id)
    assert error.returncode == 1
    assert "no execution" in str(error)


@pytest.mark.django_db(transaction=True)
def test_status_of_a_failed_execution_shows_the_error(tmp_path):
    out, _ = braid("run", write_json(tmp_path / "f.json", FAILING), "--wait", 0)
    run_until_done(out.strip())
    text, _ = braid("status", out.strip())
    assert re.search(r"^Status\s+failed$", text, re.M)
    assert re.search(r"^Error\s+\[execution\] node boom: ", text, re.M)
    assert "planned failure" in text


@pytest.mark.django_db
def test_status_accepts_a_unique_prefix_of_the_id(publish):
    publish("three-steps", load_example("three_steps"))
    execution = start_execution(StartRequest(workflow="three-steps"))
    full = str(execution.pk)

    for prefix in (full[:8], full[:13], full[:13].replace("-", ""), full.upper()[:6]):
        out, _ = braid("status", prefix, "--json")
        assert json.loads(out)["id"] == full


@pytest.mark.django_db
def test_status_with_an_ambiguous_or_unknown_prefix_exits_1(publish):
    version = publish("three-steps", load_example("three_steps"))
    for tail in ("1", "2"):
        Execution.objects.create(id=uuid.UUID(f"abcdef00-0000-0000-0000-00000000000{tail}"),
                                 version=version, definition=version.definition)

    error, _, _ = braid_error("status", "abcdef")
    assert error.returncode == 1
    assert str(error) == ("'abcdef' is the start of more than one execution id "
                          "(abcdef00-0000-0000-0000-000000000001, "
                          "abcdef00-0000-0000-0000-000000000002); give more of it")
    error, _, _ = braid_error("status", "abcde0")
    assert error.returncode == 1
    assert str(error) == "no execution id starts with 'abcde0'"
    out, _ = braid("status", "abcdef00-0000-0000-0000-000000000002", "--json")
    assert json.loads(out)["id"].endswith("0002")


# --- reap / ticker ----------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_reap_prints_counts():
    out, _ = braid("reap")
    counts = dict(line.split(": ") for line in out.strip().splitlines())
    assert set(counts) == {"timers_woken", "leases_reaped", "deadlines_timed_out",
                           "wakeups_resent", "pool_waits_released",
                           "expired_executions_deleted"}
    assert all(value.isdigit() for value in counts.values())


@pytest.mark.django_db(transaction=True)
def test_ticker_runs_for_n_seconds_and_restores_signal_handlers():
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    started = time.monotonic()
    out, _ = braid("ticker", "--seconds", 0.3)
    assert 0.3 <= time.monotonic() - started < 5
    assert "ticker stopped" in out
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_make_run_honours_host_and_port():
    done = subprocess.run(["make", "-n", "run", "HOST=0.0.0.0", "PORT=9123"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "braid serve --host 0.0.0.0 --port 9123" in done.stdout
    assert "braid demo --host 0.0.0.0 --port 9123" in done.stdout
    default = subprocess.run(["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True,
                             timeout=60, env={k: v for k, v in os.environ.items()
                                              if k not in ("HOST", "PORT")})
    assert "braid serve --host 127.0.0.1 --port 8000" in default.stdout


# --- demo -------------------------------------------------------------------------------

@pytest.mark.django_db
def test_demo_creates_admin_and_workflows_idempotently(monkeypatch, settings):
    from django.contrib.auth import get_user_model

    settings.DEBUG = True

    from apps.workflows.models import WorkflowDefinition, WorkflowVersion

    monkeypatch.delenv("BRAID_DEMO_PASSWORD", raising=False)
    examples = sorted(p.stem.replace("_", "-") for p in EXAMPLES.glob("*.json"))
    out, _ = braid("demo")
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password("braid-demo")
    assert "Admin: http://127.0.0.1:8000/admin/  user admin  password braid-demo" in out
    assert sorted(WorkflowDefinition.objects.values_list("slug", flat=True)) == examples
    for slug in examples:
        assert re.search(rf"^  {slug}\s+v1 .*\(new\)$", out, re.M), out
    versions = WorkflowVersion.objects.count()

    admin.set_password("changed")
    admin.save()
    monkeypatch.setenv("BRAID_DEMO_PASSWORD", "another-secret")
    out, _ = braid("demo")
    assert get_user_model().objects.count() == 1
    assert get_user_model().objects.get(username="admin").check_password("another-secret")
    assert "password another-secret" in out
    assert WorkflowVersion.objects.count() == versions
    assert out.count("(unchanged)") == len(examples)


@pytest.mark.django_db
def test_demo_reports_a_broken_example(tmp_path, settings):
    settings.DEBUG = True
    write_json(tmp_path / "good_one.json", load_example("three_steps"))
    write_json(tmp_path / "bad_one.json", {"name": "Bad", "nodes": [], "edges": []})
    error, out, err = braid_error("demo", "--examples", tmp_path)
    assert error.returncode == 1 and "1 example(s)" in str(error)
    assert "good-one" in out
    assert "bad_one.json" in err


@pytest.mark.django_db
def test_demo_refuses_to_run_with_debug_off_and_touches_no_user(settings):
    from django.contrib.auth import get_user_model

    from apps.workflows.models import WorkflowDefinition

    settings.DEBUG = False
    admin = get_user_model().objects.create_superuser("admin", "a@example.com", "s3cret-pw")
    error, out, _ = braid_error("demo")
    assert error.returncode == 1
    assert "refuses to run with DEBUG off" in str(error)
    admin.refresh_from_db()
    assert admin.check_password("s3cret-pw")
    assert not WorkflowDefinition.objects.exists() and "Admin:" not in out


# --- serve ------------------------------------------------------------------------------

def _child(code: str):
    from apps.engine.management.commands.braid import Child

    return Child(code[:12], [sys.executable, "-c", code])


def _supervisor(children, grace_s=5.0):
    from apps.engine.management.commands.braid import Supervisor

    out = StringIO()
    supervisor = Supervisor(children, env=dict(os.environ), cwd=str(ROOT), out=out,
                            grace_s=grace_s)
    return supervisor, out


def test_supervisor_stops_the_others_when_a_child_dies():
    dies = _child("import sys; print('bye', flush=True); sys.exit(3)")
    sleeps = _child("import time; print('up', flush=True); time.sleep(60)")
    supervisor, out = _supervisor([dies, sleeps])
    supervisor.start()
    assert supervisor.wait() is dies
    assert dies.returncode == 3
    assert sleeps.returncode == -signal.SIGTERM
    assert f"{dies.name:<8}| bye" in out.getvalue()
    assert "exited with code 3; stopping the others" in out.getvalue()


def test_supervisor_kills_the_group_of_a_straggler():
    code = ("import os, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "os.fork(); print('ignoring', flush=True); time.sleep(60)")
    stubborn = _child(code)
    dies = _child("import sys; sys.exit(1)")
    supervisor, out = _supervisor([stubborn, dies], grace_s=0.5)
    supervisor.start()
    started = time.monotonic()
    assert supervisor.wait() is dies
    assert time.monotonic() - started < 10
    assert stubborn.returncode == -signal.SIGKILL
    assert not stubborn.group_alive()  # the forked grandchild went too
    assert "still running after 0.5 s: killing its process group" in out.getvalue()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(bool(os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL")),
                    reason="runs the embedded default (SQLite file + ORM broker) only")
def test_serve_end_to_end(tmp_path):
    """migrate, demo, serve; the admin answers, a run succeeds, SIGINT leaves nothing."""
    import httpx
    import psutil

    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("BRAID_", "DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    env.update(DEBUG="1", BRAID_VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="config.settings",
               PYTHONUNBUFFERED="1")
    manage = [sys.executable, "manage.py"]
    for args in (["migrate", "--noinput", "-v0"], ["braid", "demo"]):
        subprocess.run(manage + args, cwd=ROOT, env=env, check=True, capture_output=True,
                       timeout=120)
    port = _free_port()
    log = open(tmp_path / "serve.log", "w+")  # noqa: SIM115
    serve = subprocess.Popen(manage + ["braid", "serve", "--port", str(port)], cwd=ROOT,
                             env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}/admin/login/"
        deadline = time.monotonic() + 60
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                status = httpx.get(url, timeout=2).status_code
            except httpx.TransportError:
                time.sleep(0.1)
        assert status == 200, (tmp_path / "serve.log").read_text()
        assert httpx.get(f"http://127.0.0.1:{port}/static/admin/css/base.css").status_code == 200
        children = [int(pid) for pid in re.findall(r"^  \w+ +pid (\d+)", (tmp_path / "serve.log")
                                                   .read_text(), re.M)]
        assert len(children) == 2  # web, worker (cluster + ticker)
        group = [p for p in psutil.process_iter(["pid"]) if _pgid(p.pid) in children]

        done = subprocess.run(manage + ["braid", "run", "three-steps", "--input",
                                        '{"who": "e2e"}', "--json", "--wait", "30"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["output"] == {"step": 3, "who": "e2e"}
    finally:
        serve.send_signal(signal.SIGINT)
        code = serve.wait(timeout=60)
        log.seek(0)
        text = log.read()
        log.close()
    assert code == 0, text
    assert "stopped: web, worker" in text
    time.sleep(0.2)
    left = [p.pid for p in group if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert left == [], text


def _pgid(pid: int):
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None
