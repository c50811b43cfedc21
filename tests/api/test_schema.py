"""The OpenAPI schema, checked against the running API by schemathesis.

Every operation of /api/schema/ gets generated requests (valid and invalid) on a
bounded budget (BRAID_SCHEMATHESIS_EXAMPLES per operation, 12 by default): no
answer may be a 5xx, and every answer must conform to the schema (status code,
content type, body).
"""

import os

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from apps.api.tokens import create_token
from apps.api.views import executions as execution_views
from apps.workflows.services import publish_version
from tests.api.conftest import THREE

EXAMPLES = int(os.environ.get("BRAID_SCHEMATHESIS_EXAMPLES", "12"))
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance)


def test_the_schema_documents_every_api_url():
    from tests.api.test_personas import api_patterns

    schema = SchemaGenerator().get_schema(request=None, public=True)
    documented = set(schema["paths"])
    for route, name in api_patterns():
        if name in ("schema", "docs"):
            continue
        path = "/api/" + route.replace("<slug:", "{").replace("<int:", "{").replace(
            "<str:", "{").replace(">", "}").replace("{pk}", "{id}")
        assert path in documented, f"{name}: {path} is not in the schema"
    assert schema["components"]["schemas"]["Error"]["properties"]["error"]


def test_every_operation_documents_the_error_shape():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            for code in ("401", "403", "404", "429"):
                content = operation["responses"][code]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/Error"}, (
                    path, method, code)


@pytest.mark.django_db(transaction=True)
def test_the_api_conforms_to_its_schema(people, monkeypatch):
    """schemathesis over every operation, as staff with an admin token."""
    publish_version("three-steps", THREE, team_id=people.payments.pk)
    _, secret = create_token(people.sam, "schemathesis", "admin")
    headers = {"Authorization": f"Bearer {secret}"}
    # Nothing runs executions here: a generated `wait` of up to 30 s would only idle.
    real_wait = execution_views.wait_for
    monkeypatch.setattr(execution_views, "wait_for",
                        lambda pk, timeout: real_wait(pk, min(timeout, 0.05)))
    raw = SchemaGenerator().get_schema(request=None, public=True)
    schema = schemathesis.from_dict(raw, app=get_wsgi_application())
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def check(case):
            response = case.call_wsgi(headers=headers)
            case.validate_response(response, checks=CHECKS)

        try:
            check()
        except Exception as exc:  # collect every operation's failure, then report all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert not failures, "\n\n".join(failures)
