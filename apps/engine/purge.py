"""Deleting finished executions with everything under them, quickly.

Used by the ticker's retention (`maintenance.purge_expired`) and by `braid
prune` (apps/operations/retention.py). One statement per table, by the indexed
execution id, in one short transaction a batch.
"""

from __future__ import annotations

from apps.engine.models import Execution, NodeRun
from apps.engine.writelock import write_transaction


def relations() -> tuple[list, list]:
    """Every foreign key to an execution or a node run, found in the installed models
    (higher floors add their own): (to set NULL, to delete), node runs deleted last."""
    from django.apps import apps
    from django.db import models as m

    nulled, deleted = [], []
    for model in apps.get_models():
        if model._meta.proxy or model in (Execution, NodeRun):
            continue
        fields = {f.related_model: f for f in model._meta.concrete_fields
                  if f.is_relation and f.related_model in (Execution, NodeRun)}
        field = fields.get(Execution) or fields.get(NodeRun)
        if field is None:
            continue
        lookup = field.name if field.related_model is Execution else f"{field.name}__execution"
        if field.remote_field.on_delete is m.SET_NULL:
            nulled.append((model, lookup, field.name))
        else:
            deleted.append((model, lookup, field.name))
    deleted.append((NodeRun, "execution", "execution"))
    return nulled, deleted


def delete_executions(ids: list) -> tuple[int, int]:
    """Delete executions and everything under them in one short transaction: one
    statement per table, by the indexed execution id. (Django's cascade would load
    every node run into memory first, since node runs have logs of their own: seconds
    a batch instead of milliseconds.)"""
    nulled, deleted = relations()
    rows = 0
    with write_transaction():
        for model, lookup, name in nulled:
            model.objects.filter(**{f"{lookup}__in": ids}).update(**{name: None})
        for model, lookup, _ in deleted:
            # _raw_delete: one DELETE … WHERE, no objects loaded, no signals (none exist).
            rows += model.objects.filter(**{f"{lookup}__in": ids})._raw_delete(
                model.objects.db)
        executions = Execution.objects.filter(id__in=ids)._raw_delete(Execution.objects.db)
    return executions, rows + executions


