"""Outgoing webhooks: a scan's events reach a subscriber signed, are retried after a 500, and are dead-lettered."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time
from pathlib import Path

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from tests.conftest import picture, run_cli, save

SECRET = "s3cr3t-for-tests"


def scan_with_subscriber(tmp_path: Path, url: str, retries: int) -> tuple[Path, str]:
    library = tmp_path / "lib"
    save(picture(5), library / "a.jpg")
    save(picture(5).resize((160, 120)), library / "a-small.jpg")
    config = tmp_path / "dam-dedupe.toml"
    config.write_text(
        f'[webhooks.dam]\nurl = "{url}"\nsecret_env = "DAM_TEST_WEBHOOK_SECRET"\nretries = {retries}\n'
        "backoff_seconds = 0.2\n",
        encoding="utf-8",
    )
    catalog = tmp_path / "catalog.sqlite"
    env = {**os.environ, "DAM_TEST_WEBHOOK_SECRET": SECRET}
    result = run_cli("--catalog", str(catalog), "--config", str(config), "scan", str(library), cwd=tmp_path, env=env)
    return catalog, result.stderr


def test_events_arrive_signed_and_are_retried_after_a_500(httpserver: HTTPServer, tmp_path: Path) -> None:
    received: list[Request] = []
    failed_once: set[str] = set()

    def answer(request: Request) -> Response:
        received.append(request)
        delivery = request.headers["X-Dam-Dedupe-Delivery"]
        if delivery not in failed_once:
            failed_once.add(delivery)
            return Response("try later", status=500)
        return Response("ok", status=200)

    httpserver.expect_request("/hook", method="POST").respond_with_handler(answer)
    catalog, _ = scan_with_subscriber(tmp_path, httpserver.url_for("/hook"), retries=3)

    delivered = [r for r in received if r.headers["X-Dam-Dedupe-Delivery"] in failed_once]
    by_delivery: dict[str, list[Request]] = {}
    for request in delivered:
        by_delivery.setdefault(request.headers["X-Dam-Dedupe-Delivery"], []).append(request)
    assert all(len(tries) == 2 for tries in by_delivery.values())  # each failed once, then was sent again
    events = {}
    for request in received:
        body = request.get_data()
        timestamp = request.headers["X-Dam-Dedupe-Timestamp"]
        expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        assert request.headers["X-Dam-Dedupe-Signature"] == "sha256=" + expected
        assert abs(time.time() - int(timestamp)) < 120
        event = json.loads(body)
        assert event["event"] == request.headers["X-Dam-Dedupe-Event"]
        events[event["event"]] = event["data"]
    assert set(events) == {"scan.finished", "cluster.found"}
    assert events["scan.finished"]["fingerprinted"] == 2
    assert {m["uri"].rsplit("/", 1)[-1] for m in events["cluster.found"]["members"]} == {"a.jpg", "a-small.jpg"}
    with sqlite3.connect(catalog) as conn:
        assert conn.execute("SELECT count(*) FROM webhook_dead_letters").fetchone()[0] == 0
    assert SECRET not in catalog.read_bytes().decode("latin-1")


def test_an_event_never_accepted_is_kept_as_a_dead_letter(httpserver: HTTPServer, tmp_path: Path) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("down", status=503)
    catalog, stderr = scan_with_subscriber(tmp_path, httpserver.url_for("/hook"), retries=1)
    with sqlite3.connect(catalog) as conn:
        rows = conn.execute("SELECT subscriber, event, error, attempts, body FROM webhook_dead_letters").fetchall()
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {
        ("dam", "scan.finished", "HTTP 503", 2),
        ("dam", "cluster.found", "HTTP 503", 2),
    }
    assert all(json.loads(r[4])["event"] == r[1] for r in rows)
    assert SECRET not in stderr
