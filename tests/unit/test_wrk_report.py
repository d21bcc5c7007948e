"""Reading ``wrk --latency`` reports (the benchmark's C-client cross-check)."""

from __future__ import annotations

import pytest

from ops_center.tools.bench.wrk import WrkError, parse

REPORT = """Running 10s test @ http://127.0.0.1:8080
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    41.20ms   12.01ms 210.30ms   80.00%
    Req/Sec     1.55k   120.00     1.80k    70.00%
  Latency Distribution
     50%   38.10ms
     75%   45.00ms
     90%   60.50ms
     99%    1.20s
  15500 requests in 10.01s, 5.10MB read
Requests/sec:   1548.45
Transfer/sec:    521.00KB
"""


def test_a_clean_report() -> None:
    report = parse(REPORT)
    assert report.requests == 15_500
    assert report.seconds == pytest.approx(10.01)
    assert report.requests_per_s == pytest.approx(1548.45)
    assert report.p50_ms == pytest.approx(38.1)
    assert report.p90_ms == pytest.approx(60.5)
    assert report.p99_ms == pytest.approx(1200.0)
    assert report.errors == 0


def test_refused_requests_and_socket_errors_are_counted() -> None:
    text = REPORT.replace(
        "Requests/sec:",
        "  Socket errors: connect 0, read 2, write 0, timeout 3\n"
        "  Non-2xx or 3xx responses: 14\nRequests/sec:",
    )
    assert parse(text).errors == 19


def test_a_latency_in_seconds_padded_with_a_space() -> None:
    # wrk prints "1.31s " with a trailing space (a slow run once failed on it)
    padded = REPORT.replace("     99%    1.20s\n", "     99%    1.31s \n")
    assert parse(padded).p99_ms == pytest.approx(1310.0)


def test_microseconds_and_an_unexpected_report() -> None:
    assert parse(REPORT.replace("38.10ms", "950.00us")).p50_ms == pytest.approx(0.95)
    with pytest.raises(WrkError):
        parse("wrk: connection refused")
