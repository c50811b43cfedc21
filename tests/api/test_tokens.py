"""API tokens: hashed at rest, expiring, revocable, scoped; sessions need CSRF; no Basic."""

import base64
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from io import StringIO

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.api.throttling import PerTokenThrottle, PerUserThrottle, hit
from apps.api.tokens import create_token, revoke_token


def bearer(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    return client


def test_a_token_is_stored_only_as_its_digest(people):
    token, secret = create_token(people.alice, "ci", "read")
    row = ApiToken.objects.filter(pk=token.pk).values().get()
    assert secret not in str(row)
    assert row["prefix"] == secret[:12] and len(row["digest"]) == 64


def test_a_token_reads_what_its_user_may_see(people, three):
    _, secret = create_token(people.vera, "ci", "read")
    response = bearer(secret).get("/api/v1/workflows/")
    assert response.status_code == 200
    assert [w["slug"] for w in response.json()["results"]] == ["three-steps"]


@pytest.mark.parametrize("header", ["Bearer nope", "Bearer", "Bearer a b", "Bearer \u00e9t\u00e9"])
def test_unknown_or_malformed_tokens_get_401_with_the_error_format(people, header):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)
    response = client.get("/api/v1/workflows/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_an_expired_token_is_refused(people, three):
    token, secret = create_token(people.alice, "short", "read", expires_days=1)
    assert bearer(secret).get("/api/v1/workflows/").status_code == 200
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = bearer(secret).get("/api/v1/workflows/")
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"]


def test_a_revoked_token_is_refused(people, three):
    token, secret = create_token(people.alice, "leaked", "read")
    revoke_token(token)
    assert bearer(secret).get("/api/v1/workflows/").status_code == 401


def test_a_token_of_a_deactivated_user_is_refused(people, three):
    _, secret = create_token(people.alice, "ci", "read")
    people.alice.is_active = False
    people.alice.save()
    assert bearer(secret).get("/api/v1/workflows/").status_code == 401


def test_an_execute_token_starts_but_cannot_cancel(people, three):
    _, secret = create_token(people.alice, "starter", "read,execute")
    client = bearer(secret)
    started = client.post("/api/v1/executions/", {"workflow": "three-steps"}, format="json")
    assert started.status_code == 201
    response = client.post(f"/api/v1/executions/{started.json()['id']}/cancel/", {},
                           format="json")
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "permission_denied", "message": "this token lacks the `operate` scope",
        "details": []}


def test_a_read_token_cannot_start_and_an_operate_token_cancels(people, three):
    _, reader = create_token(people.alice, "r", "read")
    assert bearer(reader).post("/api/v1/executions/", {"workflow": "three-steps"},
                               format="json").status_code == 403
    _, starter = create_token(people.alice, "s", "execute")
    started = bearer(starter).post("/api/v1/executions/", {"workflow": "three-steps"},
                                   format="json").json()
    _, operator = create_token(people.alice, "o", "operate")
    cancelled = bearer(operator).post(f"/api/v1/executions/{started['id']}/cancel/", {},
                                      format="json")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"


def test_an_admin_token_may_do_everything_its_user_may(people, three):
    _, secret = create_token(people.alice, "all", "admin")
    client = bearer(secret)
    assert client.get("/api/v1/workflows/").status_code == 200
    assert client.post("/api/v1/workflows/three-steps/versions/",
                       {"definition": three.graph}, format="json").status_code == 200


def test_a_scope_does_not_lift_the_users_role(people, three):
    """Vera is a viewer: an admin-scoped token of hers still cannot start."""
    _, secret = create_token(people.vera, "all", "admin")
    assert bearer(secret).post("/api/v1/executions/", {"workflow": "three-steps"},
                               format="json").status_code == 403


def test_the_cli_prints_the_token_once_and_it_works(people, three):
    out, err = StringIO(), StringIO()
    call_command("braid", "token", "create", "--user", "alice", "--scopes", "read,execute",
                 "--expires-days", "7", stdout=out, stderr=err)
    secret = out.getvalue().strip()
    assert secret.startswith("braid_") and "shown only now" in err.getvalue()
    token = ApiToken.objects.get()
    assert token.scopes == ["read", "execute"]
    assert timedelta(days=6.9) < token.expires_at - timezone.now() < timedelta(days=7.1)
    assert bearer(secret).get("/api/v1/workflows/").status_code == 200

    listing = StringIO()
    call_command("braid", "token", "list", stdout=listing)
    assert secret not in listing.getvalue() and "active" in listing.getvalue()
    call_command("braid", "token", "revoke", str(token.pk), stdout=StringIO())
    assert bearer(secret).get("/api/v1/workflows/").status_code == 401


@pytest.mark.parametrize("args, message", [
    (["--user", "nobody", "--scopes", "read"], "no user 'nobody'"),
    (["--user", "alice", "--scopes", "read,root"], "unknown: root"),
    (["--user", "alice", "--scopes", "read", "--expires-days", "0"], "must be positive"),
])
def test_the_cli_refuses_bad_token_requests(people, args, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message):
        call_command("braid", "token", "create", *args, stdout=StringIO(), stderr=StringIO())


def test_basic_auth_is_not_accepted(people):
    client = APIClient()
    credentials = base64.b64encode(b"alice:pw-alice-123").decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {credentials}")
    assert client.get("/api/v1/workflows/").status_code == 401


def test_a_browser_session_needs_the_csrf_token_to_write(people, three):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(people.alice)
    assert client.get("/api/v1/workflows/").status_code == 200
    refused = client.post("/api/v1/executions/", {"workflow": "three-steps"}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["error"]["message"]


@pytest.fixture
def tight_rates(monkeypatch):
    cache.clear()
    monkeypatch.setattr(PerTokenThrottle, "THROTTLE_RATES", {"token": "3/min", "user": "5/min"})
    monkeypatch.setattr(PerUserThrottle, "THROTTLE_RATES", {"token": "3/min", "user": "5/min"})
    yield
    cache.clear()


def test_each_token_is_throttled_on_its_own_and_the_user_over_all(people, tight_rates):
    _, first = create_token(people.alice, "one", "read")
    _, second = create_token(people.alice, "two", "read")
    responses = [bearer(first).get("/api/v1/workflows/") for _ in range(4)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429]
    throttled = responses[-1]
    assert throttled.json()["error"]["code"] == "throttled"
    assert int(throttled["Retry-After"]) > 0
    # The second token has its own budget, but the user's (5, throttled requests
    # included) runs out across both.
    assert [bearer(second).get("/api/v1/workflows/").status_code for _ in range(2)] == [200, 429]


def test_a_throttle_period_opens_with_the_first_request_and_reopens_when_it_ends(
        people, monkeypatch):
    cache.clear()
    monkeypatch.setattr(PerTokenThrottle, "THROTTLE_RATES", {"token": "2/s", "user": None})
    monkeypatch.setattr(PerUserThrottle, "THROTTLE_RATES", {"token": "2/s", "user": None})
    _, secret = create_token(people.alice, "ci", "read")
    client = bearer(secret)
    assert [client.get("/api/v1/workflows/").status_code for _ in range(3)] == [200, 200, 429]
    count, left_s = hit("someone", 1)
    assert count == 1 and 0 < left_s <= 1
    time.sleep(1.1)  # the period is a second: the next request opens a new one
    assert client.get("/api/v1/workflows/").status_code == 200
    cache.clear()


def test_concurrent_requests_are_each_counted_once():
    """DRF's sliding log reads, appends and writes back: two requests at once could
    both pass on one count. The counter is one atomic increment per request."""
    cache.clear()
    with ThreadPoolExecutor(8) as pool:
        counts = sorted(c for c, _ in pool.map(lambda _: hit("racer", 60), range(40)))
    assert counts == list(range(1, 41))
    cache.clear()
