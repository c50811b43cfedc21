"""braid.client against the live API (in-process WSGI) with the engine running, and
the examples of docs/api.md run as they are written."""

import contextlib
import io
import re
from functools import partial
from pathlib import Path

import httpx
import pytest
from django.core.wsgi import get_wsgi_application

from apps.api.tokens import create_token
from braid import client as client_module
from braid.client import ApiError, Client
from tests.api.conftest import THREE

pytestmark = pytest.mark.django_db(transaction=True)
DOCS = Path(__file__).resolve().parents[2] / "docs" / "api.md"


@pytest.fixture
def wsgi(monkeypatch):
    """Every httpx.Client made by braid.client talks to this process's Django."""
    transport = httpx.WSGITransport(app=get_wsgi_application())
    monkeypatch.setattr(client_module.httpx, "Client",
                        partial(httpx.Client, transport=transport))


@pytest.fixture
def alice_token(people):
    return create_token(people.alice, "client", "read,execute,operate,admin")[1]


def test_start_wait_and_cancel(wsgi, alice_token, three, engine):
    braid = Client("http://testserver", token=alice_token)
    done = braid.start("three-steps", input={"who": "client"}, wait=20)
    assert done["status"] == "succeeded"
    slow = braid.start(definition={"name": "nap", "nodes": [
        {"id": "nap", "type": "delay", "config": {"seconds": 600}}], "edges": []})
    assert braid.wait(slow["id"], timeout=0.3)["status"] not in Client.FINISHED
    assert braid.cancel(slow["id"])["status"] == "cancelled"
    with pytest.raises(ApiError) as error:
        braid.cancel(slow["id"])
    assert error.value.status == 409 and error.value.code == "conflict"


def test_publish_adds_versions_only_for_new_graphs(wsgi, alice_token):
    braid = Client("http://testserver", token=alice_token)
    assert braid.publish("three", THREE)["number"] == 1
    assert braid.publish("three", THREE)["number"] == 1
    assert braid.publish("three", {**THREE, "description": "v2"})["number"] == 2


def test_the_docs_examples_run(wsgi, alice_token, engine, monkeypatch):
    monkeypatch.setenv("BRAID_URL", "http://testserver")
    monkeypatch.setenv("BRAID_TOKEN", alice_token)
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) == 3
    scope: dict = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOCS), "exec"), scope)  # noqa: S102 - our own docs
    printed = out.getvalue().splitlines()
    assert printed[0] == "succeeded {'text': 'hello docs'}"
    assert printed[1].startswith(("pending ['timer']", "running ['timer']",
                                  "waiting ['timer']"))
    assert printed[2] == "cancelled"
    assert "execution.cancelled" in printed[3]
    assert printed[4] == "400 invalid_definition"
    assert "'a'" in printed[5]
