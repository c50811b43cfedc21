"""`manage.py braid SUBCOMMAND`: validate, publish, run, status, reap, ticker, worker, demo,
serve.

Every subcommand calls the same services the API and admin use; this module
only parses arguments and prints. Exit codes: 0 success, 1 bad input or a
failed/cancelled/compensated execution, 2 an execution still running when the
wait ended, 130 interrupted while watching.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError
from django.utils import timezone

from apps.engine import cli_extensions, cli_rollout
from apps.engine.statuses import SUCCESSFUL_EXECUTION, UNSUCCESSFUL_EXECUTION
from apps.engine.supervisor import Child, Supervisor, check_port_free
from apps.nodes import payloads
from apps.workflows import cli as workflows_cli
from apps.workflows.errors import BraidError

DEFAULT_TTY_WAIT_S = 60.0
POLL_S = 0.1
STOP_GRACE_S = 30.0


# --- small helpers -------------------------------------------------------------------

def parse_json(text: str, source: str):
    try:
        return payloads.loads(text, source)
    except payloads.PayloadError as exc:
        raise CommandError(str(exc), returncode=1) from None


def load_json_file(path: str):
    if path == "-":
        return parse_json(sys.stdin.read(), "<stdin>")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CommandError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise CommandError(f"{path}: is a directory, not a JSON file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CommandError(f"{path}: cannot read: {exc}") from None
    return parse_json(text, path)


def problem_line(problem: dict) -> str:
    where = problem.get("where") or problem.get("node") or "definition"
    return f"{where}: {problem.get('message', '')}"


def human_ms(ms) -> str:
    if ms is None:
        return "-"
    if ms < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms / 1000, 60)
    return f"{int(minutes)}m {seconds:04.1f}s"


def human_time(value) -> str:
    if not value:
        return "-"
    if isinstance(value, str):
        from django.utils.dateparse import parse_datetime

        value = parse_datetime(value)
    local = timezone.localtime(value)
    return local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + local.strftime(" %Z")


def error_line(error) -> str:
    if not error:
        return "-"
    if not isinstance(error, dict):
        return str(error)
    node = f" node {error['node']}:" if error.get("node") else ""
    return f"[{error.get('class') or 'error'}]{node} {error.get('message', '')}".strip()


def raw_stream(wrapper):
    """The file under Django's OutputWrapper (rich writes partial lines and escapes)."""
    return getattr(wrapper, "_out", wrapper)


def _admin_url(host: str, port: int) -> str:
    shown = "127.0.0.1" if host in ("0.0.0.0", "", "::") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/admin/"


# --- the command ---------------------------------------------------------------------

class Command(BaseCommand):
    help = "Braid: validate, run and inspect workflows; run the ticker; start the platform."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", metavar="SUBCOMMAND", required=True)

        p = sub.add_parser("validate", help="check a workflow definition file")
        p.add_argument("file", metavar="FILE", help="a JSON workflow definition ('-' for stdin)")

        workflows_cli.add_publish(sub)

        p = sub.add_parser(
            "run", help="start an execution of a definition file or a published workflow",
            description="Start an execution and (by default on a terminal) watch it to the end. "
                        "Exit code: 0 succeeded (or started, when not waiting), 1 failed/"
                        "cancelled/compensated or bad input, 2 still running when the wait ended.")
        p.add_argument("target", metavar="FILE_OR_SLUG",
                       help="a JSON definition file (run inline) or a published workflow's slug")
        p.add_argument("--input", dest="input_json", metavar="JSON",
                       help="the execution input as a JSON object (default {})")
        p.add_argument("--input-file", metavar="FILE", help="read the input from a JSON file")
        p.add_argument("--wait", type=float, metavar="SECONDS",
                       help=f"how long to wait for the end (default {DEFAULT_TTY_WAIT_S:g} on a "
                            "terminal or with --json, else 0); 0 prints the id and returns")
        p.add_argument("--json", dest="as_json", action="store_true",
                       help="print the execution and its node runs as JSON")
        p.add_argument("--priority", type=int, default=5, metavar="N", help="0 (low) to 9 (high)")
        p.add_argument("--idempotency-key", metavar="K",
                       help="starting again with the same key returns the same execution")
        p.add_argument("--client-id", default="", metavar="C")
        p.add_argument("--queue", default="default", metavar="Q")
        p.add_argument("--deadline", type=float, metavar="SECONDS",
                       help="fail the execution (timeout) if not finished by then")

        p = sub.add_parser("status", help="show an execution and its node runs")
        p.add_argument("execution_id", metavar="ID",
                       help="an execution id, or enough of its start to be unique")
        p.add_argument("--json", dest="as_json", action="store_true",
                       help="print the execution and its node runs as JSON")

        sub.add_parser("reap", help="one reaper pass: timers, expired leases, deadlines, "
                                    "lost wake-ups")

        p = sub.add_parser("ticker", help="run the ticker (timers, back-offs, reaper) until "
                                          "SIGTERM/SIGINT")
        p.add_argument("--seconds", type=float, metavar="N", help="stop after N seconds")

        p = sub.add_parser("worker", help="run a django-q2 cluster and the ticker (one per "
                                          "host; add hosts to scale out)")
        p.add_argument("--no-ticker", action="store_true",
                       help="run the cluster only (run `braid ticker` elsewhere)")

        p = sub.add_parser("demo", help="create the demo admin user and publish examples/*.json")
        p.add_argument("--examples", metavar="DIR", help="directory of example definitions")
        p.add_argument("--host", default="127.0.0.1", help="where `serve` will listen (for "
                                                          "the admin link printed)")
        p.add_argument("--port", type=int, default=8000)

        p = sub.add_parser("serve", help="start daphne and a worker (cluster + ticker); Ctrl-C "
                                         "stops both")
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=8000)
        p.add_argument("--workers", type=int, metavar="N",
                       help="qcluster worker processes (default: BRAID_WORKERS)")
        cli_rollout.add_parsers(sub)
        for extension in cli_extensions.modules():
            extension.add_parsers(sub)

    def handle(self, *args, **options):
        name = options["subcommand"]
        try:
            if name in cli_rollout.COMMANDS:
                return cli_rollout.run(self, name, options)
            for extension in cli_extensions.modules():
                if name in extension.COMMANDS:
                    return extension.run(self, name, options)
            return getattr(self, f"cmd_{name}")(**options)
        except BraidError as exc:
            for problem in exc.problems:
                self.stderr.write(problem_line(problem))
            raise CommandError(exc.message, returncode=1) from None
        except DatabaseError as exc:
            hint = " (has `manage.py migrate` run?)" if "table" in str(exc) else ""
            raise CommandError(f"database error: {exc}{hint}", returncode=1) from exc

    # --- validate ------------------------------------------------------------------

    def cmd_validate(self, file, **_):
        from apps.workflows.services import check_definition

        spec = load_json_file(file)
        try:
            check_definition(spec)
        except BraidError as exc:
            for problem in exc.problems:
                self.stderr.write(problem_line(problem))
            raise CommandError(f"{file}: {exc.message}", returncode=1) from None
        name = spec.get("name") or Path(file).stem
        self.stdout.write(f"OK: {name} ({len(spec.get('nodes') or [])} nodes)")

    def cmd_publish(self, file, slug, notes, **_):
        workflows_cli.publish(self, load_json_file(file), file, slug, notes)

    # --- run -----------------------------------------------------------------------

    def cmd_run(self, target, input_json, input_file, wait, as_json, priority, idempotency_key,
                client_id, queue, deadline, **_):
        from apps.engine.models import Execution
        from apps.engine.start import StartRequest, start_execution, wait_for

        if input_json is not None and input_file is not None:
            raise CommandError("give --input or --input-file, not both")
        if input_file is not None:
            data = load_json_file(input_file)
        elif input_json is not None:
            data = parse_json(input_json, "--input")
        else:
            data = {}
        if wait is None:
            wait = DEFAULT_TTY_WAIT_S if (as_json or self.stdout.isatty()) else 0.0
        if wait < 0:
            raise CommandError("--wait must be 0 or more seconds")

        request = StartRequest(input=data, priority=priority, queue=queue, client_id=client_id,
                               idempotency_key=idempotency_key or None, deadline_s=deadline)
        if os.path.isfile(target):
            request.definition = load_json_file(target)
        elif target.endswith(".json") or os.sep in target:
            raise CommandError(f"{target}: no such file")
        else:
            request.workflow = target
        existed = bool(idempotency_key) and Execution.objects.filter(
            idempotency_key=idempotency_key).exists()
        execution = start_execution(request)
        if existed:
            self.stderr.write(f"idempotency key {idempotency_key!r} was used before: "
                              f"this is execution {execution.pk}, started earlier")

        if as_json:
            if wait:
                wait_for(execution.pk, wait)
            from apps.engine.selectors import execution_detail

            detail = execution_detail(execution.pk)
            self.stdout.write(_json_dumps(detail))
            if wait:
                self._exit_for(detail["status"], detail["id"], wait)
            return

        if not wait:
            self.stdout.write(str(execution.pk))
            return
        execution = Execution.objects.select_related("version__definition").get(pk=execution.pk)
        self.stdout.write(f"{execution.pk}  ({execution.version.definition.slug} "
                          f"v{execution.version.number})")
        status = self._follow(execution.pk, wait)
        from apps.engine.selectors import execution_detail

        detail = execution_detail(execution.pk)
        self._print_result(detail)
        self._exit_for(status, detail["id"], wait)

    def _follow(self, execution_id, wait: float) -> str:
        """A live progress bar of nodes: refreshed every POLL_S, and at once when the
        execution finishes (pushed by `notify.watch`)."""
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        from apps.engine.models import TERMINAL_EXECUTION, Execution

        console = Console(file=raw_stream(self.stderr))
        end = time.monotonic() + wait

        def poll():
            row = Execution.objects.filter(pk=execution_id).values(
                "status", "completed_nodes", "total_nodes", "current_nodes").first()
            return {"completed": row["completed_nodes"], "total": row["total_nodes"] or None,
                    "status": row["status"], "description": ", ".join(row["current_nodes"] or [])}

        from apps.engine import notify

        try:
            with notify.watch(execution_id) as watch, Progress(
                    SpinnerColumn(), TextColumn("{task.fields[status]:<12}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("{task.description}"), console=console) as progress:
                state = poll()
                task = progress.add_task(**state)
                while state["status"] not in TERMINAL_EXECUTION:
                    left = end - time.monotonic()
                    if left <= 0:
                        break
                    watch.wait(min(POLL_S, left))
                    state = poll()
                    progress.update(task, **state)
        except KeyboardInterrupt:
            raise CommandError(
                f"stopped watching; execution {execution_id} goes on. "
                f"Follow it with: manage.py braid status {execution_id}", returncode=130) from None
        status = state["status"]
        return status

    def _print_result(self, detail: dict) -> None:
        p = detail["progress"]
        took = human_ms(detail["duration_ms"])
        self.stdout.write(f"{detail['status']} in {took} ({p['completed']}/{p['total']} nodes)"
                          if detail["finished_at"] else
                          f"{detail['status']} ({p['completed']}/{p['total']} nodes"
                          f"{', now: ' + ', '.join(p['current_nodes']) if p['current_nodes'] else ''})")
        if detail["output"] is not None:
            self.stdout.write("output:")
            self.stdout.write(_json_dumps(detail["output"]))
        if detail["error"]:
            self.stdout.write(f"error: {error_line(detail['error'])}")

    def _exit_for(self, status: str, execution_id: str, wait: float) -> None:
        if status in SUCCESSFUL_EXECUTION:
            return
        if status in UNSUCCESSFUL_EXECUTION:
            raise CommandError(f"execution {execution_id} {status}", returncode=1)
        raise CommandError(f"execution {execution_id} is still {status} after {wait:g} s; "
                           f"follow it with: manage.py braid status {execution_id}",
                           returncode=2)

    # --- status ----------------------------------------------------------------------

    def cmd_status(self, execution_id, as_json, **_):
        from apps.engine.selectors import execution_detail, execution_id_from_prefix

        detail = execution_detail(execution_id_from_prefix(execution_id))
        if as_json:
            self.stdout.write(_json_dumps(detail))
            return
        p = detail["progress"]
        workflow = f"{detail['workflow']} v{detail['version']}"
        if detail["workflow_name"] and detail["workflow_name"] != detail["workflow"]:
            workflow += f" ({detail['workflow_name']})"
        lines = [
            ("Execution", detail["id"]),
            ("Workflow", workflow),
            ("Status", detail["status"]),
            ("Progress", f"{p['completed']}/{p['total']} nodes ({p['percent']}%)"
                         + (f", now: {', '.join(p['current_nodes'])}" if p["current_nodes"] else "")),
            ("Created", human_time(detail["created_at"])),
            ("Started", human_time(detail["started_at"])),
            ("Finished", human_time(detail["finished_at"])
             + (f"  (took {human_ms(detail['duration_ms'])})" if detail["finished_at"] else "")),
        ]
        if detail["deadline"]:
            lines.append(("Deadline", human_time(detail["deadline"])))
        extra = [f"priority {detail['priority']}", f"queue {detail['queue']}"]
        if detail["client_id"]:
            extra.append(f"client {detail['client_id']}")
        if detail["idempotency_key"]:
            extra.append(f"key {detail['idempotency_key']}")
        lines.append(("Options", ", ".join(extra)))
        lines.append(("Input", _json_dumps(detail["input"], compact=True)))
        if detail["output"] is not None:
            lines.append(("Output", _json_dumps(detail["output"], compact=True)))
        if detail["error"]:
            lines.append(("Error", error_line(detail["error"])))
        for reason in detail["why"]:
            lines.append(("Why", f"{reason['node']}: {reason['message']}"))
        for label, value in lines:
            self.stdout.write(f"{label:<10} {value}")

        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"Node runs ({len(detail['node_runs'])})", title_justify="left")
        for column in ("node", "attempt", "status", "started", "duration", "error"):
            table.add_column(column, overflow="fold")
        for run in detail["node_runs"]:
            error = ""
            if run["error_class"] or run["error_message"]:
                error = f"[{run['error_class']}] {run['error_message']}".strip()
            table.add_row(run["node_id"] + (" (undo)" if run["compensation"] else ""),
                          str(run["attempt"]), run["status"],
                          human_time(run["started_at"]) if run["started_at"] else "-",
                          human_ms(run["duration_ms"]), error, )
        Console(file=raw_stream(self.stdout), highlight=False).print(table)

    # --- reap / ticker -----------------------------------------------------------------

    def cmd_reap(self, **_):
        from apps.engine.maintenance import reap

        for key, value in reap().items():
            self.stdout.write(f"{key}: {value}")

    def cmd_ticker(self, seconds, **_):
        from apps.engine.ticker import run_ticker

        cfg = settings.BRAID
        until = f"for {seconds:g} s" if seconds else "until SIGTERM/SIGINT"
        self.stdout.write(f"ticker: timers every {cfg['TICK_S']:g} s, reaper every "
                          f"{cfg['REAP_EVERY_S']:g} s, {until} (pid {os.getpid()})")
        # run_ticker installs SIGTERM/SIGINT handlers; put the caller's back afterwards.
        main = threading.current_thread() is threading.main_thread()
        saved = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
        try:
            run_ticker(max_seconds=seconds)
        finally:
            for sig, handler in saved.items():
                signal.signal(sig, handler)
        self.stdout.write("ticker stopped")

    def cmd_worker(self, no_ticker, **_):
        from apps.engine.workerhost import run_worker

        self.stdout.write(f"worker: {settings.BRAID['WORKERS']} worker process(es)"
                          f"{'' if no_ticker else ' + ticker'} (pid {os.getpid()})")
        self.stdout.flush()
        run_worker(ticker=not no_ticker)
        self.stdout.write("worker stopped")

    # --- demo --------------------------------------------------------------------------

    def cmd_demo(self, examples, host, port, **_):
        if not settings.DEBUG:
            # It makes `admin` a superuser with a known password: on a real
            # database that is a way in for anyone who reads the docs.
            raise CommandError("braid demo refuses to run with DEBUG off: it resets the "
                               "`admin` superuser's password. It is for a development "
                               "machine (DEBUG=1).", returncode=1)
        from django.contrib.auth import get_user_model

        from apps.workflows.models import WorkflowVersion
        from apps.workflows.services import publish_version

        password = os.environ.get("BRAID_DEMO_PASSWORD") or "braid-demo"
        user_model = get_user_model()
        admin, created = user_model.objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com"})
        admin.is_staff = admin.is_superuser = admin.is_active = True
        admin.set_password(password)
        admin.save()

        from apps.engine.models import RateLimit

        # The seed's default: no downstream API is called more than 100 times a minute.
        RateLimit.objects.get_or_create(scope="node_type", target="http",
                                        defaults={"rate": 100, "period_s": 60})

        folder = Path(examples) if examples else Path(settings.BASE_DIR) / "examples"
        if not folder.is_dir():
            raise CommandError(f"{folder}: no such directory")
        published, failures = [], []
        for path in sorted(folder.glob("*.json")):
            slug = path.stem.replace("_", "-")
            try:
                spec = load_json_file(str(path))
                before = WorkflowVersion.objects.filter(definition__slug=slug).order_by(
                    "-number").values_list("pk", flat=True).first()
                version = publish_version(slug, spec, author=admin,
                                          notes=f"published by `braid demo` from {path.name}")
            except CommandError as exc:
                failures.append([str(exc)])
                continue
            except BraidError as exc:
                failures.append([f"{path.name}: {exc.message}"]
                                + [f"  {problem_line(p)}" for p in exc.problems])
                continue
            state = "new" if version.pk != before else "unchanged"
            published.append((slug, version.number, version.definition.name, state))

        self.stdout.write(f"Admin: {_admin_url(host, port)}  user admin  password {password}"
                          f"  ({'created' if created else 'password reset'})")
        self.stdout.write(f"Workflows ({len(published)}):")
        width = max((len(slug) for slug, *_ in published), default=0)
        for slug, number, name, state in published:
            self.stdout.write(f"  {slug:<{width}}  v{number:<3} {name}  ({state})")
        if failures:
            for lines in failures:
                for line in lines:
                    self.stderr.write(line)
            raise CommandError(f"{len(failures)} example(s) could not be published", returncode=1)

    # --- serve -------------------------------------------------------------------------

    def cmd_serve(self, host, port, workers, **_):
        from django.db import DEFAULT_DB_ALIAS, connections
        from django.db.migrations.executor import MigrationExecutor

        if workers is not None and workers < 1:
            raise CommandError("--workers must be at least 1")
        if not (0 < port < 65536):
            raise CommandError("--port must be from 1 to 65535")
        executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
        if executor.migration_plan(executor.loader.graph.leaf_nodes()):
            raise CommandError("the database has unapplied migrations: "
                               "run `manage.py migrate` first")
        connections.close_all()
        check_port_free(host, port)

        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        if workers:
            env["BRAID_WORKERS"] = str(workers)
        n_workers = workers or settings.BRAID["WORKERS"]
        manage = str(Path(settings.BASE_DIR) / "manage.py")
        py = sys.executable
        children = [
            Child("web", [py, "-m", "daphne", "-b", host, "-p", str(port),
                          "config.asgi:application"],
                  f"daphne on http://{host}:{port}/"),
            Child("worker", [py, manage, "braid", "worker"],
                  f"django-q2 cluster with {n_workers} worker process(es) + ticker (timers "
                  f"every {settings.BRAID['TICK_S']:g} s, reaper every "
                  f"{settings.BRAID['REAP_EVERY_S']:g} s)"),
        ]
        out = raw_stream(self.stdout)
        supervisor = Supervisor(children, env=env, cwd=str(settings.BASE_DIR), out=out)
        supervisor.start()
        self.stdout.write("Braid is running:")
        for child in children:
            self.stdout.write(f"  {child.name:<8} pid {child.proc.pid:<7} {child.about}")
        self.stdout.write(f"Admin: {_admin_url(host, port)}")
        if not settings.DEBUG:
            self.stdout.write("DEBUG is off: daphne serves no /static/ files; run collectstatic "
                              "and serve STATIC_ROOT from the proxy in front (see deploy/).")
        self.stdout.write("Press Ctrl-C to stop.")
        self.stdout.flush()
        died = supervisor.wait()
        if died is not None:
            raise CommandError(f"{died.name} (pid {died.proc.pid}) exited unexpectedly with "
                               f"code {died.returncode}; stopped the others", returncode=1)
        self.stdout.write(f"stopped: {', '.join(c.name for c in children)} "
                          f"in {supervisor.stop_seconds:.1f} s")


def _json_dumps(value, compact: bool = False) -> str:
    if compact:
        return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)
    return json.dumps(value, ensure_ascii=False, indent=2, default=str)
