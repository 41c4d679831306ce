"""``POST /v1/check`` over HTTP against a real ``dam-dedupe serve``: matches, tokens, limits, shutdown."""

from __future__ import annotations

import hashlib
import io
import signal
import sqlite3
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from PIL import Image, ImageDraw

from tests.conftest import picture, run_cli, save
from tests.service_library import Service, make_token, raw_request, serving


def jpeg(img: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    img.save(out, "JPEG", quality=quality)
    return out.getvalue()


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A scanned library: a.jpg and its resized copy (one cluster), b.png and c.jpg alone."""
    root = tmp_path_factory.mktemp("service-check")
    lib = root / "图库"
    save(picture(1, (640, 480)), lib / "a.jpg", quality=92)
    save(picture(1, (640, 480)).resize((320, 240)), lib / "a-small.jpg", quality=85)
    save(picture(2), lib / "b.png", "PNG")
    save(picture(3), lib / "c.jpg")
    catalog = root / "catalog.sqlite"
    run_cli("--catalog", str(catalog), "scan", str(lib), "--workers", "1", cwd=root)
    (root / "dam-dedupe.toml").write_text("[service]\nmax_body_bytes = 2000000\n", encoding="utf-8")
    return {"root": root, "lib": lib, "catalog": catalog, "config": root / "dam-dedupe.toml"}


@pytest.fixture(scope="module")
def tokens(library: dict[str, Path]) -> dict[str, str]:
    root, catalog = library["root"], library["catalog"]
    return {
        "check": make_token(root, catalog, "uploader", "check"),
        "read": make_token(root, catalog, "reader", "read"),
        "doomed": make_token(root, catalog, "doomed", "check"),
    }


@pytest.fixture(scope="module")
def service(library: dict[str, Path], tokens: dict[str, str]) -> Iterator[Service]:
    with serving(library["root"], library["catalog"], library["config"]) as running:
        yield running


def by_name(answer: dict) -> dict[str, dict]:
    return {m["uri"].rsplit("/", 1)[-1]: m for m in answer["matches"]}


def fingerprint_rows(catalog: Path) -> int:
    with sqlite3.connect(catalog) as conn:
        return int(conn.execute("SELECT count(*) FROM fingerprints").fetchone()[0])


def test_a_check_finds_exact_resized_and_rotated_copies_and_nothing_for_a_look_alike(
    library: dict[str, Path], tokens: dict[str, str], service: Service
) -> None:
    before = fingerprint_rows(library["catalog"])
    body = (library["lib"] / "a.jpg").read_bytes()
    answer = service.check(tokens["check"], body).json()
    assert answer["sha256"] == hashlib.sha256(body).hexdigest()
    found = by_name(answer)
    assert found["a.jpg"]["match"] == "exact"
    assert found["a-small.jpg"]["match"] == "near"
    assert set(found) == {"a.jpg", "a-small.jpg"}
    assert found["a.jpg"]["cluster_id"] is not None
    assert found["a.jpg"]["cluster_id"] == found["a-small.jpg"]["cluster_id"]
    assert found["a.jpg"]["canonical_uri"] in {m["uri"] for m in answer["matches"]}

    resized = by_name(service.check(tokens["check"], jpeg(picture(1, (640, 480)).resize((480, 360)), 75)).json())
    assert {k: v["match"] for k, v in resized.items()} == {"a.jpg": "near", "a-small.jpg": "near"}
    assert "resized" in resized["a.jpg"]["evidence"]["relation"]

    turned = by_name(service.check(tokens["check"], jpeg(picture(1, (640, 480)).rotate(90, expand=True))).json())
    assert turned["a.jpg"]["match"] == "transformed"

    alone = service.check(tokens["check"], (library["lib"] / "b.png").read_bytes()).json()
    assert [(m["uri"].rsplit("/", 1)[-1], m["match"], m["cluster_id"]) for m in alone["matches"]] == [
        ("b.png", "exact", None)
    ]

    look_alike = picture(1, (640, 480))
    ImageDraw.Draw(look_alike).rectangle([0, 0, 400, 480], fill=(20, 160, 90))
    assert service.check(tokens["check"], jpeg(look_alike)).json()["matches"] == []
    assert service.check(tokens["check"], jpeg(picture(8, (640, 480)))).json()["matches"] == []
    assert fingerprint_rows(library["catalog"]) == before  # a check stores nothing


def test_missing_unknown_revoked_and_unscoped_tokens_are_refused(
    library: dict[str, Path], tokens: dict[str, str], service: Service
) -> None:
    body = (library["lib"] / "c.jpg").read_bytes()
    assert service.check(tokens["doomed"], body).status_code == 200
    missing = requests.post(service.url + "/v1/check", data=body, headers={"Content-Type": "image/jpeg"}, timeout=30)
    assert missing.status_code == 401
    assert service.check("ddt_not-a-token", body).status_code == 401
    run_cli("--catalog", str(library["catalog"]), "tokens", "revoke", "doomed", cwd=library["root"])
    assert service.check(tokens["doomed"], body).status_code == 401  # at once, in the running service
    assert service.check(tokens["read"], body).status_code == 403
    assert service.get("/v1/clusters", tokens["check"]).status_code == 403
    assert service.get("/v1/clusters", tokens["read"]).status_code == 200
    listing = run_cli("--catalog", str(library["catalog"]), "tokens", "list", cwd=library["root"]).stdout
    assert "doomed" in listing and "revoked" in listing and "uploader" in listing
    assert all(token not in listing for token in tokens.values())


def bomb_png(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    data = chunk(b"IDAT", zlib.compress(b"\0" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + data + chunk(b"IEND", b"")


def test_oversized_corrupt_and_bomb_bodies_get_4xx_and_the_service_keeps_answering(
    library: dict[str, Path], tokens: dict[str, str], service: Service
) -> None:
    auth = f"Authorization: Bearer {tokens['check']}\r\n".encode()
    start = b"POST /v1/check HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\n" + auth
    declared = start + b"Content-Length: 3000000\r\n\r\n"
    assert raw_request(service, declared, []) == 413  # from Content-Length, before any body is sent
    chunked = start + b"Transfer-Encoding: chunked\r\n\r\n"
    piece = b"%x\r\n" % 65536 + b"\xff" * 65536 + b"\r\n"
    assert raw_request(service, chunked, [piece] * 40 + [b"0\r\n\r\n"]) == 413  # counted while read

    good = (library["lib"] / "c.jpg").read_bytes()
    for bad in (good[: len(good) // 3], b"GIF89a" + b"\0" * 100, b"not an image at all", b""):
        answer = service.check(tokens["check"], bad)
        assert answer.status_code == 422, (bad[:10], answer.text)
    for width, height in ((10_000, 10_000), (40_000, 40_000), (200_000, 2_000)):  # over Pillow's warning, and error
        answer = service.check(tokens["check"], bomb_png(width, height))
        assert answer.status_code == 422 and "decompression bomb" in answer.json()["detail"]
    text = service.post("/v1/check", tokens["check"], data=good, headers={"Content-Type": "text/plain"})
    assert text.status_code == 415
    assert service.get("/v1/health").status_code == 200
    assert by_name(service.check(tokens["check"], good).json())["c.jpg"]["match"] == "exact"


def test_openapi_document_and_sigterm_stops_the_service_within_seconds(
    library: dict[str, Path], tokens: dict[str, str]
) -> None:
    with serving(library["root"], library["catalog"]) as running:
        document = running.get("/openapi.json").json()
        assert {"/v1/check", "/v1/ingest", "/v1/clusters", "/v1/plans", "/v1/health"} <= set(document["paths"])
        started = time.monotonic()
        running.process.send_signal(signal.SIGTERM)
        running.process.wait(10)
        assert time.monotonic() - started < 5
        assert running.process.returncode is not None
