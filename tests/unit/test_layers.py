"""The pure layers load without any I/O library, checked in a fresh interpreter (the
import-linter contracts in pyproject.toml check the same statically)."""

from __future__ import annotations

import subprocess
import sys

import orjson

PURE = (
    "ops_center.domain",
    "ops_center.domain.events",
    "ops_center.domain.kpi_status",
    "ops_center.ingest.catalogue",
    "ops_center.ingest.cloudevents",
    "ops_center.ingest.decisions",
    "ops_center.province.profile",
    "ops_center.province.parsing",
    "ops_center.province.calendar",
    "ops_center.alarms.rules.book",
    "ops_center.alarms.rules.facts",
    "ops_center.alarms.rules.observe",
    "ops_center.alarms.rules.thresholds",
    "ops_center.tools.simulator.province",
)
IO_LIBRARIES = ("aiohttp", "asyncpg", "psycopg", "psycopg_pool", "redis", "websockets")

PROBE = """
import importlib, sys, orjson
for name in sys.argv[1:]:
    importlib.import_module(name)
print(orjson.dumps(sorted(m for m in sys.modules if "." not in m)).decode())
"""


def test_the_domain_and_the_pure_rules_import_no_io_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *PURE], capture_output=True, text=True, check=True
    )
    loaded = set(orjson.loads(done.stdout))
    assert loaded.isdisjoint(IO_LIBRARIES), sorted(loaded & set(IO_LIBRARIES))


def test_the_probe_sees_an_io_library_when_one_is_imported() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, "ops_center.store.recorder"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "psycopg" in orjson.loads(done.stdout)
