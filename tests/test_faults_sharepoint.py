"""SharePoint (the Graph emulator) behind the fault proxy: whichever write loses its answer, nothing is lost.

The proxy terminates TLS with a certificate from the emulator's test CA and forwards to the emulator
over HTTPS; the product reaches Graph through it (``DAM_DEDUPE_GRAPH_ENDPOINT``) and signs in to the
emulator directly. For every write a clean apply and undo make, in turn, a fresh library gets the
same one-step quarantine (or redirect) plan with that write performed but its answer lost: a ``500``
in the quarantine cases, a dropped connection in the redirect ones. After apply, and ``apply`` again
where steps were left, every file's bytes are at its path or in its quarantine copy; after undo (and
``undo`` again) the library holds the same paths with the same bytes as before. Write numbers count
apply's writes, then undo's.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from tests.servers.fault_proxy import GRAPH_ERROR, FaultProxy, Write, running_proxy
from tests.servers.fault_stores import GraphStore, clean_writes, lose_one_answer
from tests.servers.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphEmulator, graph_ca, graph_server, library_uri  # noqa: F401

PLANS = {"quarantine": {}, "redirect": {}}
MAX_WRITES = 24
"""More writes than a clean apply and undo of either plan make (checked by the first test)."""


@pytest.fixture(scope="module")
def proxy(graph_server: GraphEmulator, graph_ca: tuple[trustme.CA, str]) -> Iterator[FaultProxy]:  # noqa: F811
    """The fault proxy in front of the emulator, serving TLS with a certificate from the emulator's CA."""
    ca, ca_pem = graph_ca
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(server_tls)
    upstream_tls = ssl.create_default_context(cafile=ca_pem)
    with (
        running_proxy(graph_server.base, error=GRAPH_ERROR, server_tls=server_tls, upstream_tls=upstream_tls) as proxy,
        pytest.MonkeyPatch.context() as env,
    ):
        for name in ("AZURE_CLIENT_CERTIFICATE_PATH", "AZURE_CLIENT_CERTIFICATE_PASSWORD"):
            env.delenv(name, raising=False)
        env.setenv("AZURE_TENANT_ID", TENANT)
        env.setenv("AZURE_CLIENT_ID", CLIENT_ID)
        env.setenv("AZURE_CLIENT_SECRET", CLIENT_SECRET)
        env.setenv("AZURE_AUTHORITY_HOST", graph_server.base)
        env.setenv("DAM_DEDUPE_GRAPH_ENDPOINT", proxy.endpoint)
        env.setenv("DAM_DEDUPE_CA_BUNDLE", ca_pem)
        yield proxy


@pytest.fixture(scope="module")
def writes(
    proxy: FaultProxy,
    graph_server: GraphEmulator,
    tmp_path_factory: pytest.TempPathFactory,  # noqa: F811
) -> dict[str, list[Write]]:
    """The writes of a clean apply and undo of each plan."""
    return {
        action: clean_writes(
            GraphStore(graph_server, library_uri()), proxy, tmp_path_factory.mktemp(action), action, params
        )
        for action, params in PLANS.items()
    }


def test_a_clean_round_trip_makes_fewer_writes_than_the_cases_cover(writes: dict[str, list[Write]]) -> None:
    for action, made in writes.items():
        assert 0 < len(made) <= MAX_WRITES, f"{action}: {[str(w) for w in made]}"


@pytest.mark.parametrize(("action", "how"), [("quarantine", "500"), ("redirect", "drop")])
@pytest.mark.parametrize("index", range(1, MAX_WRITES + 1))
def test_a_lost_answer_loses_nothing_and_undo_restores_the_library(
    proxy: FaultProxy,
    graph_server: GraphEmulator,
    writes: dict[str, list[Write]],
    tmp_path: Path,  # noqa: F811
    index: int,
    action: str,
    how: str,
) -> None:
    if index > len(writes[action]):
        pytest.skip(f"a clean {action} round trip makes {len(writes[action])} writes")
    lose_one_answer(GraphStore(graph_server, library_uri()), proxy, tmp_path, action, PLANS[action], index, how)
