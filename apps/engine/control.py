"""Operator controls on executions (cancel now; retry, skip, resume come later)."""


from apps.engine.errors import Conflict, NotFound
from apps.engine.models import Execution
from apps.engine.transitions import (
    Batch,
    cancel_active,
    finish_execution,
    load_states,
    lock_executions,
)
from apps.engine.writelock import write_transaction


def cancel_execution(execution_id, *, reason: str = "cancelled by operator", user=None):
    """Cancel pending work now; running handlers stop at their next heartbeat."""
    with write_transaction():
        executions = lock_executions([execution_id])
        if not executions:
            raise NotFound(f"no execution {execution_id}")
        state = load_states(executions)[next(iter(executions))]
        execution = state.execution
        if execution.is_terminal:
            raise Conflict(f"execution {execution.id} is already {execution.status}")
        batch = Batch(worker=getattr(user, "username", "") or "")
        cancel_active(batch, state, reason)
        finish_execution(batch, state, "cancelled",
                         error={"class": "cancelled", "node": None, "message": reason})
        batch.flush()
    return Execution.objects.get(pk=execution.pk)
