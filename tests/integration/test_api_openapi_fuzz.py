"""Property-based fuzzing of everything in /openapi.json (health, metrics, login, keys, FHIR, and
the GraphQL endpoint as plain HTTP) with schemathesis, in process over ASGI: whatever a client
sends, the answer is never a server error. Requests carry an admin's token, so the FHIR search
runs past authorization."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from cardiogate.cloud.api.app import create_app
from cardiogate.cloud.api.live import LocalHub
from cardiogate.cloud.api.settings import ApiSettings
from tests.integration.api_testkit import api_settings, database, login, seed

pytestmark = [pytest.mark.api, pytest.mark.timeout(300)]

# /graphql is listed too (GET and POST, bodies unspecified): fuzzing it costs little and finds the same 5xx.
OPERATIONS = [("/healthz", "GET"), ("/readyz", "GET"), ("/metrics", "GET"), ("/auth/token", "POST"),
              ("/auth/jwks.json", "GET"), ("/fhir/Observation", "GET"), ("/graphql", "GET"), ("/graphql", "POST")]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[schemathesis.BaseSchema, str]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    with database("sqlite", tmp) as engine:
        seed(engine)
        settings_: ApiSettings = api_settings(Path(tmp), rate_per_s=0)
        app = create_app(settings_, engine, hub=LocalHub())
        with TestClient(app) as client:
            token = login(client, "admin")
            yield schemathesis.openapi.from_asgi("/openapi.json", app), token


def test_the_schema_lists_the_rest_operations(fuzzed: tuple[schemathesis.BaseSchema, str]) -> None:
    operations = {(op.ok().path, op.ok().method.upper()) for op in fuzzed[0].get_all_operations()}
    assert operations == set(OPERATIONS)


WITH_INPUT = {("/auth/token", "POST"), ("/fhir/Observation", "GET")}  # the others have nothing to get wrong
CASES = [(path, method, mode) for path, method in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or (path, method) in WITH_INPUT]


# One hypothesis run per operation and mode, driven by hand: schemathesis's pytest loader (from_fixture)
# reads a node attribute that pytest 9 no longer has. Negative mode sends what the schema forbids.
@pytest.mark.parametrize(("path", "method", "mode"), CASES, ids=lambda v: getattr(v, "value", v))
def test_no_request_gets_a_server_error(fuzzed: tuple[schemathesis.BaseSchema, str], path: str, method: str,
                                        mode: GenerationMode) -> None:
    schema, token = fuzzed
    operation = schema[path][method]
    statuses: Counter[int] = Counter()

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers={"Authorization": f"Bearer {token}"},
                                          checks=[not_a_server_error])
        statuses[response.status_code] += 1

    run()
    print(path, method, mode.value, sorted(statuses.items()))
    if (path, mode) == ("/fhir/Observation", GenerationMode.POSITIVE):
        assert statuses[200] > 0  # the search itself ran, not only its refusals
