"""Alert notifications: signed webhooks on loopback, retries, silences, the network guard."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core import mail
from django.utils import timezone

from apps.operations import evaluator, notify, services
from apps.operations.models import Alert, Notification, NotificationRoute, Silence

pytestmark = pytest.mark.django_db

FAILING = {"name": "always fails",
           "nodes": [{"id": "boom", "type": "fail", "config": {"times": 99},
                      "retry": {"max_attempts": 1}}],
           "edges": []}


class Receiver:
    """A webhook receiver on a free loopback port that records what it gets."""

    def __init__(self, status: int = 200):
        self.status = status
        self.requests: list[tuple[dict, bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/braid"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(settings):
    settings.BRAID = {**settings.BRAID, "HTTP_ALLOW": ["127.0.0.1"]}
    server = Receiver()
    yield server
    server.close()


def test_a_webhook_receiver_gets_a_correctly_signed_alert(run_graph, receiver):
    NotificationRoute.objects.create(name="ops", kind="webhook", target=receiver.url,
                                     secret="s3cret", min_severity="warning")
    failed = run_graph(FAILING)
    evaluator.evaluate()
    assert notify.send_due() == 1
    [(headers, body)] = receiver.requests
    expected = "sha256=" + hmac.new(b"s3cret", headers["X-Braid-Timestamp"].encode() + b"." + body,
                                    hashlib.sha256).hexdigest()
    assert headers["X-Braid-Signature"] == expected
    data = json.loads(body)
    assert data["event"] == "opened"
    assert data["alert"]["rule"] == "execution_failed"
    assert data["alert"]["details"]["executions"] == [str(failed.pk)]
    assert Notification.objects.get().state == "sent"


def test_a_failing_receiver_is_retried_with_back_off_and_nothing_else_changes(run_graph,
                                                                            receiver):
    receiver.status = 503
    NotificationRoute.objects.create(name="ops", kind="webhook", target=receiver.url)
    run_graph(FAILING)
    evaluator.evaluate()
    before = timezone.now()
    notify.send_due()
    notification = Notification.objects.get()
    assert notification.state == "pending" and notification.attempts == 1
    assert "HTTP 503" in notification.last_error
    assert notification.next_at >= before + timedelta(seconds=9)
    assert notify.send_due() == 0  # not due yet
    receiver.status = 200
    Notification.objects.update(next_at=timezone.now())
    notify.send_due()
    notification.refresh_from_db()
    assert (notification.state, notification.attempts) == ("sent", 2)
    assert Alert.objects.get().state == "open"  # the inbox is untouched by delivery trouble


def test_a_webhook_to_a_private_address_is_refused_unless_allow_listed(run_graph):
    NotificationRoute.objects.create(name="internal", kind="webhook",
                                     target="http://127.0.0.1:9/hook")
    run_graph(FAILING)
    evaluator.evaluate()
    notify.send_due()
    notification = Notification.objects.get()
    assert "private, loopback or link-local" in notification.last_error


def test_routes_filter_by_rule_and_severity_and_silences_mute(run_graph, receiver):
    NotificationRoute.objects.create(name="pager", kind="webhook", target=receiver.url,
                                     min_severity="critical", rules=["queue_backlog"])
    NotificationRoute.objects.create(name="mail", kind="email", target="ops@example.com",
                                     min_severity="warning")
    run_graph(FAILING)
    evaluator.evaluate()
    assert list(Notification.objects.values_list("route__name", flat=True)) == ["mail"]
    notify.send_due()
    assert len(mail.outbox) == 1 and "failed and need an operator" in mail.outbox[0].subject

    Silence.objects.create(rule="execution_failed", until=timezone.now() + timedelta(hours=1))
    services.resolve(Alert.objects.get(), None)
    assert Notification.objects.count() == 1  # the resolution is muted
    with pytest.raises(Exception, match="future"):
        services.silence("execution_failed", timezone.now() - timedelta(seconds=1), None)
