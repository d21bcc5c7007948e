"""The load clients' pure parts: RFC 6455 framing, byte searches, histograms, latency
attribution, HTTP answer parsing and wrk's report."""

from __future__ import annotations

import asyncio
import math
import random
from array import array

import orjson
import pytest

from ops_center.tools.loadclients import websocket as ws
from ops_center.tools.loadclients.http import HttpProtocol
from ops_center.tools.loadclients.latency import AckTimes, Histogram, LatencyStats, percentile
from ops_center.tools.loadclients.scan import op_and_position, positions
from ops_center.tools.loadclients.screens import Arrivals, ScreenRecord, ScreensResult, WorkerReport
from ops_center.tools.loadclients.wrk import lua_script, parse_output


def server_frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    first = (0x80 if fin else 0) | opcode
    if n < 126:
        return bytes((first, n)) + payload
    if n < 1 << 16:
        return bytes((first, 126)) + n.to_bytes(2, "big") + payload
    return bytes((first, 127)) + n.to_bytes(8, "big") + payload


class Collect(ws.FrameParser):
    def __init__(self) -> None:
        super().__init__()
        self.frames: list[tuple[int, bool, bytes]] = []

    def frame(self, opcode: int, fin: bool, data: bytes | bytearray, start: int, end: int) -> None:
        self.frames.append((opcode, fin, bytes(data[start:end])))


def unmask_client_frame(frame: bytes) -> tuple[int, bytes]:
    assert frame[0] & 0x80, "FIN"
    assert frame[1] & 0x80, "client frames are masked"
    n = frame[1] & 0x7F
    at = 2
    if n == 126:
        n, at = int.from_bytes(frame[2:4], "big"), 4
    elif n == 127:
        n, at = int.from_bytes(frame[2:10], "big"), 10
    key = frame[at : at + 4]
    payload = frame[at + 4 :]
    assert len(payload) == n
    return frame[0] & 0x0F, bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def test_accept_value_is_the_rfc_example():
    assert ws.accept_value(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 1, 125, 126, 4097, 65535, 65536])
def test_client_frames_are_masked_and_decode_back(size):
    payload = bytes(random.Random(size).randrange(256) for _ in range(size))
    frame = ws.client_frame(ws.TEXT, payload)
    assert unmask_client_frame(frame) == (ws.TEXT, payload)


def test_handshake_checks_status_and_accept():
    request, accept = ws.handshake_request("h", 1, "/ws", {"Authorization": "Bearer k"})
    assert request.startswith(b"GET /ws HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer k\r\n" in request
    key = next(line.split(b": ")[1] for line in request.split(b"\r\n") if b"Key" in line)
    assert ws.accept_value(key) == accept
    good = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    ws.check_handshake(good + b"Sec-WebSocket-Accept: " + accept, accept)
    with pytest.raises(ws.ProtocolError):
        ws.check_handshake(good + b"Sec-WebSocket-Accept: x", accept)
    with pytest.raises(ws.HandshakeRefused) as refused:
        ws.check_handshake(b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0", accept)
    assert refused.value.status == 401


def test_frame_parser_gives_the_same_frames_however_the_bytes_arrive():
    payloads = [b"", b"a" * 125, b"b" * 126, b"c" * 70_000, b'{"op":"delta"}']
    stream = b"".join(server_frame(ws.TEXT, p) for p in payloads)
    stream += server_frame(ws.PING, b"hi") + server_frame(ws.TEXT, b"x", fin=False)
    stream += server_frame(ws.CONTINUATION, b"y")
    whole = Collect()
    whole.feed(stream)
    expected = [(ws.TEXT, True, p) for p in payloads]
    expected += [(ws.PING, True, b"hi"), (ws.TEXT, False, b"x"), (ws.CONTINUATION, True, b"y")]
    assert whole.frames == expected
    for step in (1, 3, 1000):
        pieces = Collect()
        for at in range(0, len(stream), step):
            pieces.feed(stream[at : at + step])
        assert pieces.frames == expected


def test_a_masked_server_frame_is_a_protocol_error():
    with pytest.raises(ws.ProtocolError):
        Collect().feed(bytes((0x81, 0x81)) + b"abcd" + b"x")


def test_op_and_position_come_from_the_head_of_a_frame():
    frame = orjson.dumps(
        {"op": "snapshot", "topic": "feed", "position": 1042, "data": {"position": 7}}
    )
    assert op_and_position(frame) == (b"snapshot", 1042)
    big = orjson.dumps(
        {"op": "delta", "topic": "x" * 300, "position": 55, "data": {"position": 55}}
    )
    assert op_and_position(big) == (b"delta", 55)
    assert op_and_position(b'{"op":"error","code":"x","detail":"\\"position\\":9"}') == (
        b"error",
        None,
    )
    assert op_and_position(b'{"x": 1}') == (None, None)
    inner = b'....{"op":"delta","position":12}....'
    assert op_and_position(inner, 4, len(inner) - 4) == (b"delta", 12)


def test_positions_of_an_ingest_answer():
    answer = orjson.dumps(
        {
            "accepted": 2,
            "results": [
                {"id": "a", "status": "accepted", "position": 10},
                {"id": "b", "status": "rejected", "error": {"detail": '"position": 3'}},
                {"id": "c", "status": "duplicate", "position": 4},
            ],
        }
    )
    assert positions(answer) == [10, 4]


def test_histogram_percentiles_are_within_half_a_percent():
    rng = random.Random(7)
    values = [int(rng.lognormvariate(9, 1.5)) for _ in range(20_000)]
    h = Histogram()
    for v in values:
        h.add(v)
    ordered = sorted(values)
    for q in (50, 90, 99, 99.9):
        exact = ordered[max(0, math.ceil(len(ordered) * q / 100) - 1)]
        assert abs(h.percentile_us(q) - exact) <= max(1, exact * 0.005), q
    assert h.max_us == max(values)
    assert h.count == len(values)
    other = Histogram()
    other.add_offsets(1000, [0, 5, 10])
    h.merge(other)
    assert h.count == len(values) + 3


def test_ack_times_attribute_a_frame_to_the_highest_position_it_carries():
    acks = AckTimes([([10, 11, 12], 1_000), ([13], 2_000), ([12], 5_000)])
    assert list(acks.positions) == [10, 11, 12, 13]
    assert list(acks.ack_ns) == [1_000, 1_000, 1_000, 2_000]
    assert acks.carried(12, 9) == 1_000
    assert acks.carried(20, 12) == 2_000
    assert acks.carried(13, 13) is None
    assert acks.carried(9, -1) is None
    assert list(acks.request_positions) == [12, 12, 13]


def result_of(tables: list[Arrivals], records: list[ScreenRecord]) -> ScreensResult:
    return ScreensResult(("feed",), [WorkerReport(pid=1)], {"feed": tables}, records)


def test_frame_latency_spread_and_reach_from_the_tables():
    ms = 1_000_000
    table = Arrivals()
    table.snapshot_at(5)
    # two screens: position 10 at 100 and 103 ms, position 20 (coalesced for one) at 300
    table.add(10, 100 * ms)
    table.add(10, 103 * ms)
    table.add(20, 300 * ms)
    table.add(20, 301 * ms)
    table.add(30, 400 * ms)  # carries no acknowledged position
    acks = AckTimes([([8, 9, 10], 90 * ms), ([15, 20], 250 * ms)])
    result = result_of([table], [])
    stats = result.frame_latency(acks)
    assert stats.count == 4
    assert stats.unattributed == 1
    assert stats.p50_ms == pytest.approx(13, abs=0.1)
    assert stats.max_ms == pytest.approx(51, abs=0.1)
    assert result.spread().max_ms == pytest.approx(3, abs=0.01)
    record = ScreenRecord(0, "feed", snapshot_position=5, snapshot_ns=50 * ms)
    record.positions = array("q", [10, 20])
    record.arrivals_ns = array("q", [100 * ms, 300 * ms])
    reach = result_of([table], [record]).reach_latency(acks)
    assert reach.count == 2
    assert reach.p50_ms == pytest.approx(30, abs=0.01)
    assert reach.max_ms == pytest.approx(50, abs=0.01)
    late = AckTimes([([40], 10 * ms)])
    assert result_of([table], [record]).reach_latency(late).missed == 1


def test_tables_survive_json():
    table = Arrivals()
    table.add(3, 10_000)
    table.add(3, 12_000)
    back = Arrivals.from_json(orjson.loads(orjson.dumps(table.as_json())))
    assert list(back.positions) == [3]
    assert [list(o) for o in back.offsets] == [[0, 2]]
    back.add(3, 15_000)
    assert list(back.offsets[0]) == [0, 2, 5]


def test_latency_stats_from_values():
    stats = LatencyStats.from_values([1.0, 2.0, 3.0, 4.0])
    assert stats.count == 4
    assert stats.p50_ms == percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5
    assert stats.max_ms == 4.0


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.closed = False

    def write(self, data) -> None:  # type: ignore[override]
        self.written.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed


async def test_http_answers_with_length_or_chunks():
    protocol = HttpProtocol()
    transport = FakeTransport()
    protocol.connection_made(transport)
    answer = protocol.request(b"POST / HTTP/1.1\r\n\r\n")
    raw = b'HTTP/1.1 200 OK\r\nContent-Length: 16\r\n\r\n{"position": 12}'
    for at in range(len(raw)):
        protocol.data_received(raw[at : at + 1])
    assert await answer == (200, b'{"position": 12}')
    answer = protocol.request(b"again")
    protocol.data_received(
        b"HTTP/1.1 503 No\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        b"3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n"
    )
    assert await answer == (503, b"abcde")
    assert transport.closed
    assert protocol.lost


WRK_OUTPUT = """Running 2s test @ http://127.0.0.1:8080/api/v1/events
  1 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.21ms    1.02ms  15.40ms   90.00%
    Req/Sec     1.25k   100.00     1.40k    70.00%
  Latency Distribution
     50%    3.00ms
     75%    3.50ms
     90%    4.10ms
     99%  812.00us
  2500 requests in 2.00s, 1.00MB read
  Socket errors: connect 0, read 1, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:   1249.50
Transfer/sec:    512.00KB
"""


def test_wrk_report_is_parsed():
    result = parse_output(WRK_OUTPUT, 1, 4)
    assert result.requests == 2500
    assert result.requests_per_s == 1249.5
    assert (result.p50_ms, result.p75_ms, result.p90_ms) == (3.0, 3.5, 4.1)
    assert result.p99_ms == pytest.approx(0.812)
    assert result.max_ms == pytest.approx(15.4)
    assert result.non_2xx == 7
    assert result.socket_errors == 3
    exact = (
        WRK_OUTPUT + 'OPS-WRK-RESULT {"duration_us":2000000,"requests":2500,"built":2504,'
        '"p50_us":3001,"p75_us":3500,"p90_us":4100,"p99_us":9000,"max_us":15400,'
        '"mean_us":3210.5,"connect":0,"read":1,"write":0,"status":7,"timeout":2}\n'
    )
    result = parse_output(exact, 1, 4)
    assert result.built == 2504
    assert result.p50_ms == pytest.approx(3.001)
    assert result.timeouts == 2


def test_wrk_script_escapes_what_it_embeds():
    script = lua_script('se"cret', ["cam-ä"], source="urn:x", run="r1", threads=3)
    assert "local nthreads = 3" in script
    assert '"Bearer se\\034cret"' in script
    assert '"cam-\\092u00e4"' in script


@pytest.mark.parametrize(
    ("op", "topic", "position", "data"),
    [
        ("delta", "overview", 57, {"position": 57, "devices": {"camera": {"offline": 4}}}),
        ("snapshot", "feed", 1042, {"position": 1042, "items": []}),
        ("delta", "alarms", 9, {"position": 9, "items": [], "removed": [{"id": "a"}]}),
    ],
)
def test_the_fast_pattern_reads_frames_as_the_server_writes_them(op, topic, position, data):
    from ops_center.tools.loadclients.screens import FAST
    from streams.outbox import Frame

    fields = {"epoch": "9f1c"} if op == "snapshot" else {}
    raw = Frame(op, topic, position, data, **fields).raw
    match = FAST.match(raw)
    assert match is not None, raw
    assert (match.group(1) is not None, int(match.group(2))) == (op == "delta", position)
    assert op_and_position(raw) == (op.encode(), position)
    assert FAST.match(Frame.error("bad", "no").raw) is None


def test_a_phase_with_a_missing_root_is_nan():
    from ops_center.tools.loadclients.cpu import CpuAccount, CpuSample

    start = CpuSample(0.0, {"a": 1.0, "b": 2.0}, frozenset(), 10.0)
    end = CpuSample(2.0, {"a": 3.0, "b": 0.0}, frozenset({"b"}), 14.0)
    phase = CpuAccount.between(start, end)
    assert phase.kinds["a"] == 2.0
    assert math.isnan(phase.kinds["b"])
    assert phase.missing == {"b"}
    assert phase.others_s == 2.0
    assert phase.cores("a") == 1.0
