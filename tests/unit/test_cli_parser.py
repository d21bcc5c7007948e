"""The command line's options: one meaning, wherever they are written; one-line failures."""

from __future__ import annotations

import argparse
import logging
from importlib import metadata
from pathlib import Path

import pytest

from ops_center.cli.main import _settings, build_parser, main
from ops_center.embedded.postgres import EmbeddedError
from ops_center.runtime.failures import (
    CommandFailed,
    debug_wanted,
    describe,
    listen_failure,
    redact,
)
from ops_center.tools.options import websocket_url

DIR = "/srv/ops"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(list(argv))


@pytest.mark.parametrize(
    ("command", "sub", "rest"),
    [
        ("projections", "rebuild", []),
        ("projections", "rebuild", ["feed"]),
        ("projections", "status", []),
        ("keys", "list", []),
        ("keys", "create", ["wall", "--role", "viewer"]),
        ("keys", "revoke", ["wall"]),
        ("bench", "ingest", []),
        ("bench", "projections", []),
        ("bench", "streams", []),
    ],
)
def test_data_dir_before_or_after_the_sub_command_is_the_same(
    command: str, sub: str, rest: list[str]
) -> None:
    after = parse(command, sub, *rest, "--data-dir", DIR)
    before = parse(command, "--data-dir", DIR, sub, *rest)
    assert after == before
    assert after.data_dir == Path(DIR)


def test_data_dir_not_given_leaves_the_settings_default_and_the_inner_one_wins() -> None:
    args = parse("keys", "list")
    assert "data_dir" not in vars(args)  # an inner level did not write None over it
    assert _settings(args).data_dir == _settings(parse("serve")).data_dir
    assert parse("keys", "--data-dir", "/a", "list", "--data-dir", "/b").data_dir == Path("/b")
    assert parse("serve", "--data-dir", DIR).data_dir == Path(DIR)
    assert parse("demo", "--data-dir", DIR).data_dir == Path(DIR)


def test_data_dir_is_refused_where_no_data_is_touched(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("watch", "overview", "--data-dir", DIR)
    assert exited.value.code == 2
    assert "unrecognized arguments: --data-dir" in capsys.readouterr().err


def test_rebuild_with_data_dir_after_takes_no_directory_for_a_projection() -> None:
    """The bug of issue 12: ``rebuild --data-dir DIR`` read DIR as a projection's name."""
    args = parse("projections", "rebuild", "--data-dir", DIR)
    assert (args.projections_command, args.name, args.data_dir) == ("rebuild", None, Path(DIR))


def test_watch_takes_the_server_address_and_key_and_the_old_spellings() -> None:
    new = parse("watch", "feed", "--url", "http://node2.example:8080", "--key", "K")
    old = parse("watch", "feed", "--url", "ws://node2.example:8080/ws", "--token", "K")
    assert new.key == old.key == "K"
    assert websocket_url(new.url) == websocket_url(old.url) == "ws://node2.example:8080/ws"
    assert parse("watch", "feed").url == "http://127.0.0.1:8080"
    assert parse("watch", "feed").key is None  # OPS_CENTER_TOKEN is read when it runs


@pytest.mark.parametrize(
    ("url", "endpoint"),
    [
        ("http://127.0.0.1:8080", "ws://127.0.0.1:8080/ws"),
        ("https://ioc.example.vn", "wss://ioc.example.vn/ws"),
        ("https://ioc.example.vn/ops/", "wss://ioc.example.vn/ops/ws"),
        ("http://[::1]:8080", "ws://[::1]:8080/ws"),
        ("wss://ioc.example.vn/ws", "wss://ioc.example.vn/ws"),
        ("ws://10.0.0.5:8080/ws", "ws://10.0.0.5:8080/ws"),
    ],
)
def test_the_websocket_endpoint_is_derived_from_the_server_address(url: str, endpoint: str) -> None:
    assert websocket_url(parse("watch", "overview", "--url", url).url) == endpoint


def test_simulate_takes_the_same_url_and_key() -> None:
    args = parse("simulate", "--url", "http://127.0.0.1:8080/", "--key", "K")
    assert (args.url, args.key) == ("http://127.0.0.1:8080", "K")


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--url", "ws://127.0.0.1:8080/ws", "--key", "K"],  # not an http address
        ["simulate", "--url", "127.0.0.1:8080", "--key", "K"],
        ["simulate", "--key", "K"],  # --url is required
        ["watch", "overview", "--url", "ftp://h"],
        ["projections", "rebuild", "--batch", "0"],
        ["projections", "rebuild", "--data-dir"],
        [],
    ],
)
def test_usage_errors_exit_with_status_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse(*argv)
    assert exited.value.code == 2


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse("--version")
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"ops-center {metadata.version('ops-center')}"


def test_debug_is_accepted_at_every_level() -> None:
    assert parse("--debug", "keys", "list").debug is True
    assert parse("keys", "--debug", "list").debug is True
    assert parse("keys", "list", "--debug").debug is True
    assert "debug" not in vars(parse("keys", "list"))
    assert debug_wanted(False, {"OPS_CENTER_DEBUG": "1"})
    assert not debug_wanted(False, {"OPS_CENTER_DEBUG": "0"})
    assert not debug_wanted(False, {})


def test_redact_hides_passwords_of_urls_and_settings() -> None:
    text = redact(
        "cannot use postgresql://ops:s3cr:et@db.example:5432/ops "
        "or host=db password='a b' user=x, or redis://:pw@r:6379/0"
    )
    assert "s3cr" not in text
    assert "a b" not in text
    assert "pw@" not in text
    assert "postgresql://ops:***@db.example:5432/ops" in text
    assert "password=*** user=x" in text
    assert "redis://:***@r:6379/0" in text
    assert redact("postgresql://ops@db/ops") == "postgresql://ops@db/ops"


def test_describe_gives_one_line() -> None:
    class OperationalError(Exception):
        pass

    OperationalError.__module__ = "psycopg"
    refused = OperationalError(
        'connection failed: connection to server at "10.0.0.9", port 5432 failed: '
        "Connection refused\n\tIs the server running on that host?"
    )
    assert describe(refused) == (
        'database: connection failed: connection to server at "10.0.0.9", port 5432 failed: '
        "Connection refused Is the server running on that host?"
    )
    assert describe(ConnectionRefusedError(111, "Connect call failed"), database=True) == (
        "database: [Errno 111] Connect call failed"
    )
    embedded = EmbeddedError("pg_ctl start failed\n--- tail of /d/postgres.log ---\nFATAL: x")
    assert describe(embedded) == "pg_ctl start failed (see /d/postgres.log)"
    bug = describe(KeyError("code"))
    assert bug.startswith("'code' (KeyError; --debug")
    assert "\n" not in bug
    assert describe(CommandFailed("a\nb")) == "a b"


def test_listen_failure_names_the_address() -> None:
    busy = listen_failure(OSError(98, "address already in use"), "::1", 8080)
    assert busy is not None
    assert str(busy).startswith("[::1]:8080 is already in use")
    assert listen_failure(OSError(111, "refused"), "127.0.0.1", 8080) is None


def test_main_reports_a_failure_in_one_line_and_an_interrupt_quietly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ops_center.tools.watch

    def fails(args: argparse.Namespace) -> int:
        raise RuntimeError("postgresql://u:secret@h/db\nwent away")

    def interrupted(args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(logging, "basicConfig", lambda **kwargs: None)  # pytest owns logging
    monkeypatch.delenv("OPS_CENTER_DEBUG", raising=False)
    monkeypatch.setattr(ops_center.tools.watch, "main", fails)
    assert main(["watch", "overview"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert "secret" not in err
    assert err.startswith("ops-center watch: postgresql://u:***@h/db went away (RuntimeError")

    with pytest.raises(RuntimeError):  # --debug lets the traceback through
        main(["watch", "overview", "--debug"])
    monkeypatch.setenv("OPS_CENTER_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["watch", "overview"])
    monkeypatch.delenv("OPS_CENTER_DEBUG")

    monkeypatch.setattr(ops_center.tools.watch, "main", interrupted)
    assert main(["watch", "overview"]) == 130
    assert capsys.readouterr().err == ""
