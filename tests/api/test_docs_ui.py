"""The OpenAPI schema and its Swagger UI, served from our own static files."""

import re

import pytest


def test_the_schema_is_served_to_logged_in_users(people):
    response = people.client(people.vera).get("/api/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert "/api/v1/executions/" in response.json()["paths"]


def test_the_docs_page_loads_swagger_from_static_not_a_cdn(people, settings):
    response = people.client(people.vera).get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in html
    assert not re.search(r"""(src|href)=["']https?://""", html)


@pytest.mark.parametrize("url", ["/api/schema/", "/api/docs/"])
def test_schema_and_docs_need_a_login(client, db, url):
    assert client.get(url).status_code in (401, 403)


def test_the_sidecar_files_are_found_by_collectstatic_finders():
    from django.contrib.staticfiles import finders

    assert finders.find("drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
