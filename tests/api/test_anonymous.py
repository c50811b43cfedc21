"""Every URL pattern the resolver knows refuses anonymous callers, except the probes.

The list is generated from the resolver, so an endpoint added later is covered
without touching this file.
"""

import re
import uuid

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

try:
    from re import _parser as sre_parse  # Python ≥ 3.11
except ImportError:  # pragma: no cover
    import sre_parse

SAMPLES = {"int": "1", "slug": "some-slug", "str": "some-name", "path": "some/path",
           "uuid": str(uuid.UUID(int=1))}
# Open by design: the probes, and the login page (the way to stop being anonymous).
OPEN = {"/health", "/ready", "/admin/login/", "/admin/logout/"}


def _sample_regex(pattern: str) -> str:
    """One string the regex matches (first alternatives, shortest repeats)."""

    def emit(items) -> str:
        out = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "SUBPATTERN":
                out.append(emit(arg[-1]))
            elif name == "BRANCH":
                out.append(emit(arg[1][0]))
            elif name in ("MAX_REPEAT", "MIN_REPEAT"):
                low, _high, sub = arg
                out.append(emit(sub) * max(low, 1))
            elif name == "IN":
                out.append("1" if any(str(o) == "CATEGORY" for o, _ in arg) else
                           next((chr(a) for o, a in arg if str(o) == "LITERAL"), "a"))
            elif name in ("ANY", "NOT_LITERAL", "CATEGORY"):
                out.append("a")
        return "".join(out)

    return emit(sre_parse.parse(pattern))


def _sample_route(route: str) -> str:
    return re.sub(r"<(?:(\w+):)?\w+>", lambda m: SAMPLES[m.group(1) or "str"], route)


def _piece(pattern) -> str:
    if isinstance(pattern, RoutePattern):
        return _sample_route(str(pattern))
    if isinstance(pattern, RegexPattern):
        return _sample_regex(pattern.regex.pattern)
    raise AssertionError(f"unknown pattern type {type(pattern)}")


def all_urls(resolver=None, prefix="/") -> list[str]:
    resolver = resolver or get_resolver()
    urls = []
    for entry in resolver.url_patterns:
        here = prefix + _piece(entry.pattern)
        if isinstance(entry, URLResolver):
            urls.extend(all_urls(entry, here))
        elif isinstance(entry, URLPattern):
            urls.append(here)
    return sorted(set(urls))


URLS = all_urls()


def test_the_walk_finds_the_api_and_the_admin():
    assert "/api/v1/executions/" in URLS
    assert "/api/v1/workflows/some-slug/versions/1/diff/1/" in URLS
    assert "/api/workflow/execute" in URLS
    assert any(u.startswith("/admin/") for u in URLS)
    assert len(URLS) > 40


def _refused(response) -> bool:
    if response.status_code in (401, 403):
        return True
    # The admin sends anonymous callers to its login page.
    return response.status_code == 302 and "/admin/login/" in response["Location"]


@pytest.mark.django_db
@pytest.mark.parametrize("url", [u for u in URLS if u not in OPEN])
@pytest.mark.parametrize("method", ["get", "post", "patch", "delete"])
def test_anonymous_is_refused(client, url, method):
    if method == "get":
        response = client.get(url)
    else:
        response = getattr(client, method)(url, data="{}", content_type="application/json")
    if response.status_code == 405:  # a method the endpoint does not have at all
        return
    assert _refused(response), f"{method.upper()} {url} answered {response.status_code}"


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/health", "/ready"])
def test_probes_answer_anonymous_callers_with_status_only(client, url):
    response = client.get(url)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
