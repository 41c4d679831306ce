"""``POST /v1/ingest`` over HTTP: a DAM's upload event catalogues the asset once per (asset id, version)."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from tests.conftest import picture, run_cli, save
from tests.service_library import make_token, raw_request, serving


def counts(catalog: Path) -> tuple[int, int, int]:
    """(assets, fingerprints, ingest records)."""
    with sqlite3.connect(catalog) as conn:
        return tuple(  # type: ignore[return-value]
            conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            for table in ("assets", "fingerprints", "dam_ingests")
        )


def test_ingest_catalogues_once_per_asset_version_and_answers_like_a_check(tmp_path: Path) -> None:
    library = tmp_path / "dam-export"
    save(picture(4, (640, 480)), library / "existing.jpg")
    catalog = tmp_path / "catalog.sqlite"
    config = tmp_path / "dam-dedupe.toml"
    config.write_text(
        f'[sources.dam]\nuri = "{library.as_uri()}"\n\n[service]\ncanto_uri = "{library.as_uri()}/{{name}}"\n'
        f'bynder_uri = "{library.as_uri()}/bynder/{{asset_id}}.jpg"\n',
        encoding="utf-8",
    )
    run_cli("--catalog", str(catalog), "--config", str(config), "scan", "dam", "--workers", "1", cwd=tmp_path)
    token = make_token(tmp_path, catalog, "bynder-relay", "ingest", "check")
    with serving(tmp_path, catalog, config) as service:
        save(picture(4, (640, 480)).resize((400, 300)), library / "上传 copy.jpg")
        uri = (library / "上传 copy.jpg").as_uri()
        event = {"uri": uri, "asset_id": "A-17", "version": "1"}
        before = counts(catalog)
        first = service.post("/v1/ingest", token, json=event)
        assert first.status_code == 200, first.text
        answer = first.json()
        assert answer["ingest"]["catalogued"] is True
        assert [(m["uri"].rsplit("/", 1)[-1], m["match"]) for m in answer["matches"]] == [("existing.jpg", "near")]
        after = counts(catalog)
        assert after == (before[0] + 1, before[1] + 1, before[2] + 1)

        repeat = service.post("/v1/ingest", token, json=event).json()
        assert repeat["ingest"]["catalogued"] is False
        assert repeat["matches"] == answer["matches"] and repeat["sha256"] == answer["sha256"]
        assert counts(catalog) == after  # a repeat is a no-op

        # the ingested asset is now found by checks, without a rescan
        checked = service.check(token, (library / "上传 copy.jpg").read_bytes()).json()
        assert (uri, "exact") in [(m["uri"], m["match"]) for m in checked["matches"]]

        # a Canto webhook maps onto the same receiver; a new version is catalogued again
        save(picture(4, (640, 480)).rotate(180), library / "turned.jpg")
        canto = service.post(
            "/v1/ingest/canto", token, json={"id": "c-9", "scheme": "image", "displayName": "turned.jpg"}
        )
        assert canto.status_code == 200, canto.text
        assert {m["match"] for m in canto.json()["matches"]} == {"transformed"}
        ignored = service.post("/v1/ingest/canto", token, json={"id": "c-10", "scheme": "video"})
        assert ignored.status_code == 200 and "ignored" in ignored.json()

        # a Bynder notification arrives through Amazon SNS, the event as a JSON string in its Message
        save(picture(4, (640, 480)).resize((320, 240)), library / "bynder" / "8A2C-11.jpg")
        created = {"name": "asset_bank.media.create", "media_id": "8A2C-11", "timestamp": "2026-12-02T01:00:00Z"}
        sns = {"Type": "Notification", "MessageId": "m-1", "Message": json.dumps(created)}
        bynder = service.post("/v1/ingest/bynder", token, json=sns)
        assert bynder.status_code == 200, bynder.text
        assert bynder.json()["ingest"]["asset_id"] == "8A2C-11" and bynder.json()["ingest"]["catalogued"] is True
        assert service.post("/v1/ingest/bynder", token, json=sns).json()["ingest"]["catalogued"] is False
        metadata = {**sns, "Message": json.dumps({**created, "name": "asset_bank.media.meta_updated"})}
        assert "ignored" in service.post("/v1/ingest/bynder", token, json=metadata).json()
        confirm = {"Type": "SubscriptionConfirmation", "SubscribeURL": "http://127.0.0.1:1/never-fetched"}
        assert "ignored" in service.post("/v1/ingest/bynder", token, json=confirm).json()
        assert service.post("/v1/ingest/bynder", token, json={"Type": "Notification"}).status_code == 422
        assert service.post("/v1/ingest/frontify", token, json={}).status_code == 404

        outside = service.post(
            "/v1/ingest", token, json={**event, "asset_id": "A-18", "uri": (tmp_path / "secret.jpg").as_uri()}
        )
        assert outside.status_code == 422 and "not inside any source" in outside.json()["detail"]
        for sneaky in (library.as_uri() + "/../secret.jpg", library.as_uri() + "/%2E%2E/secret.jpg"):
            climbed = service.post("/v1/ingest", token, json={**event, "asset_id": "A-20", "uri": sneaky})
            assert climbed.status_code == 422 and "'..'" in climbed.json()["detail"]
        missing = service.post("/v1/ingest", token, json={**event, "uri": uri + ".gone", "version": "2"})
        assert missing.status_code == 422
        assert service.post("/v1/ingest", token, json={"uri": uri}).status_code == 422
        assert (
            service.post(
                "/v1/ingest", token, data=b"{not json", headers={"Content-Type": "application/json"}
            ).status_code
            == 422
        )
        library.rename(tmp_path / "unmounted")  # the store vanishes: a failure that may pass, so the DAM resends
        gone = service.post("/v1/ingest", token, json={**event, "asset_id": "A-19"})
        assert gone.status_code == 503 and gone.headers["Retry-After"]
        (tmp_path / "unmounted").rename(library)
        big = b"POST /v1/ingest HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        big += f"Authorization: Bearer {token}\r\nContent-Length: 60000000\r\n\r\n".encode()
        assert raw_request(service, big, [b"{" * 65536] * 4) == 413  # JSON routes have the limit too
        assert service.get("/v1/health").status_code == 200


def test_a_running_service_finds_what_a_later_scan_catalogued(tmp_path: Path) -> None:
    library = tmp_path / "lib"
    save(picture(6), library / "first.jpg")
    catalog = tmp_path / "catalog.sqlite"
    run_cli("--catalog", str(catalog), "scan", str(library), "--workers", "1", cwd=tmp_path)
    token = make_token(tmp_path, catalog, "uploader", "check")
    with serving(tmp_path, catalog) as service:
        later = save(picture(7), library / "later.jpg")
        assert service.check(token, later.read_bytes()).json()["matches"] == []
        run_cli("--catalog", str(catalog), "scan", str(library), "--workers", "1", cwd=tmp_path)
        deadline = time.monotonic() + 20
        while not service.check(token, later.read_bytes()).json()["matches"]:
            assert time.monotonic() < deadline, "the index was not refreshed after the scan"
            time.sleep(0.5)
        assert service.get("/v1/health").json()["images"] == 2
