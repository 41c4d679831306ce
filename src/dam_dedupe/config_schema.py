"""The schema of ``dam-dedupe.toml``, checked as a whole before any work starts.

One typo (``[governence]``) must not silently drop the sign-off policy, and a wrong type
(``workers = "two"``) must not surface as a traceback half way through a scan. pydantic
checks every key against these models; :func:`validate` turns its findings into one
message naming the file, the key and, for an unknown name, the nearest known one.

Source tables hold adapter options besides the keys listed here (``follow_symlinks``,
``etag_is_md5``, …), so they accept other keys; ``[analysis.NAME]`` tables belong to
their analysers.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from dam_dedupe.errors import ConfigError


class _Table(BaseModel):
    """A table whose keys are all known: anything else is a typo."""

    model_config = ConfigDict(extra="forbid", strict=True)


class CatalogTable(_Table):
    path: str | None = None


class ScanTable(_Table):
    workers: int | None = Field(default=None, ge=1)
    exclude: list[str] = []
    executor: Literal["local", "dask"] = "local"
    scheduler: str | None = None
    index_shards: int = Field(default=1, ge=1)
    no_worker_wait: int | float = Field(default=120, gt=0)
    verify_here: StrictBool = False
    cluster: str | None = None


class ClusterTable(_Table):
    """A named Dask cluster (``[clusters.NAME]``), for ``scan --cluster NAME`` and ``match --cluster NAME``."""

    scheduler: str = Field(pattern=r"^(tcp|tls|ucx|inproc)://")
    index_shards: int = Field(default=1, ge=1)
    no_worker_wait: int | float = Field(default=120, gt=0)
    verify_here: StrictBool = False


class GovernanceTable(_Table):
    required_roles: list[str] = []
    author_may_sign: StrictBool = False
    signatures: str | None = None
    allowed_signers: str | None = None
    allowed_actions: list[str] = []
    audit_anchor: str | None = None


class PolicyTable(_Table):
    canonical: list[str] | None = None
    authoritative: list[str] = []


class ReportTable(_Table):
    currency: str | None = None
    price_per_gb_month: float | None = Field(default=None, ge=0)
    risk_tiers: list[str] | None = None


class ServiceTable(_Table):
    """``dam-dedupe serve`` (see ``docs/integrations.md``)."""

    max_body_bytes: int = Field(default=50 * 1024 * 1024, ge=1)
    max_pixels: int | None = Field(default=None, ge=1)
    refresh_seconds: float = Field(default=2.0, gt=0)
    page_size: int = Field(default=100, ge=1, le=1000)
    bynder_uri: str | None = None
    canto_uri: str | None = None


class WebhookTable(_Table):
    """One outgoing webhook subscriber; its secret is read from the environment variable ``secret_env``."""

    url: str = Field(pattern=r"^https?://")
    secret_env: str = Field(min_length=1)
    events: list[Literal["scan.finished", "cluster.found", "action.applied"]] = [
        "scan.finished",
        "cluster.found",
        "action.applied",
    ]
    retries: int = Field(default=3, ge=0, le=20)
    backoff_seconds: float = Field(default=1.0, ge=0)
    timeout_seconds: float = Field(default=10.0, gt=0)


class FacesTable(_Table):
    """The built-in faces analyser's options (``min_neighbors`` belonged to the Haar cascade it replaced)."""

    min_face: float = Field(default=0.08, gt=0, le=1)
    min_score: float = Field(default=0.7, gt=0, le=1)


class AnalysisTable(BaseModel):
    """``disabled`` is the host's, ``faces`` the built-in analyser's; other keys are vendor analysers' tables."""

    model_config = ConfigDict(extra="allow", strict=True)
    disabled: list[str] = []
    faces: FacesTable = FacesTable()


class SourceTable(BaseModel):
    """The keys every source shares; the adapter's own options are allowed beside them."""

    model_config = ConfigDict(extra="allow", strict=True)
    uri: str
    authoritative: StrictBool = False
    residency: str | None = None
    risk_tier: str | None = None
    department: str | None = None
    price_per_gb_month: float | None = Field(default=None, ge=0)
    exclude: list[str] | str | None = None


class ConfigFile(_Table):
    """The whole file; every section is optional."""

    catalog: CatalogTable = CatalogTable()
    scan: ScanTable = ScanTable()
    matching: dict[str, Any] = {}
    governance: GovernanceTable = GovernanceTable()
    policy: PolicyTable = PolicyTable()
    report: ReportTable = ReportTable()
    analysis: AnalysisTable = AnalysisTable()
    sources: dict[str, SourceTable] = {}
    service: ServiceTable = ServiceTable()
    webhooks: dict[str, WebhookTable] = {}
    clusters: dict[str, ClusterTable] = {}


def _known_keys(location: tuple[str | int, ...]) -> list[str]:
    """The keys allowed in the table at ``location`` (for a "did you mean" suggestion)."""
    model: type[BaseModel] = ConfigFile
    for part in location[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _where(location: tuple[str | int, ...]) -> str:
    """A key's place as a TOML reader sees it: ``[scan] workers``, ``[sources.x] uri``, ``[governence]``."""
    parts = [str(p) for p in location]
    if len(parts) == 1:
        return f"[{parts[0]}]"
    return f"[{'.'.join(parts[:-1])}] {parts[-1]}"


def _describe(error: Any) -> str:
    location = tuple(error["loc"])
    where = _where(location)
    if error["type"] == "extra_forbidden":
        kind = "section" if len(location) == 1 else "key"
        close = difflib.get_close_matches(str(location[-1]), _known_keys(location), n=1, cutoff=0.6)
        hint = f"; did you mean {_where((*location[:-1], close[0]))}?" if close else ""
        return f"unknown {kind} {where}{hint}"
    if error["type"] == "missing":
        return f"{where} is required"
    value = error.get("input")
    return f"{where} = {value!r}: {error['msg'].lower()}"


def _risk_tier_problems(config: ConfigFile) -> list[str]:
    """Sources whose ``risk_tier`` is not one of ``[report] risk_tiers`` (caught now, not at report time)."""
    from dam_dedupe.report.settings import DEFAULT_RISK_TIERS  # the report package imports this module's user

    tiers = config.report.risk_tiers or list(DEFAULT_RISK_TIERS)
    return [
        f"[sources.{name}] risk_tier = {table.risk_tier!r} is not one of [report] risk_tiers {tiers}"
        for name, table in config.sources.items()
        if table.risk_tier is not None and table.risk_tier not in tiers
    ]


def _cluster_problems(config: ConfigFile) -> list[str]:
    """A ``[scan] cluster`` that names no ``[clusters.NAME]`` table."""
    name = config.scan.cluster
    if name is None or name in config.clusters:
        return []
    return [f"[scan] cluster = {name!r} names no [clusters.{name}] table (defined: {sorted(config.clusters)})"]


def validate(data: dict[str, Any], path: Path | None) -> None:
    """Check parsed TOML against the schema; raise :class:`ConfigError` listing every problem."""
    try:
        config = ConfigFile.model_validate(data)
        problems = _risk_tier_problems(config) + _cluster_problems(config)
    except ValidationError as exc:
        problems = [_describe(error) for error in exc.errors()]
    if problems:
        raise ConfigError(f"{path or 'configuration'}: " + "; ".join(problems))
