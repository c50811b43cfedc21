"""Statuses are defined once (apps.engine.statuses) and the models use them."""

import json

from apps.engine import statuses
from apps.engine.models import Execution, NodeRun
from apps.engine.statuses import ExecutionStatus, RunStatus


def test_every_status_is_either_terminal_or_active():
    assert statuses.TERMINAL_EXECUTION | statuses.ACTIVE_EXECUTION == set(ExecutionStatus)
    assert not statuses.TERMINAL_EXECUTION & statuses.ACTIVE_EXECUTION
    assert statuses.TERMINAL_RUN | statuses.ACTIVE_RUN == set(RunStatus)
    assert not statuses.TERMINAL_RUN & statuses.ACTIVE_RUN


def test_a_finished_execution_reads_as_a_success_or_not():
    assert (statuses.SUCCESSFUL_EXECUTION | statuses.UNSUCCESSFUL_EXECUTION
            == statuses.TERMINAL_EXECUTION)
    assert statuses.DEADLINE_EXECUTION < statuses.ACTIVE_EXECUTION


def test_statuses_compare_and_serialise_as_their_values():
    assert RunStatus.READY == "ready" and "ready" in statuses.ACTIVE_RUN
    assert json.dumps({"status": ExecutionStatus.COMPENSATED}) == '{"status": "compensated"}'


def test_model_fields_offer_exactly_the_defined_statuses():
    field = Execution._meta.get_field("status")
    assert [value for value, _ in field.choices] == [s.value for s in ExecutionStatus]
    field = NodeRun._meta.get_field("status")
    assert [value for value, _ in field.choices] == [s.value for s in RunStatus]


def test_the_admin_has_a_colour_for_every_status():
    from apps.engine.admin import STATUS_COLOURS

    assert set(STATUS_COLOURS) == {*ExecutionStatus, *RunStatus}
