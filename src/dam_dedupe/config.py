"""``dam-dedupe.toml``: named sources, the canonical policy, matching and options.

Every section is optional; with no file at all the tool scans what it is given with
the defaults below. An example with every key is in ``docs/configuration.md``.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dam_dedupe.errors import ConfigError
from dam_dedupe.matcher import PRESETS, MatchSettings
from dam_dedupe.records import SourceSpec

DEFAULT_CONFIG = "dam-dedupe.toml"
DEFAULT_POLICY = ("authoritative", "resolution", "metadata", "oldest", "shortest_path")


@dataclass(frozen=True)
class Config:
    """The loaded configuration.

    Attributes:
        sources: named sources from ``[sources.NAME]`` tables.
        policy: canonical rules in order, from ``[policy] canonical``.
        authoritative: URI prefixes whose copies win the ``authoritative`` rule; sources marked
            ``authoritative = true`` add their URI.
        matching: match settings from ``[matching]`` (a ``preset`` and explicit values).
        workers: fingerprinting processes, from ``[scan] workers`` (default: the core count).
        sections: the whole parsed file, for sections owned by plugins and later stages.
        path: where it was read from, or ``None``.
    """

    sources: dict[str, SourceSpec] = field(default_factory=dict)
    policy: tuple[str, ...] = DEFAULT_POLICY
    authoritative: tuple[str, ...] = ()
    matching: MatchSettings = PRESETS["balanced"]
    workers: int = os.cpu_count() or 1
    sections: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def source(self, name_or_uri: str) -> SourceSpec:
        """Resolve a command-line source: a configured name, a URI, or a plain path.

        A bare word that is neither a configured name nor an existing folder is a mistyped
        name, refused with the nearest configured one, not scanned as an empty folder.
        """
        if name_or_uri in self.sources:
            return self.sources[name_or_uri]
        bare_word = "://" not in name_or_uri and os.sep not in name_or_uri and "/" not in name_or_uri
        if bare_word and not Path(name_or_uri).exists():
            close = difflib.get_close_matches(name_or_uri, list(self.sources), n=1)
            known = f"did you mean {close[0]}? " if close else ""
            where = f"{self.path}" if self.path else "dam-dedupe.toml (none was read)"
            raise ConfigError(
                f"no source named {name_or_uri!r} in {where} and no folder of that name here; "
                f"{known}configured sources: {sorted(self.sources) or 'none'}"
            )
        uri = normalise_uri(name_or_uri)
        for spec in self.sources.values():
            if spec.uri == uri:
                return spec
        return SourceSpec(uri=uri)

    def source_by_uri(self, uri: str) -> SourceSpec:
        """The configured source with this URI, else a bare one."""
        return next((spec for spec in self.sources.values() if spec.uri == uri), SourceSpec(uri=uri))


def normalise_uri(value: str) -> str:
    """A URI as given, or the ``file://`` URI of a plain path (resolved)."""
    if "://" in value:
        return value.rstrip("/") if not value.endswith(":///") else value
    return Path(value).expanduser().resolve().as_uri()


def load_config(path: str | Path | None = None) -> Config:
    """Read ``dam-dedupe.toml``.

    ``path`` ``None`` reads ``dam-dedupe.toml`` in the working directory if it exists and
    otherwise returns the defaults; a named file that does not exist is an error.
    """
    if path is None:
        if not Path(DEFAULT_CONFIG).exists():
            return Config()
        path = DEFAULT_CONFIG
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"configuration file {path} does not exist") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc
    return parse_config(data, path)


def parse_config(data: dict[str, Any], path: Path | None = None) -> Config:
    """Build a :class:`Config` from parsed TOML, after checking it against the schema (:mod:`config_schema`)."""
    if data:  # an empty file has nothing to check: the schema's models (pydantic) take 0.1 s to import
        from dam_dedupe import config_schema

        config_schema.validate(data, path)
    sources: dict[str, SourceSpec] = {}
    authoritative: list[str] = []
    for name, table in data.get("sources", {}).items():
        if not isinstance(table, dict) or "uri" not in table:
            raise ConfigError(f"[sources.{name}] needs a 'uri'")
        uri = normalise_uri(str(table["uri"]))
        options = tuple(sorted((k, v) for k, v in table.items() if k != "uri"))
        sources[name] = SourceSpec(uri=uri, name=name, options=options)
        if table.get("authoritative"):
            authoritative.append(uri)
    policy_table = data.get("policy", {})
    policy = tuple(policy_table.get("canonical", DEFAULT_POLICY))
    unknown = [rule for rule in policy if rule not in DEFAULT_POLICY]
    if unknown:
        raise ConfigError(f"[policy] canonical has unknown rules {unknown}; known: {list(DEFAULT_POLICY)}")
    authoritative += [normalise_uri(str(uri)) for uri in policy_table.get("authoritative", [])]
    matching = matching_settings(data.get("matching", {}))
    workers = int(data.get("scan", {}).get("workers", os.cpu_count() or 1))
    return Config(sources, policy, tuple(authoritative), matching, workers, data, path)


def matching_settings(table: dict[str, Any]) -> MatchSettings:
    """Match settings from a ``[matching]`` table: a preset, then explicit values over it."""
    preset = str(table.get("preset", "balanced"))
    if preset not in PRESETS:
        raise ConfigError(f"unknown matching preset '{preset}'; known: {sorted(PRESETS)}")
    overrides = {k: v for k, v in table.items() if k != "preset"}
    try:
        return PRESETS[preset].with_overrides(**overrides)
    except TypeError as exc:
        raise ConfigError(f"[matching] has an unknown setting: {exc}") from exc
