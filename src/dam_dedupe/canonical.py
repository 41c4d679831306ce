"""Choosing each cluster's canonical copy: an ordered policy, then plugins.

The policy is a list of rules, tried in order (``[policy] canonical`` in
``dam-dedupe.toml``); the first rule on which the best member beats the runner-up
decides, and its wording is recorded as the reason. Plugins may veto members
(``dam_dedupe_canonical_veto``) or overrule the policy (``dam_dedupe_choose_canonical``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

import pluggy

from dam_dedupe.records import Cluster, Member

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rule:
    """One canonical rule: a sort key (lower wins) and how to say why the winner won."""

    key: Callable[[Member], object]
    because: Callable[[Member, Member], str]


def _pixels(m: Member) -> int:
    return m.fingerprint.width * m.fingerprint.height


def make_rules(authoritative: Sequence[str]) -> dict[str, Rule]:
    """The built-in rules, given the URI prefixes of authoritative locations."""

    def metadata_fields(m: Member) -> int:
        return m.fingerprint.metadata_fields + len(m.asset.metadata)

    prefixes = [unquote(p).rstrip("/") for p in authoritative]

    def is_authoritative(m: Member) -> bool:
        uri = unquote(m.asset.uri)  # stores differ in percent-encoding; compare what users read
        return any(uri == p or uri.startswith(p + "/") for p in prefixes)

    return {
        "authoritative": Rule(
            key=lambda m: not is_authoritative(m),
            because=lambda w, _r: "it is in an authoritative location",
        ),
        "resolution": Rule(
            key=lambda m: -_pixels(m),
            because=lambda w, r: (
                f"highest resolution ({w.fingerprint.width}x{w.fingerprint.height} against "
                f"{r.fingerprint.width}x{r.fingerprint.height})"
            ),
        ),
        "metadata": Rule(
            key=lambda m: -metadata_fields(m),
            because=lambda w, r: f"richest metadata ({metadata_fields(w)} fields against {metadata_fields(r)})",
        ),
        "oldest": Rule(
            key=lambda m: m.asset.modified.timestamp() if m.asset.modified else float("inf"),
            because=lambda w, r: f"oldest copy (modified {w.asset.modified:%Y-%m-%d %H:%M} UTC)",
        ),
        "shortest_path": Rule(
            key=lambda m: len(m.asset.uri),
            because=lambda w, r: "shortest path",
        ),
    }


def choose_canonical(
    cluster: Cluster, policy: Sequence[str], rules: dict[str, Rule], hook: pluggy.HookRelay | None = None
) -> None:
    """Set ``cluster.canonical`` and ``cluster.canonical_reason``.

    Members vetoed by a plugin are not candidates (unless all are); the rest are ordered
    by the policy's rules, ties broken by URI; then a plugin may choose another member.
    """
    vetoes: dict[str, str] = {}
    if hook is not None:
        for member in cluster.members:
            reasons = [r for r in hook.dam_dedupe_canonical_veto(cluster=cluster, member=member) if r]
            if reasons:
                vetoes[member.asset.uri] = "; ".join(reasons)
    candidates = [m for m in cluster.members if m.asset.uri not in vetoes] or list(cluster.members)
    ranked = sorted(candidates, key=lambda m: (*(rules[name].key(m) for name in policy), m.asset.uri))
    winner = ranked[0]
    reason = "all rules tie; first by URI"
    if len(ranked) > 1:
        runner_up = ranked[1]
        for name in policy:
            rule = rules[name]
            if rule.key(winner) != rule.key(runner_up):
                reason = rule.because(winner, runner_up)
                break
    if vetoes and len(candidates) < len(cluster.members):
        reason += f"; {len(vetoes)} member(s) vetoed by plugins ({'; '.join(sorted(set(vetoes.values())))})"
    if hook is not None:
        choice = hook.dam_dedupe_choose_canonical(cluster=cluster, ranked=ranked)
        if choice is not None:
            chosen = next((m for m in cluster.members if m.asset.uri == choice.uri), None)
            if chosen is None:
                log.warning(
                    "a plugin chose %s as canonical of %s, which is not a member; ignored", choice.uri, cluster.id
                )
            else:
                winner, reason = chosen, f"chosen by a plugin: {choice.reason}"
    cluster.canonical = winner
    cluster.canonical_reason = reason
