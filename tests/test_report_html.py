"""The HTML report in headless Chromium: no console errors, filters work, store strings stay text,
and decisions exported from the page round-trip through ``dam-dedupe decisions import``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.report_library import MARKUP_NAME, AuditLibrary, run, scanned  # noqa: F401
from tests.servers.chromium import Chromium, Page, chromium  # noqa: F401

CARD_NAMES = (
    "[...document.querySelectorAll('#cards .card')].map(c => [...c.querySelectorAll('.name')].map(n => n.textContent))"
)


@pytest.fixture(scope="module")
def page(
    scanned: tuple[AuditLibrary, Path], chromium: Chromium, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Page]:
    """The scanned library's HTML report, open and rendered."""
    library, catalog = scanned
    out = tmp_path_factory.mktemp("html") / "report.html"
    run(library, catalog, "report", "--format", "html", "-o", str(out))
    tab = chromium.new_page()
    tab.navigate(out.as_uri())
    tab.evaluate("window.damDedupeReport.ready")
    yield tab
    tab.close()


def choose(page: Page, select: str, value: str) -> None:
    """Pick a value in a filter control as a user would, firing its change event."""
    target, chosen = json.dumps(select), json.dumps(value)
    page.evaluate(
        f"(() => {{ const e = document.getElementById({target}); e.value = {chosen};"
        " e.dispatchEvent(new Event('change')); })()"
    )


def cards(page: Page) -> list[list[str]]:
    """The file names shown in each rendered card, in order."""
    names: list[list[str]] = page.evaluate(CARD_NAMES)
    return names


def reset(page: Page) -> None:
    """Clear every filter."""
    for select, value in (
        ("f-source", ""),
        ("f-match", ""),
        ("f-tier", ""),
        ("f-flag", ""),
        ("f-min", "0"),
        ("f-sort", "risk"),
    ):
        choose(page, select, value)
    page.evaluate("document.getElementById('f-text').value = ''; window.damDedupeReport.applyFilters()")


def test_opens_without_console_errors(page: Page) -> None:
    page.drain()
    assert page.console_errors == []
    assert len(cards(page)) == 5
    assert page.evaluate("document.querySelectorAll('svg[role=img]').length") == 5  # the summary charts


def test_markup_in_a_file_name_is_shown_as_text(page: Page) -> None:
    reset(page)
    shown = page.evaluate("[...document.querySelectorAll('.name')].map(n => n.textContent)")
    assert MARKUP_NAME in shown
    assert page.evaluate("document.querySelectorAll('img:not(.preview)').length") == 0  # none made from the name
    assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0


def test_filters_by_risk_source_match_kind_and_size(page: Page) -> None:
    reset(page)
    choose(page, "f-flag", "personal_data")
    assert cards(page) == [["astronaut.png", "astronaut copy.png"]]
    choose(page, "f-flag", "licensed_spread")
    assert cards(page) == [["harbour.jpg", "harbour-2026.jpg"]]
    choose(page, "f-flag", "cross_jurisdiction")
    assert len(cards(page)) == 4
    reset(page)
    choose(page, "f-match", "near")
    assert cards(page) == []
    reset(page)
    choose(page, "f-tier", "internal")  # a cluster takes the highest tier among its copies: none is internal only
    assert cards(page) == []
    choose(page, "f-tier", "external-facing")
    assert len(cards(page)) == 5
    reset(page)
    choose(page, "f-min", "0.3")  # MiB: only the astronaut PNG's copy is that large
    assert cards(page) == [["astronaut.png", "astronaut copy.png"]]
    reset(page)
    page.evaluate("document.getElementById('f-text').value = 'logo'; window.damDedupeReport.applyFilters()")
    assert cards(page) == [["logo.jpg", "logo-copy.jpg"]]
    reset(page)
    choose(page, "f-sort", "reclaimable")
    sizes = page.evaluate("[...document.querySelectorAll('#cards .card')].map(c => c.querySelector('h3').textContent)")
    assert "astronaut" in " ".join(cards(page)[0])
    assert len(sizes) == 5
    page.drain()
    assert page.console_errors == []


def test_registers_are_rendered(page: Page) -> None:
    rows = page.evaluate("[...document.querySelectorAll('#register-table tbody tr')].map(r => r.cells[3].textContent)")
    assert sorted(Path(r).name for r in rows) == ["astronaut copy.png", "astronaut.png", "portrait.jpg"]
    assert page.evaluate("document.querySelectorAll('#licensed-table tbody tr').length") == 1
    assert page.evaluate("document.querySelectorAll('#jurisdiction-table tbody tr').length") == 4


CLICK = """(([name, selector]) => {
  const member = [...document.querySelectorAll('.member')].find(m => m.querySelector('.name').textContent === name);
  (member.querySelector(selector) || member.closest('.card').querySelector(selector)).click();
})"""


def click_in_card(page: Page, file_name: str, selector: str) -> None:
    """Click a button in the card showing ``file_name`` (in that member's box for member buttons)."""
    page.evaluate(f"{CLICK}({json.dumps([file_name, selector])})")


def test_review_decisions_export_and_import(
    page: Page, chromium: Chromium, scanned: tuple[AuditLibrary, Path], tmp_path: Path
) -> None:
    library, catalog = scanned
    reset(page)
    click_in_card(page, "logo.jpg", ".decide-keep_all")
    click_in_card(page, "astronaut copy.png", ".make-canonical")
    click_in_card(page, "chelsea.jpg", ".exclude-member")
    assert page.evaluate("document.getElementById('decision-count').textContent") == "3 decisions"
    page.evaluate("document.getElementById('export').click()")  # no reviewer name yet: refused with a message
    assert "Enter your name" in page.evaluate("document.getElementById('export-status').textContent")
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    chromium.allow_downloads(downloads)
    page.evaluate("document.getElementById('reviewer').value = 'Legal <reviewer>'")
    page.evaluate("document.getElementById('export').click()")
    exported = downloads / "dam-dedupe-decisions.json"
    deadline = time.monotonic() + 10
    while not exported.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    doc: dict[str, Any] = json.loads(exported.read_text(encoding="utf-8"))
    assert doc["exported_by"] == "Legal <reviewer>"
    assert sorted(d["decision"] for d in doc["decisions"]) == ["canonical", "exclude_member", "keep_all"]
    assert "stored 3 decisions" in run(library, catalog, "decisions", "import", str(exported))
    run(library, catalog, "report", "--format", "json", "-o", str(tmp_path / "after.json"))
    report = json.loads((tmp_path / "after.json").read_text(encoding="utf-8"))
    logo = next(c for c in report["clusters"] if c["members"][0]["name"] == "logo.jpg")
    assert logo["decided"] and logo["decisions"][0]["decision"] == "keep_all"
    assert logo["decisions"][0]["decided_by"] == "Legal <reviewer>"
    astronaut = next(c for c in report["clusters"] if c["members"][0]["name"] == "astronaut.png")
    assert not astronaut["decided"]  # a new canonical is a decision, but the cluster is still to be acted on
    assert [(d["decision"], Path(d["uri"]).name) for d in astronaut["decisions"]] == [
        ("canonical", "astronaut%20copy.png")
    ]
    assert report["summary"]["decided_clusters"] == 1


@pytest.mark.parametrize("width", [390, 768, 1440])
def test_the_page_fits_phone_tablet_and_wide_screens(page: Page, width: int, tmp_path: Path) -> None:
    reset(page)
    page.send("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=width < 700)
    try:
        page.drain()
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow}px at {width}px"
        charts_out = page.evaluate(
            "[...document.querySelectorAll('svg[role=img]')].filter(s => s.getBoundingClientRect().right >"
            " document.documentElement.clientWidth + 1).length"
        )
        assert charts_out == 0, f"{charts_out} charts are cut off at {width}px"
        page.screenshot(tmp_path / f"report-{width}.png", full_page=True)  # kept as the test's artefact
        assert (tmp_path / f"report-{width}.png").stat().st_size > 0
    finally:
        page.send("Emulation.clearDeviceMetricsOverride")


def test_copies_are_explained_in_words_with_the_measurements_one_click_away(chromium: Chromium, tmp_path: Path) -> None:
    run_cli("demo", cwd=tmp_path)  # the sample holds resized, converted and re-encoded copies
    tab = chromium.new_page()
    try:
        tab.navigate((tmp_path / "dam-dedupe-report.html").as_uri())
        tab.evaluate("window.damDedupeReport.ready")
        words = tab.evaluate("[...document.querySelectorAll('.member .words')].map(n => n.textContent)")
        relations = tab.evaluate("[...document.querySelectorAll('.member .relation')].map(n => n.textContent)")
        details = tab.evaluate("document.querySelectorAll('.member details.evidence').length")
        tab.wait_for(  # previews load lazily: the first cards' are on screen
            "[...document.querySelectorAll('.member img.preview')].some(i => i.complete && i.naturalWidth > 0)"
        )
        colour = tab.evaluate(
            "[...document.querySelectorAll('.member img.preview')].filter(i => i.complete && i.naturalWidth > 0)"
            ".map(i => i.naturalWidth)"
        )
        tab.evaluate("document.querySelector('.member .compare-button').click()")
        tab.wait_for(
            "document.querySelectorAll('.compare img').length === 3 &&"
            " [...document.querySelectorAll('.compare img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        captions = tab.evaluate("[...document.querySelectorAll('.compare figcaption')].map(f => f.textContent)")
        tab.evaluate("document.querySelector('.compare .close-compare').click()")
        closed = tab.evaluate("document.querySelectorAll('.compare').length")
    finally:
        tab.close()
    assert any(w.startswith("byte-identical") for w in words)
    assert any("resized to" in w for w in words) and any("converted from JPEG to PNG" in w for w in words)
    assert not any("{" in w for w in words)  # no raw JSON in a card
    assert any(", " in r for r in relations) and not any("resizedconverted" in r for r in relations)
    assert details > 0
    assert colour and max(colour) == 160  # colour previews, 160 px on the long side, for every card
    assert captions[0].startswith("canonical: ") and captions[1].startswith("copy: ") and "difference" in captions[3]
    assert closed == 0
