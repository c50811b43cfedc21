"""`manage.py braid retry|skip|resume|rerun|compensate|pause|unpause|mark-failed`."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.engine.models import Execution, ExecutionEvent
from apps.engine.start import StartRequest, start_execution
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

CHAIN = {"name": "cli chain",
         "nodes": [{"id": "a", "type": "noop", "config": {"output": {"n": 1}}},
                   {"id": "b", "type": "fail", "config": {"times": 99}},
                   {"id": "c", "type": "transform",
                    "config": {"output": {"n": "nodes.b.output.n + 1"}}}],
         "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}],
         "output": {"n": "nodes.c.output.n"}}


def braid(*args) -> str:
    out = StringIO()
    call_command("braid", *args, stdout=out)
    return out.getvalue()


def failed():
    execution = start_execution(StartRequest(definition=CHAIN))
    assert run_until_done(execution.pk).status == "failed"
    return str(execution.pk)


def test_braid_skip_feeds_the_output_downstream_and_is_audited_as_the_system():
    ref = failed()
    assert "is now running" in braid("skip", ref, "b", "--output", '{"n": 5}', "--reason", "x")
    assert run_until_done(ref).output == {"n": 6}
    assert ExecutionEvent.objects.get(execution_id=ref, type="operator.skipped").payload["by"] \
        == "system"


def test_braid_rerun_prints_the_new_execution_and_resume_retry_refuse_clearly():
    ref = failed()
    out = braid("rerun", ref, "b")
    new_id = out.split("re-run started: ")[1].split()[0]
    assert Execution.objects.get(pk=new_id).version_id == Execution.objects.get(pk=ref).version_id
    with pytest.raises(CommandError, match="node a is succeeded"):
        braid("retry", ref, "a")
    with pytest.raises(CommandError, match="--input: invalid JSON"):
        braid("retry", ref, "b", "--input", "{")
    with pytest.raises(CommandError, match="no execution"):
        braid("resume", "00000000-0000-0000-0000-000000000000")


def test_braid_mark_failed_pause_and_compensate_from_the_command_line():
    spec = {"name": "cli nap", "nodes": [{"id": "nap", "type": "delay",
                                          "config": {"seconds": 60}}], "edges": []}
    ref = str(start_execution(StartRequest(definition=spec)).pk)
    assert "is now" in braid("pause", ref)
    assert "is now" in braid("unpause", ref)
    assert "is now failed" in braid("mark-failed", ref, "--reason", "stop")
    with pytest.raises(CommandError, match="no completed step with a compensating node"):
        braid("compensate", ref)
