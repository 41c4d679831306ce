"""Camera RAW, PSD, AVIF, multi-page and animated files: decoded, grouped with their originals, counted."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import Config
from dam_dedupe.errors import AssetError
from dam_dedupe.fingerprint import fingerprint_stream
from dam_dedupe.governance import Selection, make_plan
from dam_dedupe.host import Host
from dam_dedupe.records import Fingerprint, SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.conftest import pip_install, run_cli
from tests.formats_library import encoded, library_image, make_dng, make_psd, other_image


def fingerprint_file(path: Path) -> Fingerprint:
    with path.open("rb") as stream:
        return fingerprint_stream(stream, name=path.name)


def members_of(report: dict, name: str) -> dict[str, dict]:
    """The members (by file name) of the cluster holding the file called ``name``."""
    cluster = next(c for c in report["clusters"] if any(m["name"] == name for m in c["members"]))
    return {m["name"]: m for m in cluster["members"]}


def test_a_raw_file_and_its_jpeg_export_are_derivative_reported_together_and_never_planned_by_default(
    tmp_path: Path,
) -> None:
    root = tmp_path / "shoot"
    lib = library_image()
    make_dng(root / "IMG_0001.dng", lib)
    lib.save(root / "IMG_0001.jpg", quality=88)  # the photographer's export
    (root / "web").mkdir()
    lib.resize((256, 256)).save(root / "web" / "IMG_0001-small.jpg", quality=80)  # a copy of the export
    catalog = open_catalog(tmp_path / "c.sqlite")
    host = Host()

    summary = run_scan([SourceSpec(root.as_uri())], catalog, host, Config(), workers=2)

    assert summary.errors == 0
    members = members_of(build_report(catalog), "IMG_0001.dng")
    assert set(members) == {"IMG_0001.dng", "IMG_0001.jpg", "IMG_0001-small.jpg"}
    assert members["IMG_0001.dng"]["format"] == "RAW"
    assert (members["IMG_0001.dng"]["width"], members["IMG_0001.dng"]["height"]) == (512, 512)
    assert not members["IMG_0001.dng"]["canonical"] or members["IMG_0001.jpg"]["match"] == "derivative"
    raw_or_export = [m for m in members.values() if m["match"] == "derivative"]
    assert raw_or_export and all(
        m["evidence"]["relation"][0] == "camera RAW and an export of it" for m in raw_or_export
    )

    plan = make_plan(catalog, host, Config(), "quarantine", {}, Selection(), by="ana")

    targets = {Path(step.target.key).name for step in plan.steps}
    assert "IMG_0001.dng" not in targets and not any(m["name"] in targets for m in raw_or_export)
    reasons = [e["reason"] for e in plan.body["excluded"] if "uri" in e]
    assert any("derivative" in reason for reason in reasons)


def test_a_layered_psd_is_read_from_its_composite_with_its_layer_count_and_grouped_with_the_original(
    tmp_path: Path,
) -> None:
    root = tmp_path / "design"
    lib = library_image()
    make_psd(root / "brand.psd", lib)
    lib.save(root / "brand.jpg", quality=90)

    fp = fingerprint_file(root / "brand.psd")
    assert (fp.format, fp.width, fp.height, fp.frames) == ("PSD", 512, 512, 2)

    catalog = open_catalog(tmp_path / "c.sqlite")
    run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=1)
    members = members_of(build_report(catalog), "brand.psd")
    assert set(members) == {"brand.psd", "brand.jpg"}
    assert members["brand.psd"]["match"] in ("near", "exact") or members["brand.jpg"]["match"] == "near"


def test_an_avif_copy_is_grouped_with_the_original(tmp_path: Path) -> None:
    root = tmp_path / "web"
    root.mkdir()
    lib = library_image()
    lib.save(root / "hero.jpg", quality=90)
    (root / "hero.avif").write_bytes(encoded(lib, "AVIF", (384, 384), quality=60))
    other_image(0).save(root / "unrelated.jpg")
    catalog = open_catalog(tmp_path / "c.sqlite")

    run_scan([SourceSpec(root.as_uri())], catalog, Host(), Config(), workers=1)

    members = members_of(build_report(catalog), "hero.avif")
    assert set(members) == {"hero.jpg", "hero.avif"}
    assert members["hero.avif"]["format"] == "AVIF"


def test_multi_page_tiff_and_animated_gif_and_webp_read_their_first_frame_and_record_the_count(
    tmp_path: Path,
) -> None:
    lib = library_image().resize((300, 300))
    pages = [lib, other_image(0).resize((300, 300)), other_image(1).resize((300, 300))]
    lib.save(tmp_path / "original.png")
    pages[0].save(tmp_path / "scan.tiff", save_all=True, append_images=pages[1:], compression="tiff_lzw")
    pages[0].save(tmp_path / "anim.gif", save_all=True, append_images=pages[1:], duration=100, loop=0)
    pages[0].save(tmp_path / "anim.webp", save_all=True, append_images=pages[1:2], duration=100, quality=90)

    counts = {name: fingerprint_file(tmp_path / name).frames for name in ("scan.tiff", "anim.gif", "anim.webp")}

    assert counts == {"scan.tiff": 3, "anim.gif": 3, "anim.webp": 2}
    catalog = open_catalog(tmp_path / "c.sqlite")
    run_scan([SourceSpec(tmp_path.as_uri())], catalog, Host(), Config(), workers=1)
    assert set(members_of(build_report(catalog), "original.png")) == {
        "original.png",
        "scan.tiff",
        "anim.gif",
        "anim.webp",
    }


def test_a_truncated_raw_file_is_an_error_with_a_reason(tmp_path: Path) -> None:
    good = make_dng(tmp_path / "good.dng", library_image())
    (tmp_path / "cut.nef").write_bytes(good.read_bytes()[:3000])

    with pytest.raises(AssetError, match="camera RAW"):
        fingerprint_file(tmp_path / "cut.nef")

    catalog = open_catalog(tmp_path / "c.sqlite")
    summary = run_scan([SourceSpec(tmp_path.as_uri())], catalog, Host(), Config(), workers=1)
    assert summary.errors == 1 and summary.fingerprinted == 1
    errors = {Path(e["path"]).name: e["reason"] for e in build_report(catalog)["errors"]}
    assert set(errors) == {"cut.nef"} and "corrupt or unsupported camera RAW" in errors["cut.nef"]


def test_a_plain_tiff_is_not_taken_for_a_raw_file() -> None:
    out = io.BytesIO()
    library_image().save(out, "TIFF")
    out.seek(0)

    assert fingerprint_stream(out, name="scan.tif").format == "TIFF"


def dam_dedupe(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dam_dedupe", *args], capture_output=True, text=True, env=env, check=True
    )
    return done.stdout


def test_plugins_lists_every_decoder_and_document_extractor_with_its_extra() -> None:
    out = dam_dedupe("plugins")

    decoders = out.split("decoders:\n", 1)[1].split("documents:\n", 1)
    assert "camera-raw:" in decoders[0] and "photoshop:" in decoders[0] and "avif:" in decoders[0]
    assert "[ready]" in decoders[0]
    assert "office:" in decoders[1] and "pdf:" in decoders[1]


def test_a_missing_extra_is_named_with_its_install_command(tmp_path: Path) -> None:
    # planted from outside the product: packages that cannot be imported, as if never installed
    for module in ("pypdf", "rawpy", "psd_tools"):
        (tmp_path / module).mkdir()
        (tmp_path / module / "__init__.py").write_text(f"raise ImportError('no {module} here')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}

    out = dam_dedupe("plugins", env=env).split("decoders:\n", 1)[1]

    lines = {line.split(":", 1)[0].strip(): line for line in out.splitlines() if line.startswith("  ")}
    assert lines["pdf"].endswith("[needs: pip install 'dam-dedupe[documents]']")
    assert lines["camera-raw"].endswith("[needs: pip install 'dam-dedupe[raw]']")
    assert lines["photoshop"].endswith("[needs: pip install 'dam-dedupe[psd]']")
    assert lines["office"].endswith("[ready]")  # the standard library reads Office documents


def test_a_scan_without_the_extras_names_the_install_command_for_each_file_and_reads_it_once_installed(
    tmp_path: Path,
) -> None:
    blocked = tmp_path / "blocked"
    for module in ("pypdf", "rawpy"):
        (blocked / module).mkdir(parents=True)
        (blocked / module / "__init__.py").write_text(f"raise ImportError('no {module} here')\n")
    root = tmp_path / "archive"
    make_dng(root / "IMG_0002.dng", library_image())
    other_image(0).save(root / "report.pdf")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked), os.environ.get("PYTHONPATH", "")])}

    scanned = run_cli("scan", str(root), "--workers", "2", cwd=tmp_path, env=env, check=False)
    run_cli("report", "--format", "json", "-o", "r.json", cwd=tmp_path)

    assert scanned.returncode == 0, scanned.stderr
    errors = {Path(e["path"]).name: e["reason"] for e in json.loads((tmp_path / "r.json").read_text())["errors"]}
    assert "pip install 'dam-dedupe[raw]'" in errors["IMG_0002.dng"]
    assert "pip install 'dam-dedupe[documents]'" in errors["report.pdf"]

    run_cli("scan", str(root), "--workers", "1", cwd=tmp_path)  # the extras are installed for this one
    run_cli("report", "--format", "json", "-o", "r.json", cwd=tmp_path)
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["errors"] == [] and report["summary"]["images"] == 2


def test_a_vendors_decoder_and_extractor_installed_by_entry_point_are_used_by_the_scan(tmp_path: Path) -> None:
    site = pip_install(Path(__file__).parent / "formats_plugin_pkg", tmp_path / "site")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    root = tmp_path / "archive"
    root.mkdir()
    lib = library_image().resize((320, 320))
    lib.save(root / "cover.jpg", quality=90)
    (root / "cover.damt").write_bytes(b"DAMT" + (320).to_bytes(2, "big") * 2 + lib.tobytes())
    with zipfile.ZipFile(root / "issue 1.cbz", "w") as book:
        book.writestr("page-01.png", encoded(library_image(), "PNG", (300, 300)))
        book.writestr("page-02.jpg", encoded(other_image(0), "JPEG"))

    listed = run_cli("plugins", cwd=tmp_path, env=env).stdout
    run_cli("scan", str(root), "--workers", "2", cwd=tmp_path, env=env)
    run_cli("report", "--format", "json", "-o", "r.json", cwd=tmp_path, env=env)

    assert "damt: test: the vendor's DAMT raw RGB pictures  [ready]" in listed
    assert "cbz: test: comic-book archives (.cbz), one asset per page  [ready]" in listed
    report = json.loads((tmp_path / "r.json").read_text())
    members = members_of(report, "cover.jpg")
    assert set(members) == {"cover.jpg", "cover.damt", "issue 1.cbz#page-01.png"}
    assert members["cover.damt"]["format"] == "DAMT"
    assert members["issue 1.cbz#page-01.png"]["embedded_in"].endswith("/issue%201.cbz")


def test_a_psd_declaring_a_huge_canvas_is_refused_before_its_pixels_are_decoded(tmp_path: Path) -> None:
    data = bytearray(make_psd(tmp_path / "small.psd", library_image().resize((64, 64))).read_bytes())
    data[14:22] = (60_000).to_bytes(4, "big") * 2  # the header's height and width: 3.6 billion pixels
    (tmp_path / "huge.psd").write_bytes(bytes(data))

    with pytest.raises(AssetError, match="decompression bomb"):
        fingerprint_file(tmp_path / "huge.psd")
