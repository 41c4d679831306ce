"""Images inside Office and PDF documents: each an asset, grouped with the library original, never acted on."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from dam_dedupe.catalog import SqlCatalog, open_catalog
from dam_dedupe.config import Config
from dam_dedupe.containers import DocumentError, Limits, read_document
from dam_dedupe.decisions import Decision, Decisions
from dam_dedupe.governance import Selection, make_plan
from dam_dedupe.host import Host
from dam_dedupe.plugins.office_documents import OfficeDocuments
from dam_dedupe.records import SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.formats_library import (
    encoded,
    encrypt_pdf,
    library_image,
    make_docx,
    make_pdf,
    make_pptx,
    make_xlsx,
    other_image,
)


def build_archive(root: Path) -> None:
    """A library original (a 400-pixel JPEG), a standalone copy, and copies inside a deck, a Word document, a PDF
    and an Excel workbook.

    The deck holds the picture at a higher resolution than the library file, as a designer's
    deck often does, so a policy that prefers resolution would pick it as canonical if it could.
    """
    lib = library_image()
    (root / "library").mkdir(parents=True)
    lib.resize((400, 400)).save(root / "library" / "brand.jpg", quality=92)
    lib.resize((300, 300)).save(root / "library" / "brand copy.png")
    make_pptx(root / "decks" / "q3 deck.pptx", [encoded(lib, "PNG"), encoded(other_image(0), "JPEG")])
    make_docx(root / "docs" / "品牌指南.docx", [encoded(lib, "JPEG", (300, 300), quality=55)])
    make_pdf(root / "docs" / "annual report.pdf", [other_image(2), lib.resize((256, 256))])
    make_xlsx(root / "sheets" / "budget.xlsx", [encoded(lib, "PNG", (200, 200))])


def brand_cluster(report: dict) -> dict:
    return next(c for c in report["clusters"] if c["canonical"].endswith("/library/brand.jpg"))


def test_each_embedded_copy_is_grouped_with_the_library_original_and_named_by_document_and_part(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    catalog = open_catalog(catalog_location)

    summary = run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=2)

    assert summary.errors == 0
    report = build_report(catalog)
    cluster = brand_cluster(report)
    base = root.resolve().as_uri()
    assert {m["uri"] for m in cluster["members"]} == {
        f"{base}/library/brand.jpg",
        f"{base}/library/brand%20copy.png",
        f"{base}/decks/q3%20deck.pptx#ppt/media/image1.png",
        f"{base}/docs/%E5%93%81%E7%89%8C%E6%8C%87%E5%8D%97.docx#word/media/image1.jpg",
        f"{base}/docs/annual%20report.pdf#page=2&image=1",
        f"{base}/sheets/budget.xlsx#xl/media/image1.png",
    }
    # the larger copy inside the deck is not the canonical: a document is never the authorised copy
    assert cluster["members"][0]["canonical"] and cluster["members"][0]["embedded_in"] is None
    embedded = {m["embedded_in"] for m in cluster["members"] if m["embedded_in"]}
    assert embedded == {
        f"{base}/decks/q3%20deck.pptx",
        f"{base}/docs/%E5%93%81%E7%89%8C%E6%8C%87%E5%8D%97.docx",
        f"{base}/docs/annual%20report.pdf",
        f"{base}/sheets/budget.xlsx",
    }
    assert cluster["embedded_copies"] == 4 and cluster["referenced_in"] == sorted(embedded)
    # the unrelated pictures in the deck and the PDF are images of their own, copies of nothing
    grouped = {m["uri"] for c in report["clusters"] for m in c["members"]}
    assert f"{base}/decks/q3%20deck.pptx#ppt/media/image2.jpg" not in grouped
    assert f"{base}/docs/annual%20report.pdf#page=1&image=1" not in grouped
    assert report["summary"]["images"] == 8  # two library files, six pictures inside documents
    assert report["summary"]["embedded_copies"] == 4
    # embedded copies are holdings: their bytes count in the cluster's figures, and a photograph of a person
    # inside four documents is six locations in the personal-data register, four of them embedded
    assert cluster["reclaimable_bytes"] == sum(m["size"] for m in cluster["members"] if not m["canonical"])
    assert cluster["personal_data"]
    entry = next(e for e in report["personal_data_register"] if e["cluster"] == cluster["id"])
    assert len(entry["locations"]) == 6
    assert sorted(loc["embedded_in"] for loc in entry["locations"] if loc["embedded_in"]) == sorted(embedded)


def test_a_plan_acts_only_on_standalone_files_and_says_where_each_embedded_copy_is_referenced(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    catalog = open_catalog(catalog_location)
    host = Host()
    run_scan([SourceSpec(root.as_uri())], catalog, host, Config(), workers=1)

    plan = make_plan(catalog, host, Config(), "quarantine", {}, Selection(), by="ana")

    targets = {step.target.uri for step in plan.steps}
    base = root.resolve().as_uri()
    assert targets == {f"{base}/library/brand%20copy.png"}
    reasons = {e["uri"]: e["reason"] for e in plan.body["excluded"] if "uri" in e}
    deck = f"{base}/decks/q3%20deck.pptx"
    assert reasons[f"{deck}#ppt/media/image1.png"] == f"referenced in {deck}: documents are never rewritten"
    assert sum(r.startswith("referenced in ") for r in reasons.values()) == 4


def test_password_protected_pdf_and_truncated_deck_are_errors_with_reasons_and_the_scan_goes_on(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    encrypt_pdf(root / "docs" / "annual report.pdf", root / "docs" / "board only.pdf", "s3cret")
    deck = (root / "decks" / "q3 deck.pptx").read_bytes()
    (root / "decks" / "cut short.pptx").write_bytes(deck[: len(deck) // 2])
    (root / "decks" / "protected.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(4000))
    catalog = open_catalog(catalog_location)

    summary = run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=2)

    assert summary.errors == 3
    errors = {Path(e["path"]).name: e["reason"] for e in build_report(catalog)["errors"]}
    assert errors == {
        "board only.pdf": "password-protected PDF: it needs a password to open",
        "cut short.pptx": "corrupt or truncated Office document: File is not a zip file",
        "protected.docx": "password-protected (an encrypted Office file), or an old binary Office format",
    }
    assert len(brand_cluster(build_report(catalog))["members"]) == 6  # the rest of the archive was read


def test_document_images_follow_their_document_across_scans(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    catalog = open_catalog(catalog_location)
    host, spec = Host(), SourceSpec(root.as_uri())
    run_scan([spec], catalog, host, Config(), workers=1)
    base = root.resolve().as_uri()
    deck_image = f"{base}/decks/q3%20deck.pptx#ppt/media/image1.png"

    again = run_scan([spec], catalog, host, Config(), workers=1)
    assert again.fingerprinted == 0 and again.gone == 0  # an unchanged document is not read again
    assert catalog.asset_by_uri(deck_image) is not None
    assert catalog.asset_by_uri(deck_image).state.presence == "present"  # type: ignore[union-attr]

    make_pptx(root / "decks" / "q3 deck.pptx", [encoded(other_image(1), "JPEG")])  # the brand picture taken out
    (root / "docs" / "annual report.pdf").unlink()
    changed = run_scan([spec], catalog, host, Config(), workers=1)

    assert changed.fingerprinted == 1  # the deck's one picture; nothing else changed
    presence = {uri: catalog.asset_by_uri(uri).state.presence for uri in (deck_image,)}  # type: ignore[union-attr]
    assert presence == {deck_image: "gone"}
    pdf_image = catalog.asset_by_uri(f"{base}/docs/annual%20report.pdf#page=2&image=1")
    assert pdf_image is not None and pdf_image.state.presence == "gone"
    members = {m["uri"] for m in brand_cluster(build_report(catalog))["members"]}
    assert deck_image not in members and len(members) == 4


def zip_with_media(parts: dict[str, bytes]) -> io.BytesIO:
    """An OOXML-shaped zip (deflated) holding ``parts`` under ``ppt/media/``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        for name, data in parts.items():
            archive.writestr(f"ppt/media/{name}", data)
    out.seek(0)
    return out


def test_a_zip_bomb_is_an_error_for_its_document_before_it_is_decompressed() -> None:
    bomb = zip_with_media({"image1.png": bytes(8 * 1024 * 1024)})  # 8 MiB of zeros: a few kilobytes zipped
    assert len(bomb.getvalue()) < 64 * 1024

    with pytest.raises(DocumentError, match="zip bomb"):
        read_document(OfficeDocuments, bomb, limits=Limits(max_total_bytes=1024 * 1024))


def test_parts_within_their_own_limit_but_too_large_together_are_refused_before_decompression() -> None:
    parts = {f"image{n}.bin": bytes(600 * 1024) for n in range(4)}

    with pytest.raises(DocumentError, match="zip bomb"):
        read_document(OfficeDocuments, zip_with_media(parts), limits=Limits(max_total_bytes=2 * 1024 * 1024))
    with pytest.raises(DocumentError, match="states 614400 bytes decompressed"):
        read_document(OfficeDocuments, zip_with_media(parts), limits=Limits(max_part_bytes=500 * 1024))


def test_a_part_that_decompresses_to_more_than_its_stated_size_is_that_parts_error() -> None:
    lib = encoded(library_image(), "JPEG", (200, 200))
    archive = zip_with_media({"image1.jpg": lib, "image2.png": bytes(100_000)}).getvalue()
    entry = archive.rindex(b"PK\x01\x02")  # the central directory entry of image2.png: claim 1,000 bytes
    lying = archive[: entry + 24] + (1000).to_bytes(4, "little") + archive[entry + 28 :]

    found = read_document(OfficeDocuments, io.BytesIO(lying))

    by_name = {p.name: p for p in found.parts}
    assert by_name["ppt/media/image1.jpg"].fingerprint is not None
    assert by_name["ppt/media/image2.png"].fingerprint is None
    assert by_name["ppt/media/image2.png"].error


def test_a_document_with_more_images_than_the_limit_is_read_up_to_it_and_says_so(tmp_path: Path) -> None:
    pictures = [encoded(other_image(n), "PNG", (64, 48)) for n in range(2, 8)]
    deck = make_pptx(tmp_path / "many.pptx", pictures)

    with deck.open("rb") as stream:
        found = read_document(OfficeDocuments, stream, limits=Limits(max_parts=4))

    assert [p.name for p in found.parts] == [f"ppt/media/image{n}.png" for n in range(1, 5)]
    assert all(p.fingerprint is not None for p in found.parts)
    assert found.note == "holds more than 4 images; only the first 4 were read"


def test_a_part_no_decoder_knows_is_skipped_and_the_documents_other_images_are_read() -> None:
    lib = encoded(library_image(), "JPEG", (200, 200))
    media = {"image1.jpg": lib, "image2.bin": b"\x01\x00\x00\x00junk", "image3.emf": b"\x01\x00\x00\x00"}
    found = read_document(OfficeDocuments, zip_with_media(media))

    by_name = {p.name: p for p in found.parts}
    assert set(by_name) == {"ppt/media/image1.jpg", "ppt/media/image2.bin"}  # a vector drawing is not a picture
    assert by_name["ppt/media/image1.jpg"].fingerprint is not None
    assert by_name["ppt/media/image2.bin"].fingerprint is None and by_name["ppt/media/image2.bin"].content == "skipped"
    assert "not an image" in (by_name["ppt/media/image2.bin"].error or "")


def test_catalog_marks_embedded_images_with_their_document(tmp_path: Path, catalog_location: str) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    catalog = open_catalog(catalog_location)
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=1)
    assert isinstance(catalog, SqlCatalog)

    embedded = catalog.embedded_images()

    assert sorted({d.rsplit("/", 1)[1] for d in embedded.values()}) == [
        "%E5%93%81%E7%89%8C%E6%8C%87%E5%8D%97.docx",
        "annual%20report.pdf",
        "budget.xlsx",
        "q3%20deck.pptx",
    ]
    assert len(embedded) == 6


def test_a_document_damaged_since_the_last_scan_is_an_error_and_its_images_are_no_longer_counted(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    catalog = open_catalog(catalog_location)
    spec = SourceSpec(root.as_uri())
    run_scan([spec], catalog, Host(), Config(), workers=1)
    deck = root / "decks" / "q3 deck.pptx"
    deck.write_bytes(deck.read_bytes()[:1000])

    summary = run_scan([spec], catalog, Host(), Config(), workers=1)

    assert summary.errors == 1
    report = build_report(catalog)
    assert [Path(e["path"]).name for e in report["errors"]] == ["q3 deck.pptx"]
    members = {m["uri"] for m in brand_cluster(report)["members"]}
    assert not any("q3%20deck.pptx#" in uri for uri in members) and len(members) == 5
    assert report["summary"]["images"] == 6


def test_a_reviewer_naming_an_embedded_copy_as_canonical_leaves_the_cluster_out_of_the_plan(
    tmp_path: Path, catalog_location: str
) -> None:
    root = tmp_path / "archive"
    build_archive(root)
    catalog = open_catalog(catalog_location)
    host = Host()
    run_scan([SourceSpec(root.as_uri())], catalog, host, Config(), workers=1)
    cluster = brand_cluster(build_report(catalog))
    deck_image = next(m["uri"] for m in cluster["members"] if m["embedded_in"] and "pptx" in m["uri"])
    choice = Decisions("ana", "2026-12-02T00:00:00+00:00", (Decision(cluster["id"], "canonical", deck_image),), "")

    plan = make_plan(catalog, host, Config(), "quarantine", {}, Selection(), decisions=choice, by="ana")

    assert plan.steps == []  # the library files are not quarantined in favour of a picture inside a deck
    [left_out] = [e for e in plan.body["excluded"] if e["cluster"] == cluster["id"] and "uri" not in e]
    assert left_out["reason"].startswith("its canonical is referenced in ") and "q3%20deck.pptx" in left_out["reason"]
