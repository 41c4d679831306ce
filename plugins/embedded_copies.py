"""An image inside a document is never a cluster's canonical while a file of its own is a member.

Actions never act on an embedded copy (a document is not rewritten), so a canonical inside a deck
would leave the standalone files as the only copies to act on: the library original could be
quarantined in favour of a picture nobody can open on its own. When every member is embedded the
policy chooses among them, and the planner then finds nothing to act on.
"""

from __future__ import annotations

from dam_dedupe import hookimpl
from dam_dedupe.records import Cluster, Member, embedded_in


@hookimpl
def dam_dedupe_canonical_veto(cluster: Cluster, member: Member) -> str | None:
    """Veto an embedded member: "referenced in <document>"."""
    document = embedded_in(member.asset)
    return f"inside a document ({document})" if document else None
