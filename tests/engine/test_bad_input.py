"""Bad input never becomes a 500 or a traceback: inputs, outputs and signal payloads
that are nested too deeply or too big get an error that names what is wrong."""

import pytest
from django.conf import settings

from apps.engine.errors import InputInvalid
from apps.engine.models import Execution, NodeRun
from apps.engine.signaling import send_signal
from apps.engine.start import StartRequest, start_execution
from apps.engine.worker import drain
from tests.conftest import run_until_done

pytestmark = pytest.mark.django_db(transaction=True)

ECHO = {"name": "echo", "nodes": [
    {"id": "echo", "type": "python",
     "config": {"function": "braid.echo", "args": {"pad": "x" * 1000}}}]}
SIGNAL = {"name": "wait for go", "nodes": [
    {"id": "go", "type": "signal", "config": {"name": "go"}}]}


def nested(levels: int):
    value: dict = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


@pytest.fixture
def small_payloads(monkeypatch):
    monkeypatch.setitem(settings.BRAID, "MAX_PAYLOAD_BYTES", 2000)


def test_input_nested_10000_deep_is_refused_and_nothing_is_written():
    with pytest.raises(InputInvalid, match="input is nested more than 64 levels deep"):
        start_execution(StartRequest(definition=ECHO, input=nested(10_000)))
    assert not Execution.objects.exists()


def test_input_over_the_size_limit_is_refused_naming_its_size(small_payloads):
    with pytest.raises(InputInvalid, match=r"input is \d+ bytes, more than the limit of 2000"):
        start_execution(StartRequest(definition=ECHO, input={"pad": "y" * 2000}))
    assert not Execution.objects.exists()


def test_output_over_the_size_limit_fails_the_node_without_retrying(small_payloads):
    execution = start_execution(StartRequest(definition=ECHO, input={"pad": "y" * 1500}))
    execution = run_until_done(execution.pk)

    (run,) = NodeRun.objects.filter(execution=execution)
    assert execution.status == "failed"
    assert run.error_class == "execution" and run.retryable is False
    assert "output is" in run.error_message
    assert "more than the limit of 2000" in run.error_message


def test_output_nested_too_deeply_fails_the_node_naming_it():
    # The input is 64 deep (allowed); echo wraps it one level deeper.
    execution = start_execution(StartRequest(definition=ECHO, input=nested(64)))
    execution = run_until_done(execution.pk)

    (run,) = NodeRun.objects.filter(execution=execution)
    assert execution.status == "failed"
    assert run.error_message == "output is nested more than 64 levels deep"


@pytest.mark.parametrize("payload, message", [
    ({"pad": "z" * 3000}, r"the payload of signal 'go' is \d+ bytes, more than the limit "
                          r"of 2000"),
    (nested(10_000), "the payload of signal 'go' is nested more than 64 levels deep"),
])
def test_signal_payload_too_big_or_too_deep_is_refused_and_the_node_keeps_waiting(
        small_payloads, payload, message):
    execution = start_execution(StartRequest(definition=SIGNAL))
    drain(budget_s=1)

    with pytest.raises(InputInvalid, match=message):
        send_signal(execution.pk, "go", payload)

    assert NodeRun.objects.get(execution=execution).status == "waiting"
    send_signal(execution.pk, "go", {"ok": True})
    assert run_until_done(execution.pk).status == "succeeded"
