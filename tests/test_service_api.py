"""The catalog over HTTP with the package's Python client: clusters and assets by page, plans without sign-off."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dam_dedupe.service.client import Client, ServiceError
from tests.conftest import picture, run_cli, save
from tests.service_library import make_token, serving


def test_the_client_pages_clusters_reads_assets_and_makes_plans_that_still_need_sign_off(
    tmp_path: Path, catalog_location: str
) -> None:
    library = tmp_path / "lib"
    for seed in (11, 12, 13):
        save(picture(seed, (480, 360)), library / f"{seed}.jpg")
        save(picture(seed, (480, 360)).resize((240, 180)), library / "copies" / f"{seed}-small.jpg")
    catalog = catalog_location
    run_cli("--catalog", catalog, "scan", str(library), "--workers", "1", cwd=tmp_path)
    reader = make_token(tmp_path, catalog, "reader", "read", "check")
    planner = make_token(tmp_path, catalog, "planner", "plan")
    with serving(tmp_path, catalog) as service:
        client = Client(service.url, reader)
        clusters = list(client.clusters(page_size=2))  # three clusters over two pages
        assert len(clusters) == 3 and len({c["id"] for c in clusters}) == 3
        assert all(c["size"] == 2 and c["canonical_uri"] for c in clusters)
        one = client.cluster(clusters[0]["id"])
        assert {m["match"] for m in one["members"]} == {"exact", "near"} and "evidence" in one["members"][1]
        with pytest.raises(ServiceError) as missing:
            client.cluster("c-nope")
        assert missing.value.status == 404

        under = client.assets(library.as_uri() + "/copies/")
        assert sorted(a["name"] for a in under) == ["11-small.jpg", "12-small.jpg", "13-small.jpg"]
        assert all(a["cluster_id"] in {c["id"] for c in clusters} for a in under)
        exact = client.assets((library / "11.jpg").as_uri())
        assert [a["sha256"] for a in exact] == [client.check((library / "11.jpg").read_bytes()).sha256]

        with pytest.raises(ServiceError) as unscoped:
            client.make_plan("tag")
        assert unscoped.value.status == 403
        plans = Client(service.url, planner)
        made = plans.make_plan("tag", match=["near"])
        cli = run_cli(
            "--catalog",
            catalog,
            "plan",
            "--action",
            "tag",
            "--match",
            "near",
            "--json",
            "-o",
            str(tmp_path / "plan.json"),
            "--by",
            "someone",
            cwd=tmp_path,
        )
        assert made["steps"] == json.loads(cli.stdout)["steps"] > 0  # the plan the CLI makes
        assert made["plan"]["created_by"] == "token:planner"
        held = plans.plan(made["plan_id"])
        assert held["id"] == made["plan_id"] and held["action"] == "tag" and held["signoffs"] == []
        with pytest.raises(ServiceError) as unknown:
            plans.make_plan("shred")
        assert unknown.value.status == 422 and "shred" in unknown.value.detail
        # approving and applying stay with the governance workflow: the service offers no route for them
        assert service.post(f"/v1/plans/{made['plan_id']}/apply", planner).status_code in (404, 405)


def test_service_and_webhook_settings_are_checked_like_every_section(tmp_path: Path) -> None:
    config = tmp_path / "dam-dedupe.toml"
    config.write_text("[service]\nmax_body_byte = 10\n", encoding="utf-8")
    result = run_cli("--config", str(config), "plugins", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "[service] max_body_byte" in result.stderr and "max_body_bytes" in result.stderr
    config.write_text('[webhooks.dam]\nurl = "ftp://x"\nsecret_env = "S"\n', encoding="utf-8")
    result = run_cli("--config", str(config), "plugins", cwd=tmp_path, check=False)
    assert result.returncode == 2 and "[webhooks.dam] url" in result.stderr


def test_serve_without_the_service_extra_names_the_install_command(tmp_path: Path) -> None:
    hidden = tmp_path / "no-fastapi"
    (hidden / "fastapi").mkdir(parents=True)
    (hidden / "fastapi" / "__init__.py").write_text("raise ImportError('planted: not installed')\n", encoding="utf-8")
    save(picture(14), tmp_path / "lib" / "a.jpg")
    run_cli("--catalog", str(tmp_path / "c.sqlite"), "scan", str(tmp_path / "lib"), "--workers", "1", cwd=tmp_path)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(hidden), os.environ.get("PYTHONPATH", "")])}
    result = run_cli("--catalog", str(tmp_path / "c.sqlite"), "serve", cwd=tmp_path, env=env, check=False)
    assert result.returncode == 1
    assert "pip install 'dam-dedupe[service]'" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
