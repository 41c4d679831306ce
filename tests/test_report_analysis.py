"""Analyser plugins: each runs on its own, a failing one is recorded against the asset and plugin."""

from __future__ import annotations

import io

import pluggy
from PIL import Image
from skimage import data

from dam_dedupe import hookimpl, hookspecs
from dam_dedupe.analysis import LICENSED, PERSONAL_DATA, run_analysers
from dam_dedupe.plugins import faces, rights
from dam_dedupe.records import AssetRecord
from tests.report_library import XMP_RIGHTS, iim, jpeg

ASSET = AssetRecord(source="file:///lib", key="a.jpg", uri="file:///lib/a.jpg", size=1, name="a.jpg")


class Broken:
    """An analyser with a bug."""

    @hookimpl
    def dam_dedupe_analyse_asset(self, asset: AssetRecord) -> None:
        raise ValueError(f"cannot handle {asset.name}")


def manager(*plugins: tuple[str, object]) -> pluggy.PluginManager:
    """A plugin manager with the hook specs and these named plugins."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return pm


def decoded(content: bytes) -> Image.Image:
    """An image as the scan hands it to analysers: loaded, then copied (as orientation does)."""
    image = Image.open(io.BytesIO(content))
    image.load()
    return image.copy()


def test_a_failing_analyser_is_recorded_and_the_others_still_run() -> None:
    pm = manager(("broken", Broken()), ("rights", rights), ("faces", faces))
    image = decoded(jpeg(data.astronaut(), iim(116, "© Agency"), XMP_RIGHTS))
    found = run_analysers(pm, ASSET, image, {})
    assert found["broken"].error == "ValueError: cannot handle a.jpg"
    assert LICENSED in found["rights"].flags and found["rights"].facts["copyright_notice"] == "© Agency"
    assert PERSONAL_DATA in found["faces"].flags


def test_disabled_analysers_do_not_run() -> None:
    pm = manager(("broken", Broken()), ("faces", faces))
    found = run_analysers(pm, ASSET, decoded(jpeg(data.coffee())), {"disabled": ["broken"]})
    assert set(found) == {"faces"}
    assert found["faces"].flags == frozenset() and found["faces"].facts == {"faces": "0"}


def test_xmp_with_entity_declarations_is_not_expanded() -> None:
    bomb = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert rights.read_xmp(decoded(jpeg(data.coffee(), xmp=bomb))) == {}


def test_rights_without_licence_terms_from_the_organisation_itself_are_not_licensed() -> None:
    assert not rights.is_licensed({"copyright_notice": "© 2026 Example Ltd"}, ["example ltd"])
    assert rights.is_licensed({"copyright_notice": "© 2026 Example Ltd"}, [])
    assert rights.is_licensed({"creator": "Staff", "usage_terms": "internal only"}, ["Example Ltd"])
