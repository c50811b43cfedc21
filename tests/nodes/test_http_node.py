"""The http node end to end: an async handler on the worker's event loop, and the
private-network guard (a server on 127.0.0.1 is refused unless allow-listed)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings

pytestmark = pytest.mark.django_db(transaction=True)


class Echo(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        status = 503 if body.get("fail") else 200
        reply = json.dumps({"got": body, "key": self.headers.get("Idempotency-Key"),
                            "host": self.headers.get("Host")}).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def http_flow(url, payload):
    return {"name": "http", "nodes": [{"id": "call", "type": "http", "timeout_s": 5,
                                       "config": {"url": f"{url}/orders", "method": "POST",
                                                  "json": payload}}], "edges": []}


def test_http_node_refuses_a_private_address_by_default(run_graph, server):
    execution = run_graph(http_flow(server, {"n": 1}))

    assert execution.status == "failed"
    assert execution.error["class"] == "configuration"
    assert "private, loopback or link-local" in execution.error["message"]


def test_http_node_calls_an_allow_listed_host_with_its_idempotency_key(run_graph, server):
    with override_settings(BRAID={**settings.BRAID, "HTTP_ALLOW": ["127.0.0.1/32"]}):
        execution = run_graph(http_flow(server, {"n": 1}))

    assert execution.status == "succeeded", execution.error
    reply = execution.output["call"]
    assert reply["status"] == 200
    assert reply["body"]["got"] == {"n": 1}
    assert reply["body"]["key"] == f"{execution.pk}:call:1"
    assert reply["body"]["host"] == server.removeprefix("http://")


def test_http_5xx_is_a_retryable_resource_error(run_graph, server):
    flow = http_flow(server, {"fail": True})
    flow["nodes"][0]["retry"] = {"max_attempts": 2, "backoff_s": 0.01, "jitter": False}
    with override_settings(BRAID={**settings.BRAID, "HTTP_ALLOW": ["127.0.0.1"]}):
        execution = run_graph(flow)

    attempts = list(execution.node_runs.values_list("attempt", "error_class"))
    assert execution.status == "failed"
    assert attempts == [(1, "resource"), (2, "resource")]
