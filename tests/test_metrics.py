import pytest
from django.test import override_settings

pytestmark = pytest.mark.django_db


def test_metrics_refuse_anonymous_requests(client):
    response = client.get("/metrics")

    assert response.status_code == 401


@override_settings(BRAID_METRICS_TOKEN="s3cret-token")
def test_metrics_answer_the_bearer_token(client):
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-token")

    assert response.status_code == 200
    assert b"django_http_requests" in response.content


def test_metrics_answer_a_staff_session(admin_client):
    assert admin_client.get("/metrics").status_code == 200
