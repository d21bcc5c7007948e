"""Schemathesis against ``/api/v1/openapi.json``: generated requests, with and without
credentials, never get a server error, and every response conforms to the description
(status codes, content types, headers, bodies).

The real server runs as ``ops-center serve`` on the test database (a child process:
Schemathesis' client is synchronous). Examples per operation: ``SCHEMATHESIS_EXAMPLES``
(default 8, for CI; the long run: ``SCHEMATHESIS_EXAMPLES=200``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from ops_center.access.keystore import create_key
from ops_center.embedded.postgres import free_port

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
#: Every default check but ``positive_data_acceptance``: a request valid by the description's
#: shapes may still name a unit, agency or subject that does not exist, or an event the
#: subject's state refuses, and the contract answers those 400 (query) or 422 (ingest).
EXCLUDED = [checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def server(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "OPS_CENTER_KEY_CACHE_SECONDS": "60",
    }
    env.pop("REDIS_URL", None)
    log = (tmp_path_factory.mktemp("schemathesis") / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ops_center.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "serve exited"
            try:
                if requests.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "serve did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def schema(server: str, make_key_module: Any) -> Any:
    headers = {"Authorization": f"Bearer {make_key_module('viewer')}"}
    return schemathesis.openapi.from_url(f"{server}/api/v1/openapi.json", headers=headers)


@pytest.fixture(scope="module")
def make_key_module(database_url: str) -> Any:
    def make(role: str) -> str:
        scopes = ("*",) if role == "integration" else ()
        return create_key(database_url, f"st-{role}-{uuid.uuid4().hex[:10]}", role, scopes=scopes)

    return make


def operations(schema: Any) -> list[Any]:
    found = [result.ok() for result in schema.get_all_operations()]
    assert found, "the description lists no operation"
    return found


@pytest.mark.parametrize("credentials", ["admin", "viewer", "integration", None])
@pytest.mark.timeout(300)
def test_generated_requests_get_no_server_error_and_conforming_answers(
    server: str, schema: Any, make_key_module: Any, credentials: str | None
) -> None:
    headers = {}
    if credentials is not None:
        headers["Authorization"] = f"Bearer {make_key_module(credentials)}"
    failures: list[str] = []
    calls = 0
    for operation in operations(schema):

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: Any) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=server, headers=headers, excluded_checks=EXCLUDED)

        try:
            check()
        except (Exception, BaseExceptionGroup) as exc:
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}"[:3000])
    assert not failures, "\n\n".join(failures)
    count = len(operations(schema))
    assert calls >= count
    print(f"\nschemathesis ({credentials or 'no key'}): {count} operations, {calls} requests")
