"""`ops_center.metrics`: per-instance registries, what each metric counts, the formats."""

from __future__ import annotations

from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from ops_center.metrics import BATCH_BUCKETS, MULTIPROC_ENV, Metrics, multiprocess_dir


def samples(metrics: Metrics, name: str) -> list[Sample]:
    body, _ = metrics.exposition()
    return [
        s
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if s.name == name
    ]


def value(metrics: Metrics, name: str, **labels: str) -> float | None:
    found = [s.value for s in samples(metrics, name) if s.labels == labels]
    return found[0] if found else None


def test_every_metrics_has_its_own_registry():
    """Tests build many applications in one process: their metrics never mix."""
    first, second = Metrics(), Metrics()
    first.count_results([{"status": "accepted"}])
    assert value(first, "ops_center_ingest_events_total", outcome="accepted") == 1
    assert value(second, "ops_center_ingest_events_total", outcome="accepted") is None
    assert not first.multiprocess


def test_ingest_results_count_outcomes_and_rejection_codes():
    metrics = Metrics()
    metrics.count_results(
        [
            {"status": "accepted"},
            {"status": "duplicate"},
            {"status": "rejected", "error": {"code": "invalid_data"}},
            {"status": "rejected"},
        ]
    )
    metrics.count_results([{"status": "accepted"}])
    assert value(metrics, "ops_center_ingest_events_total", outcome="accepted") == 2
    assert value(metrics, "ops_center_ingest_events_total", outcome="duplicate") == 1
    assert value(metrics, "ops_center_ingest_events_total", outcome="rejected") == 2
    assert value(metrics, "ops_center_ingest_rejections_total", code="invalid_data") == 1
    assert value(metrics, "ops_center_ingest_rejections_total", code="unknown") == 1


def test_a_commit_lands_in_the_buckets_of_both_histograms():
    metrics = Metrics()
    metrics.observe_commit(3, 0.004)
    buckets = {
        s.labels["le"]: s.value for s in samples(metrics, "ops_center_commit_batch_events_bucket")
    }
    assert list(buckets) == [*(str(float(b)) for b in BATCH_BUCKETS), "+Inf"]
    assert buckets["2.0"] == 0
    assert buckets["5.0"] == buckets["+Inf"] == 1
    assert value(metrics, "ops_center_commit_batch_events_sum") == 3
    assert value(metrics, "ops_center_commit_seconds_bucket", le="0.005") == 1
    assert value(metrics, "ops_center_commit_seconds_bucket", le="0.0025") == 0
    assert value(metrics, "ops_center_commit_seconds_count") == 1


def test_a_total_feeds_its_counter_only_what_it_grew_by():
    metrics = Metrics()
    for total in (2, 2, 5, 4, 6):
        metrics.stream_resyncs.update(total)
    # 2 + 3, then the total went back (a new source): its growth from there, 2
    assert value(metrics, "ops_center_stream_resyncs_total") == 7


def test_the_format_follows_the_accept_header():
    metrics = Metrics()
    body, content_type = metrics.exposition("*/*")
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    assert not body.endswith(b"# EOF\n")
    body, content_type = metrics.exposition("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text; version=1.0.0")
    assert body.endswith(b"# EOF\n")


def test_the_multiprocess_directory_must_be_set_before_the_process_starts(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    """This process imported prometheus-client without the variable: values live here,
    so a variable set now would be ignored by the library; say so instead."""
    assert multiprocess_dir() is None
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    with pytest.raises(RuntimeError, match="before the process starts"):
        Metrics()
