"""The HTML report of an archive with documents and a RAW master, in headless Chromium."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import run_cli
from tests.formats_library import encoded, library_image, make_dng, make_pptx
from tests.servers.chromium import Chromium, chromium  # noqa: F401


def test_embedded_copies_say_where_they_are_referenced_and_a_raw_master_shows_as_derivative(
    chromium: Chromium, tmp_path: Path
) -> None:
    root = tmp_path / "archive"
    lib = library_image()
    make_dng(root / "raw" / "IMG_0001.dng", lib)
    lib.save(root / "IMG_0001.jpg", quality=90)
    make_pptx(root / "簡報" / "launch.pptx", [encoded(lib, "PNG", (300, 300))])
    run_cli("scan", str(root), "--workers", "2", cwd=tmp_path)
    run_cli("report", "--format", "html", "-o", "report.html", cwd=tmp_path)

    tab = chromium.new_page()
    try:
        tab.navigate((tmp_path / "report.html").as_uri())
        tab.evaluate("window.damDedupeReport.ready")
        notes = tab.evaluate("[...document.querySelectorAll('.member .embedded')].map(n => n.textContent)")
        roles = tab.evaluate("[...document.querySelectorAll('.member .role')].map(n => n.textContent)")
        relations = tab.evaluate("[...document.querySelectorAll('.member .relation')].map(n => n.textContent)")
        errors = tab.console_errors
    finally:
        tab.close()
    deck = "file://" + str((root / "簡報" / "launch.pptx").resolve())  # readable, not %E7%B0%A1%E5%A0%B1
    assert errors == []
    assert notes == [f"referenced in {deck} (never acted on)"]
    assert "derivative" in roles
    assert any(r.startswith("camera RAW and an export of it") for r in relations)
