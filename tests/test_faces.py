"""Face detection as the scan runs it: on the scan's own decode, once per content, never stopping the scan."""

from __future__ import annotations

import io
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from skimage import data

from dam_dedupe import hookimpl
from dam_dedupe.analysis import PERSONAL_DATA, Analysis
from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import parse_config
from dam_dedupe.fingerprint import fingerprint_stream
from dam_dedupe.host import Host
from dam_dedupe.plugins import faces
from dam_dedupe.records import AssetRecord, SourceSpec
from dam_dedupe.report import build_report
from dam_dedupe.scan import run_scan
from tests.conftest import run_cli, save

ASSET = AssetRecord(source="file:///lib", key="a.jpg", uri="file:///lib/a.jpg", size=1, name="a.jpg")
EXACT = parse_config({"matching": {"preset": "exact"}})


def as_scanned(img: Image.Image, fmt: str = "JPEG") -> Image.Image:
    """The picture an analyser is given for ``img`` saved as ``fmt``: the fingerprint's own decode."""
    out = io.BytesIO()
    img.save(out, fmt)
    seen: list[Image.Image] = []
    fingerprint_stream(io.BytesIO(out.getvalue()), lambda image, _sha256: seen.append(image))
    return seen[0]


def flags(img: Image.Image) -> frozenset[str]:
    """What the faces analyser flags on ``img`` as the scan sees it."""
    found = faces.dam_dedupe_analyse_asset(ASSET, as_scanned(img), {})
    assert isinstance(found, Analysis)
    return found.flags


def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.mark.parametrize(
    "variant",
    [
        lambda img: img,
        ImageOps.mirror,
        lambda img: img.resize((256, 256), Image.Resampling.LANCZOS),
        lambda img: img.resize((1024, 1024), Image.Resampling.BICUBIC),
        lambda img: ImageEnhance.Brightness(img).enhance(0.6),
        lambda img: img.convert("L"),
    ],
    ids=["as-is", "mirrored", "half", "double", "darker", "grey"],
)
def test_the_astronaut_is_found_however_the_copy_was_made(variant) -> None:  # type: ignore[no-untyped-def]
    assert PERSONAL_DATA in flags(variant(astronaut()))


def test_a_portrait_in_a_larger_photograph_is_found() -> None:
    scene = Image.fromarray(data.grass()).convert("RGB").resize((1600, 1200))
    scene.paste(astronaut().resize((1200, 1200)), (300, 0))  # the face about a fifth of the short side
    assert PERSONAL_DATA in flags(scene)


def test_a_face_half_hidden_behind_a_camera_is_found() -> None:
    # scikit-image's cameraman: his face partly behind the camera, which the Haar cascades never found
    assert PERSONAL_DATA in flags(Image.fromarray(data.camera()))
    assert PERSONAL_DATA in flags(ImageOps.mirror(Image.fromarray(data.camera())))


def test_min_score_and_min_face_say_which_detections_count() -> None:
    seen = as_scanned(astronaut())
    assert faces.count_faces(seen) == 1  # one astronaut, one face: overlapping detections are merged
    assert faces.count_faces(seen, min_score=0.999) == 0  # stricter than the model is sure
    assert faces.count_faces(seen, min_face=0.5) == 0  # her face is about a fifth of the short side
    found = faces.dam_dedupe_analyse_asset(ASSET, seen, {"faces": {"min_score": 0.999}})
    assert found == Analysis(facts={"faces": "0"})


def logo() -> Image.Image:
    img = Image.new("RGB", (1200, 800), (30, 80, 170))
    draw = ImageDraw.Draw(img)
    draw.ellipse((100, 100, 500, 500), fill=(250, 200, 60))
    draw.rectangle((80, 560, 1120, 700), fill=(250, 250, 250))
    draw.text((110, 590), "example.com", fill=(30, 80, 170))
    return img


@pytest.mark.parametrize("name", ["brick", "grass", "gravel", "text", "coins", "coffee", "chelsea", "moon", "logo"])
def test_no_face_on_textures_logos_and_photographs_without_people(name: str) -> None:
    img = logo() if name == "logo" else Image.fromarray(getattr(data, name)())
    assert flags(img) == frozenset()
    assert flags(ImageOps.mirror(img)) == frozenset()


class CountingAnalyser:
    """A real analyser that numbers the images it is called on."""

    def __init__(self) -> None:
        self.calls = itertools.count(1)

    @hookimpl
    def dam_dedupe_analyse_asset(self, image: Image.Image) -> Analysis:
        return Analysis(facts={"call": str(next(self.calls)), "side": str(min(image.size))})


def test_byte_identical_copies_are_analysed_once_and_share_the_result(tmp_path: Path) -> None:
    root = tmp_path / "library"
    portrait = save(astronaut(), root / "people" / "astronaut.png", "PNG")
    for n in range(3):
        copy = root / f"dept-{n}" / f"copy {n}.png"
        copy.parent.mkdir()
        copy.write_bytes(portrait.read_bytes())
    save(Image.fromarray(data.coffee()), root / "coffee.jpg")
    save(ImageOps.mirror(astronaut()), root / "people" / "mirrored.jpg")
    host = Host()
    counting = CountingAnalyser()
    host.pm.register(counting, name="counting")
    catalog = open_catalog(tmp_path / "c.sqlite")

    run_scan([SourceSpec(root.as_uri())], catalog, host, EXACT, workers=1)

    by_name = {a.record.name: found for a in catalog.images() if (found := catalog.analyses().get(a.id))}
    assert len(by_name) == 6
    copies = ["astronaut.png", "copy 0.png", "copy 1.png", "copy 2.png"]
    assert len({by_name[n]["counting"].facts["call"] for n in copies}) == 1  # one call's result, shared
    assert all(PERSONAL_DATA in by_name[n]["faces"].flags for n in [*copies, "mirrored.jpg"])
    assert PERSONAL_DATA not in by_name["coffee.jpg"]["faces"].flags
    assert next(counting.calls) == 4  # three distinct contents, each analysed once


def test_with_face_detection_on_a_corrupt_image_is_recorded_against_it_and_the_scan_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "library"
    portrait = save(astronaut(), root / "astronaut.jpg")
    (root / "truncated.jpg").write_bytes(portrait.read_bytes()[: portrait.stat().st_size // 3])
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    save(Image.fromarray(data.brick()), root / "brick.png", "PNG")
    save(Image.fromarray(np.asarray(astronaut())[0:260, 100:360]), root / "face only.jpg")

    run_cli("--catalog", str(tmp_path / "c.sqlite"), "scan", str(root), "--workers", "2", cwd=tmp_path)

    catalog = open_catalog(tmp_path / "c.sqlite")
    report = build_report(catalog)
    reasons = {Path(e["path"]).name: e["reason"] for e in report["errors"]}
    assert set(reasons) == {"truncated.jpg", "corrupt.png"}
    assert "truncated" in reasons["truncated.jpg"]
    found = {a.record.name: catalog.analyses().get(a.id, {}) for a in catalog.images()}
    assert {n for n, f in found.items() if PERSONAL_DATA in f.get("faces", Analysis()).flags} == {
        "astronaut.jpg",
        "face only.jpg",
    }
    assert found["brick.png"]["faces"].facts["faces"] == "0"
