"""POST /api/v1/ws-tickets/: single-use tickets for programmatic WebSocket clients."""

from datetime import timedelta

from django.test import Client
from django.utils import timezone

from apps.live import tickets
from apps.live.models import WsTicket


def test_a_signed_in_user_gets_a_short_lived_ticket_stored_only_as_a_digest(alice):
    client = Client()
    client.force_login(alice)
    response = client.post("/api/v1/ws-tickets/")
    assert response.status_code == 201
    ticket = response.json()["ticket"]
    row = WsTicket.objects.get(user=alice)
    assert row.digest != ticket and ticket not in row.digest
    assert row.expires_at <= timezone.now() + timedelta(seconds=31)
    assert tickets.redeem(ticket) == alice
    assert tickets.redeem(ticket) is None  # single use


def test_an_anonymous_caller_gets_no_ticket(transactional_db):
    response = Client().post("/api/v1/ws-tickets/")
    assert response.status_code in (401, 403)
    assert not WsTicket.objects.exists()


def test_a_ticket_of_a_deactivated_user_is_refused(alice):
    ticket, _ = tickets.issue(alice)
    alice.is_active = False
    alice.save()
    assert tickets.redeem(ticket) is None


def test_an_api_token_with_only_the_read_scope_gets_a_ticket(alice):
    from rest_framework.test import APIClient

    from apps.api.tokens import create_token

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {create_token(alice, 't', 'read')[1]}")
    response = client.post("/api/v1/ws-tickets/")
    assert response.status_code == 201
    assert tickets.redeem(response.json()["ticket"]) == alice
