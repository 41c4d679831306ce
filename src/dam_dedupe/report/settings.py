"""What the report needs to know of each source beyond its URI: cost, residency, risk.

Read from ``dam-dedupe.toml``::

    [report]
    currency = "USD"                 # shown beside every cost
    price_per_gb_month = 0.023       # default price of one GB (2^30 bytes) stored for a month
    risk_tiers = ["external-facing", "shared", "internal", "archive"]   # highest risk first

    [sources.hk-marketing]
    uri = "s3://hk-marketing"
    residency = "HK"                 # where the data is held (a jurisdiction label)
    risk_tier = "external-facing"    # one of [report] risk_tiers
    department = "Marketing"         # defaults to the source's name in dam-dedupe.toml
    price_per_gb_month = 0.025       # overrides the default for this source
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from dam_dedupe.config import Config
from dam_dedupe.errors import ConfigError

DEFAULT_CURRENCY = "USD"
DEFAULT_PRICE_PER_GB_MONTH = 0.023
"""Amazon S3 Standard's first-tier list price (US East) per GB-month: a common yardstick."""
DEFAULT_RISK_TIERS = ("external-facing", "shared", "internal", "archive")
GB = 1024**3
"""Bytes in the GB that storage is billed by (cloud providers bill binary gigabytes)."""


@dataclass(frozen=True, slots=True)
class SourceFacts:
    """One source as the report describes it.

    Attributes:
        uri: the source URI.
        name: its configured name, else the URI.
        residency: jurisdiction label (``HK``, ``SG``, ``EU``), or ``None`` if not configured.
        risk_tier: its risk tier, or ``None``.
        risk_rank: position of the tier in ``risk_tiers`` (0 is highest risk); sources with no
            tier rank after every tier.
        department: the owning department (defaults to the configured source name, else empty).
        price_per_gb_month: what storing one GB here costs for a month, in the report's currency.
    """

    uri: str
    name: str
    residency: str | None
    risk_tier: str | None
    risk_rank: int
    department: str
    price_per_gb_month: float

    def monthly_cost(self, size: int) -> float:
        """The monthly cost of storing ``size`` bytes here."""
        return size / GB * self.price_per_gb_month


@dataclass(frozen=True)
class ReportSettings:
    """The ``[report]`` table and each source's report facts."""

    currency: str = DEFAULT_CURRENCY
    price_per_gb_month: float = DEFAULT_PRICE_PER_GB_MONTH
    risk_tiers: tuple[str, ...] = DEFAULT_RISK_TIERS
    config: Config = field(default_factory=Config)

    @classmethod
    def from_config(cls, config: Config) -> ReportSettings:
        """Read and check the ``[report]`` table and the report keys of every ``[sources.NAME]``."""
        table: dict[str, Any] = config.sections.get("report", {})
        settings = cls(
            currency=str(table.get("currency", DEFAULT_CURRENCY)),
            price_per_gb_month=_price(table.get("price_per_gb_month", DEFAULT_PRICE_PER_GB_MONTH), "[report]"),
            risk_tiers=tuple(str(t) for t in table.get("risk_tiers", DEFAULT_RISK_TIERS)),
            config=config,
        )
        for name, spec in config.sources.items():
            tier = spec.option("risk_tier")
            if tier is not None and tier not in settings.risk_tiers:
                raise ConfigError(
                    f"[sources.{name}] risk_tier = {tier!r} is not one of [report] risk_tiers "
                    f"{list(settings.risk_tiers)}; add it there or pick one of those"
                )
            _price(spec.option("price_per_gb_month", 0), f"[sources.{name}]")
        return settings

    def source(self, uri: str, stored_name: str = "") -> SourceFacts:
        """The report facts of the source with this URI (configured or not)."""
        spec = self.config.source_by_uri(uri)
        name = spec.name or stored_name or uri
        tier = spec.option("risk_tier")
        residency = spec.option("residency")
        price = spec.option("price_per_gb_month")
        return SourceFacts(
            uri=uri,
            name=name,
            residency=str(residency) if residency else None,
            risk_tier=str(tier) if tier else None,
            risk_rank=self.risk_tiers.index(str(tier)) if tier in self.risk_tiers else len(self.risk_tiers),
            department=str(spec.option("department") or spec.name or ""),  # never the URI: "not set" says more
            price_per_gb_month=float(price) if price is not None else self.price_per_gb_month,  # type: ignore[arg-type]
        )


def _price(value: object, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where} price_per_gb_month must be a number of at least 0, not {value!r}")
    return float(value)
