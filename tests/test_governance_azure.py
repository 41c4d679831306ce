"""The governance workflow on Azure Blob (Azurite): plan, approve, apply and undo leave the container as it was."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import pytest
from azure.storage.blob import BlobServiceClient, ContainerClient

from dam_dedupe.catalog import open_catalog
from dam_dedupe.config import parse_config
from dam_dedupe.governance import Selection, apply_plan, approve, make_plan, undo_run
from dam_dedupe.host import Host
from dam_dedupe.records import SourceSpec
from dam_dedupe.scan import run_scan
from tests.governance_library import QUARANTINE, build_library
from tests.servers.azurite import ACCOUNT, Azurite, azurite  # noqa: F401


def container_state(container: ContainerClient) -> dict[str, tuple[str, dict[str, str], dict[str, str]]]:
    """Every blob: SHA-256 of its bytes, its index tags and its user metadata."""
    state = {}
    for blob in container.list_blobs(include=["metadata", "tags"]):
        data = container.download_blob(blob.name).readall()
        state[blob.name] = (hashlib.sha256(data).hexdigest(), dict(blob.tags or {}), dict(blob.metadata or {}))
    return state


@pytest.fixture
def container(azurite: Azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[ContainerClient]:
    """A fresh container; the adapter reads the emulator's connection string from the environment."""
    for name in ("AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY", "AZURE_CLIENT_SECRET"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azurite.connection_string)
    client = BlobServiceClient.from_connection_string(azurite.connection_string).create_container(
        f"gov{uuid.uuid4().hex[:16]}"
    )
    yield client
    client.delete_container()


@pytest.mark.parametrize(("action", "params"), [("tag", {}), ("quarantine", {"merge": "yes"}), ("redirect", {})])
def test_round_trip_on_azure_leaves_every_blob_as_it_was(
    container: ContainerClient, tmp_path: Path, action: str, params: dict[str, str]
) -> None:
    build_library(tmp_path / "lib")
    for path in sorted((tmp_path / "lib").rglob("*")):
        if path.is_file():
            container.upload_blob(f"lib/{path.relative_to(tmp_path / 'lib').as_posix()}", path.read_bytes())
    container.get_blob_client("lib/Marketing 2026/IMG_4000.JPG").set_blob_tags({"photographer": "Chan Tai Man"})
    root = f"azure://{ACCOUNT}/{container.container_name}/lib"
    config = parse_config({"matching": {"preset": "exact"}, "policy": {"authoritative": [f"{root}/品牌"]}})
    catalog, host = open_catalog(tmp_path / "catalog.sqlite"), Host()
    run_scan([SourceSpec(root)], catalog, host, config, workers=1)
    start = container_state(container)

    plan = make_plan(catalog, host, config, action, params, Selection(), by="ana")
    approve(catalog, config, plan, by="lee", role="legal")
    report = apply_plan(catalog, host, config, plan, by="ana", out_dir=tmp_path)

    assert report.count("applied") == len(plan.steps) and len(plan.steps) >= 6, [r.reason for r in report.results]
    after = container_state(container)
    duplicates = [s.target.key for s in plan.steps if s.role == "duplicate"]  # Azure keys are whole blob names
    if action == "tag":
        assert all(after[key][0] == start[key][0] for key in duplicates)
        assert all(after[key][1:] != start[key][1:] for key in duplicates)
    elif action == "quarantine":
        assert not any(key in after for key in duplicates)
        assert sum(f"{QUARANTINE}/c-" in k for k in after) == len(duplicates)
        assert after["lib/品牌/master_0.jpg"][1]["photographer"] == "Chan Tai Man"  # merged before removal
    else:
        for key in duplicates:  # a stub naming the canonical where the copy was
            assert after[key][0] != start[key][0]
            assert f"{root}/品牌/" in unquote(str(after[key][1:]))

    undone = undo_run(catalog, host, config, report.run_id, by="ana")

    assert undone.count("undone") == len(plan.steps), [r.reason for r in undone.results]
    assert container_state(container) == start
    catalog.close()
