"""Alert writes: what the evaluator, the admin, the API and the CLI all call.

Every state change of an alert leaves an AlertNote (who, what, when), and
opening one queues its notifications in the same transaction.
"""

from __future__ import annotations

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.engine.errors import Conflict
from apps.operations import notify
from apps.operations.models import Alert, AlertNote, ConditionState, Silence
from apps.operations.rules import Finding, RuleConfig, dedupe_key, due_to_fire

AUTO = "auto"


def _username(user) -> str:
    return getattr(user, "get_username", lambda: str(user or AUTO))() if user else AUTO


def _note(alert: Alert, author: str, action: str, text: str = "") -> None:
    AlertNote.objects.create(alert=alert, author=author, action=action, text=text[:5000])


# --- the evaluator's side -----------------------------------------------------------

def sync_rule(rule: RuleConfig, findings: list[Finding], now: datetime) -> dict:
    """Make the inbox match what `rule` finds now: open or bump alerts for findings
    that have held `for_s`, resolve the rule's alerts whose condition cleared."""
    found = {dedupe_key(rule.name, f.key): f for f in findings}
    firing = _held_long_enough(rule, found, now)
    current = {a.dedupe_key: a for a in
               Alert.objects.filter(rule=rule.name).exclude(state="resolved")}
    opened = bumped = resolved = 0
    for key, finding in firing.items():
        alert = current.get(key)
        if alert is None:
            opened += _open(rule, key, finding, now)
        else:
            _bump(alert, finding, now)
            bumped += 1
    for key, alert in current.items():
        if key not in found:
            _resolve(alert, AUTO, "the condition cleared", now)
            resolved += 1
    return {"opened": opened, "bumped": bumped, "resolved": resolved}


def _held_long_enough(rule: RuleConfig, found: dict[str, Finding], now) -> dict[str, Finding]:
    if rule.for_s <= 0:
        return found
    prefix = f"{rule.name}:"
    ConditionState.objects.filter(dedupe_key__startswith=prefix).exclude(
        dedupe_key__in=list(found)).delete()
    states = {s.dedupe_key: s for s in ConditionState.objects.filter(dedupe_key__in=list(found))}
    for key in found:
        if key not in states:
            states[key] = ConditionState.objects.create(dedupe_key=key, since=now, seen_at=now)
    ConditionState.objects.filter(dedupe_key__in=list(found)).update(seen_at=now)
    return {k: f for k, f in found.items() if due_to_fire(states[k].since, now, rule.for_s)}


def _open(rule: RuleConfig, key: str, finding: Finding, now) -> int:
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                rule=rule.name, severity=finding.severity or rule.severity, dedupe_key=key,
                title=finding.title[:300], details=finding.details,
                subject_kind=finding.subject_kind, subject_id=finding.subject_id[:128],
                workflow_id=finding.workflow_id, execution_id=finding.execution_id,
                occurrences=int(finding.details.get("count", 1)), first_seen=now, last_seen=now)
            _note(alert, AUTO, "opened", finding.title)
            notify.queue_for(alert, "opened")
    except IntegrityError:  # another evaluator opened it a moment ago: it bumps next round
        return 0
    return 1


def _bump(alert: Alert, finding: Finding, now) -> None:
    alert.occurrences = int(finding.details.get("count", alert.occurrences + 1))
    alert.last_seen = now
    alert.title = finding.title[:300]
    alert.details = finding.details
    alert.save(update_fields=["occurrences", "last_seen", "title", "details"])


def _resolve(alert: Alert, author: str, text: str, now) -> None:
    with transaction.atomic():
        alert.state = "resolved"
        alert.resolved_at = now
        alert.resolved_by = author
        alert.save(update_fields=["state", "resolved_at", "resolved_by"])
        _note(alert, author, "resolved", text)
        notify.queue_for(alert, "resolved")


# --- the operator's side ---------------------------------------------------------------

def _unresolved(alert: Alert, verb: str) -> None:
    if alert.state == "resolved":
        raise Conflict(f"alert {alert.pk} is resolved; it cannot be {verb}")


def acknowledge(alert: Alert, user, note: str = "") -> Alert:
    _unresolved(alert, "acknowledged")
    alert.state = "acknowledged"
    alert.save(update_fields=["state"])
    _note(alert, _username(user), "acknowledged", note)
    return alert


def assign(alert: Alert, user, assignee) -> Alert:
    _unresolved(alert, "assigned")
    alert.assignee = assignee
    alert.save(update_fields=["assignee"])
    _note(alert, _username(user), "assigned",
          f"to {assignee.get_username()}" if assignee else "unassigned")
    return alert


def resolve(alert: Alert, user, note: str = "") -> Alert:
    _unresolved(alert, "resolved again")
    _resolve(alert, _username(user), note, timezone.now())
    return alert


def comment(alert: Alert, user, text: str) -> AlertNote:
    text = (text or "").strip()
    if not text:
        raise Conflict("a comment needs text")
    note = AlertNote.objects.create(alert=alert, author=_username(user), action="comment",
                                    text=text[:5000])
    return note


def silence(rule: str, until: datetime, user, subject_id: str = "", reason: str = "") -> Silence:
    from apps.operations.rules import DEFAULT_RULES

    if rule not in DEFAULT_RULES:
        raise Conflict(f"unknown rule {rule!r} (known: {', '.join(sorted(DEFAULT_RULES))})")
    if until <= timezone.now():
        raise Conflict("a silence must end in the future")
    return Silence.objects.create(rule=rule, subject_id=subject_id, until=until, reason=reason,
                                  created_by=_username(user))
