"""Schemathesis against the server's own OpenAPI schema: generated requests, valid and invalid, to
every operation. No 5xx, responses match the schema, invalid requests are refused."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi", reason="the web server needs the 'web' extra")
schemathesis = pytest.importorskip("schemathesis", reason="the schema test needs schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402
from schemathesis.checks import positive_data_acceptance  # noqa: E402

from digitlab.serve import create_app  # noqa: E402
from serve_support import tiny_model  # noqa: E402

app = create_app({"tiny": tiny_model()})
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large])
def test_api_conforms_to_its_schema(case):
    # Every default check (no server error, status codes, content types and response bodies as
    # documented, schema-violating requests refused) except positive_data_acceptance: a request can
    # fit the schema and still be refused with a reason, e.g. random base64 that is not an image.
    case.call_and_validate(excluded_checks=[positive_data_acceptance])


def test_the_schema_states_what_the_server_refuses():
    """What the server refuses whatever the values (an empty image, an empty batch) is in the
    schema, so that schemathesis's valid requests are ones the server can accept."""
    spec = app.openapi()
    components = spec["components"]["schemas"]
    assert components["ImageInput"]["properties"]["image"]["minLength"] == 1
    assert components["BatchInput"]["properties"]["items"]["minItems"] == 1
    content = spec["paths"]["/api/predict/batch"]["post"]["requestBody"]["content"]
    assert content["multipart/form-data"]["schema"]["properties"]["files"]["minItems"] == 1
    responses = spec["paths"]["/api/predict"]["post"]["responses"]
    assert {"408", "413", "415", "422", "503"} <= set(responses)
