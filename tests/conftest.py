"""Fixtures shared by the whole suite: a third-party plugin installed for real, images, the CLI."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

from tests.servers.postgres import PostgresServer, postgres_bin

PLUGIN_SOURCE = Path(__file__).parent / "plugin_pkg"


def pip_install(package: Path, target: Path) -> Path:
    """Install a plugin package into ``target`` as pip does for a user (metadata and entry points included)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(package),
        ],
        check=True,
    )
    return target


@pytest.fixture(scope="session")
def test_plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the test plugin package as pip installs it (with its entry points)."""
    return pip_install(PLUGIN_SOURCE, tmp_path_factory.mktemp("plugin-site"))


@pytest.fixture
def with_test_plugin(test_plugin_site: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Make the installed test plugin visible to this process, its workers and subprocesses.

    Yields the folder where the plugin writes its read and event logs.
    """
    monkeypatch.syspath_prepend(str(test_plugin_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(test_plugin_site), os.environ.get("PYTHONPATH", "")]))
    logs = tmp_path / "plugin-logs"
    logs.mkdir()
    monkeypatch.setenv("DAM_TEST_READ_LOG", str(logs / "reads.log"))
    monkeypatch.setenv("DAM_TEST_EVENT_LOG", str(logs / "events.log"))
    (logs / "reads.log").touch()
    (logs / "events.log").touch()
    importlib.invalidate_caches()
    yield logs
    sys.modules.pop("dam_dedupe_testplugin", None)


def picture(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A distinct picture per seed: stripes and a disc placed by the seed."""
    img = Image.new("RGB", size, ((seed * 53) % 256, (seed * 97) % 256, (seed * 29) % 256))
    draw = ImageDraw.Draw(img)
    for i in range(0, size[0], 20 + seed % 7):
        draw.line([(i, 0), (i + seed % 50, size[1])], fill=((seed * 11 + i) % 256, 40, 200), width=4)
    r = 30 + seed % 40
    cx, cy = (seed * 37) % size[0], (seed * 61) % size[1]
    draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(250, 250 - seed % 200, 10))
    return img


def save(img: Image.Image, path: Path, fmt: str = "JPEG", **options: object) -> Path:
    """Save an image, creating folders; return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, fmt, **options)
    return path


def run_cli(
    *args: str, cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``dam-dedupe ARGS`` as a user would, in a subprocess (one that hangs fails the test after 10 minutes)."""
    result = subprocess.run(
        [sys.executable, "-m", "dam_dedupe", *args], cwd=cwd, capture_output=True, text=True, env=env, timeout=600
    )
    if check and result.returncode != 0:
        raise AssertionError(f"dam-dedupe {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (Debian's package; ``.ci/run`` installs it)."""
    folder = postgres_bin()
    if folder is None:
        pytest.fail("PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    server = PostgresServer(folder)
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's catalog lives, once per back end: a SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "c.sqlite")
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.new_database()


@pytest.fixture(autouse=True)
def state_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test's own ``$XDG_STATE_HOME``: where a PostgreSQL catalog's audit anchor is kept by default."""
    folder = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(folder))
    return folder
