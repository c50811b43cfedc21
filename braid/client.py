"""A small Python client for Braid's HTTP API (httpx).

    from braid.client import Client

    braid = Client("https://braid.example.com", token="braid_…")
    execution = braid.start("order-saga", input={"order": 42}, wait=10)
    if execution["status"] not in Client.FINISHED:
        execution = braid.wait(execution["id"], timeout=120)
    print(execution["status"], execution["output"])

Every error the API returns is raised as `ApiError` with its status, code,
message and details (each problem with where it is).
"""

from __future__ import annotations

import time

import httpx

FINISHED = frozenset({"succeeded", "failed", "cancelled", "compensated", "skipped"})


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: list | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message
        self.details = details or []


class Client:
    FINISHED = FINISHED

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = 40.0,
                 transport: httpx.BaseTransport | None = None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        extra = {"transport": transport} if transport is not None else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers,
                                 timeout=timeout, **extra)

    def close(self) -> None:
        self.http.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # --- transport ------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs):
        response = self.http.request(method, path, **kwargs)
        if response.status_code >= 400:
            try:
                error = response.json()["error"]
            except (ValueError, KeyError, TypeError):
                error = {"code": "http_error", "message": response.text[:500]}
            raise ApiError(response.status_code, error.get("code", "error"),
                           error.get("message", ""), error.get("details"))
        return response.json() if response.content else None

    # --- executions -----------------------------------------------------------------------

    def start(self, workflow: str | None = None, *, input: dict | None = None,
              version_id: int | None = None, definition: dict | None = None,
              wait: float | None = None, **options) -> dict:
        """Start an execution of a workflow (slug), a version id or an inline definition.

        `options`: queue, priority, client_id, idempotency_key, deadline_s, team.
        With `wait` (≤ 30 s) the answer is the finished execution if it ended in time.
        """
        body = {"input": input or {}, **options}
        for key, value in (("workflow", workflow), ("version_id", version_id),
                           ("definition", definition), ("wait", wait)):
            if value is not None:
                body[key] = value
        return self.request("POST", "/api/v1/executions/", json=body)

    def get(self, execution_id: str) -> dict:
        """The execution with its node runs and why it is not moving."""
        return self.request("GET", f"/api/v1/executions/{execution_id}/")

    def wait(self, execution_id: str, timeout: float = 60.0, poll: float = 0.25) -> dict:
        """Poll until the execution finished or `timeout` passed; return it either way."""
        end = time.monotonic() + timeout
        while True:
            execution = self.get(execution_id)
            if execution["status"] in FINISHED or time.monotonic() >= end:
                return execution
            time.sleep(min(poll, max(0.0, end - time.monotonic())))

    def stream(self, execution_id: str, last_seq: int = 0, **options):
        """Follow an execution live: an async iterator of its events after `last_seq`
        (and `node.output.delta` frames) that reconnects with its last seq after a drop
        and ends after the final event. `options`: see `braid.stream.stream`.

            async for frame in braid.stream(execution_id):
                print(frame)
        """
        from braid.stream import stream

        auth = self.http.headers.get("Authorization")
        return stream(str(self.http.base_url), execution_id, last_seq,
                      headers={"Authorization": auth} if auth else None, **options)

    def cancel(self, execution_id: str, reason: str | None = None) -> dict:
        body = {"reason": reason} if reason else {}
        return self.request("POST", f"/api/v1/executions/{execution_id}/cancel/", json=body)

    def events(self, execution_id: str, after: int = 0) -> list[dict]:
        """Every event after seq `after`, in order (all pages)."""
        events = []
        while True:
            page = self.request("GET", f"/api/v1/executions/{execution_id}/events/",
                                params={"after": after})
            events.extend(page["events"])
            after = page["last_seq"]
            if not page["more"]:
                return events

    def signal(self, execution_id: str, name: str, payload: dict | None = None) -> dict:
        return self.request("POST", f"/api/v1/executions/{execution_id}/signal/",
                            json={"name": name, "payload": payload or {}})

    # --- workflows ------------------------------------------------------------------------

    def publish(self, slug: str, definition: dict, *, notes: str = "", **fields) -> dict:
        """Publish `definition` as the workflow's next version (creating the workflow)."""
        try:
            self.request("GET", f"/api/v1/workflows/{slug}/")
        except ApiError as exc:
            if exc.status != 404:
                raise
            return self.request("POST", "/api/v1/workflows/",
                                json={"slug": slug, "definition": definition, "notes": notes,
                                      **fields})
        return self.request("POST", f"/api/v1/workflows/{slug}/versions/",
                            json={"definition": definition, "notes": notes})

    def validate(self, definition: dict) -> dict:
        return self.request("POST", "/api/v1/workflows/validate/",
                            json={"definition": definition})
