"""Azure Blob (Azurite) behind the fault proxy: whichever write of apply or undo loses its answer, nothing is lost.

For every write a clean apply and undo make, in turn, a fresh container gets the same one-step
quarantine (or redirect) plan with that write performed by Azurite but its answer lost: a ``500`` in
the quarantine cases, a dropped connection in the redirect ones. After apply, and ``apply`` again
where steps were left, every blob's bytes are at its name or in its quarantine copy; after undo (and
``undo`` again) the container holds the same names with the same bytes as before. Write numbers
count apply's writes, then undo's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from tests.servers.azurite import ACCOUNT, Azurite, azurite, connection_string  # noqa: F401
from tests.servers.fault_proxy import AZURE_ERROR, FaultProxy, Write, running_proxy
from tests.servers.fault_stores import AzureStore, clean_writes, lose_one_answer

PLANS = {"quarantine": {}, "redirect": {}}
MAX_WRITES = 24
"""More writes than a clean apply and undo of either plan make (checked by the first test)."""


@pytest.fixture(scope="module")
def proxy(azurite: Azurite) -> Iterator[FaultProxy]:  # noqa: F811
    """The fault proxy in front of Azurite; the product's connection string names the proxy."""
    upstream = azurite.endpoint.removesuffix(f"/{ACCOUNT}")
    with running_proxy(upstream, error=AZURE_ERROR) as proxy, pytest.MonkeyPatch.context() as env:
        for name in ("AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_KEY", "AZURE_CLIENT_SECRET"):
            env.delenv(name, raising=False)
        env.setenv("AZURE_STORAGE_CONNECTION_STRING", connection_string(f"{proxy.endpoint}/{ACCOUNT}"))
        yield proxy


@pytest.fixture(scope="module")
def service(azurite: Azurite) -> BlobServiceClient:  # noqa: F811
    """A client straight to Azurite (bypassing the proxy), for set-up and checks."""
    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture(scope="module")
def writes(
    proxy: FaultProxy, service: BlobServiceClient, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, list[Write]]:
    """The writes of a clean apply and undo of each plan."""
    return {
        action: clean_writes(AzureStore(service, ACCOUNT), proxy, tmp_path_factory.mktemp(action), action, params)
        for action, params in PLANS.items()
    }


def test_a_clean_round_trip_makes_fewer_writes_than_the_cases_cover(writes: dict[str, list[Write]]) -> None:
    for action, made in writes.items():
        assert 0 < len(made) <= MAX_WRITES, f"{action}: {[str(w) for w in made]}"


@pytest.mark.parametrize(("action", "how"), [("quarantine", "500"), ("redirect", "drop")])
@pytest.mark.parametrize("index", range(1, MAX_WRITES + 1))
def test_a_lost_answer_loses_nothing_and_undo_restores_the_container(
    proxy: FaultProxy,
    service: BlobServiceClient,
    writes: dict[str, list[Write]],
    tmp_path: Path,
    index: int,
    action: str,
    how: str,
) -> None:
    if index > len(writes[action]):
        pytest.skip(f"a clean {action} round trip makes {len(writes[action])} writes")
    lose_one_answer(AzureStore(service, ACCOUNT), proxy, tmp_path, action, PLANS[action], index, how)
