"""Bad input: schemathesis generates requests from the app's own OpenAPI schema; none may get a 5xx.

Runs on SQLite against a seeded service (real members, a real plan), as an admin (the role that
reaches every code path) and once without a key. Plan jobs are accepted but not run here (a
random policy could ask for an hour of solving); the job endpoints' validation is what is fuzzed.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from _api_support import Service, seeded_service
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error


class _Parked:
    """Stands in for the job thread pool: jobs are recorded as queued and never started."""

    def submit(self, *args: Any, **kwargs: Any) -> None:
        return None

    def shutdown(self, *args: Any, **kwargs: Any) -> None:
        return None


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    with seeded_service("sqlite", tmp_path_factory.mktemp("schema")) as svc:
        svc.app.state.jobs.pool = _Parked()
        yield svc


def test_no_server_errors(service: Service) -> None:
    """Every operation, a dozen generated requests each, with an admin key and without one."""
    schema = schemathesis.openapi.from_asgi("/openapi.json", service.app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18  # POST /relocations among them
    failures: list[str] = []
    for op in operations:

        @given(case=op.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case: Any) -> None:
            response = case.call(headers=service.h("admin"))
            case.validate_response(response, checks=[not_a_server_error])
            if response.status_code >= 400:
                ctype = response.headers.get("content-type") or [""]
                ctype = ctype[0] if isinstance(ctype, list) else ctype
                assert ctype.startswith("application/problem+json"), response.text[:200]
            anonymous = case.call()
            case.validate_response(anonymous, checks=[not_a_server_error])

        started = time.perf_counter()
        try:
            run()
        except Exception as exc:  # noqa: BLE001 - collect every operation's failure, then report them together
            failures.append(f"{op.label}: {type(exc).__name__}: {str(exc)[:400]}")
        print(f"{op.label}: {time.perf_counter() - started:.1f} s")
    assert not failures, "\n".join(failures)
