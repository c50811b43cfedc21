"""The http node is bounded: a huge or a slow answer fails the run with a clear
reason, and a slow DNS lookup never stalls the other requests on the loop."""

import asyncio
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.conf import settings
from django.test import override_settings

from apps.nodes import netguard

pytestmark = pytest.mark.django_db(transaction=True)


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/huge":  # declares its size honestly
            body = b"x" * 50_000
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/huge-chunked":  # says nothing of its size
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"3e8\r\n" + b"y" * 1000 + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
        elif self.path == "/trickle":  # one byte at a time, for ever
            self.send_response(200)
            self.send_header("Content-Length", "600")
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.05)
            except OSError:
                pass
        else:
            body = b'{"ok": true}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    with override_settings(BRAID={**settings.BRAID, "HTTP_ALLOW": ["127.0.0.1/32"],
                                  "HTTP_MAX_RESPONSE_BYTES": 10_000}):
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def get(url, timeout_s=10):
    return {"name": "get", "nodes": [{"id": "get", "type": "http", "retry": {"max_attempts": 1},
                                      "config": {"url": url, "timeout_s": timeout_s}}],
            "edges": []}


@pytest.mark.parametrize("path", ["/huge", "/huge-chunked"])
def test_a_response_over_the_size_limit_fails_the_run_and_says_so(run_graph, server, path):
    execution = run_graph(get(server + path))

    assert execution.status == "failed"
    run = execution.node_runs.get()
    assert run.error_class == "execution"
    assert "more than the 10000 bytes allowed" in run.error_message or \
        "more than the 10000 allowed" in run.error_message
    assert "BRAID_HTTP_MAX_RESPONSE_BYTES" in run.error_message


def test_a_response_that_trickles_in_fails_at_the_total_time_limit(run_graph, server):
    execution = run_graph(get(server + "/trickle", timeout_s=1), timeout=30)

    assert execution.status == "failed"
    run = execution.node_runs.get()
    assert run.error_class == "timeout"
    assert "took longer than 1 s" in run.error_message


def test_a_small_response_within_the_limits_succeeds(run_graph, server):
    execution = run_graph(get(server + "/ok"))

    assert execution.status == "succeeded", execution.error
    assert execution.node_runs.get().output == {"status": 200, "body": {"ok": True}}


def test_a_slow_dns_lookup_does_not_block_the_event_loop(monkeypatch):
    """While one lookup hangs, another request's lookup on the same loop completes."""
    release = threading.Event()
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host == "slow.example":
            release.wait(30)
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port))]
        if host == "fast.example":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.35", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)

    async def scenario():
        slow = asyncio.create_task(netguard.resolve_target_async("http://slow.example/", []))
        fast = await asyncio.wait_for(
            netguard.resolve_target_async("http://fast.example/", []), 20)
        still_waiting = not slow.done()
        release.set()
        return fast, still_waiting, await slow

    fast, still_waiting, slow = asyncio.run(scenario())
    assert fast.address == "93.184.216.35"
    assert still_waiting
    assert slow.address == "93.184.216.34"


def test_the_guard_still_refuses_a_private_address_without_a_lookup():
    with pytest.raises(netguard.AddressRefused):
        asyncio.run(netguard.resolve_target_async("http://10.1.2.3/", []))
