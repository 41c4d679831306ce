"""S3 (moto) behind the fault proxy: whichever write of apply or undo loses its answer, nothing is lost.

For every write a clean apply and undo make, in turn, a fresh bucket gets the same one-step
quarantine (or redirect) plan with that write performed by moto but its answer lost: a ``500`` in
the quarantine cases, a dropped connection in the redirect ones. After apply, and ``apply`` again
where steps were left, every object's bytes are at its key or in its quarantine copy; after undo
(and ``undo`` again) the bucket holds the same keys with the same bytes as before. Write numbers
count apply's writes, then undo's.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from tests.servers.fault_proxy import S3_ERROR, FaultProxy, Write, running_proxy
from tests.servers.fault_stores import S3Store, clean_writes, lose_one_answer
from tests.servers.s3 import aws_variables, moto_endpoint  # noqa: F401

PLANS = {"quarantine": {}, "redirect": {"pointer": "stub"}}
MAX_WRITES = 24
"""More writes than a clean apply and undo of either plan make (checked by the first test)."""


@pytest.fixture(scope="module")
def proxy(moto_endpoint: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultProxy]:  # noqa: F811
    """The fault proxy in front of moto; boto3 in this process is pointed at it by ``AWS_ENDPOINT_URL``."""
    with running_proxy(moto_endpoint, error=S3_ERROR) as proxy, pytest.MonkeyPatch.context() as env:
        for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL_S3", "AWS_SESSION_TOKEN", "AWS_REGION", "AWS_MAX_ATTEMPTS"):
            env.delenv(name, raising=False)
        for name, value in aws_variables(proxy.endpoint, str(tmp_path_factory.mktemp("aws"))).items():
            env.setenv(name, value)
        yield proxy


@pytest.fixture(scope="module")
def admin(moto_endpoint: str) -> Any:  # noqa: F811
    """A boto3 client straight to moto (bypassing the proxy), for set-up and checks."""
    return boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture(scope="module")
def writes(proxy: FaultProxy, admin: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Write]]:
    """The writes of a clean apply and undo of each plan."""
    return {
        action: clean_writes(S3Store(admin), proxy, tmp_path_factory.mktemp(action), action, params)
        for action, params in PLANS.items()
    }


def test_a_clean_round_trip_makes_fewer_writes_than_the_cases_cover(writes: dict[str, list[Write]]) -> None:
    for action, made in writes.items():
        assert 0 < len(made) <= MAX_WRITES, f"{action}: {[str(w) for w in made]}"


@pytest.mark.parametrize(("action", "how"), [("quarantine", "500"), ("redirect", "drop")])
@pytest.mark.parametrize("index", range(1, MAX_WRITES + 1))
def test_a_lost_answer_loses_nothing_and_undo_restores_the_bucket(
    proxy: FaultProxy, admin: Any, writes: dict[str, list[Write]], tmp_path: Path, index: int, action: str, how: str
) -> None:
    if index > len(writes[action]):
        pytest.skip(f"a clean {action} round trip makes {len(writes[action])} writes")
    lose_one_answer(S3Store(admin), proxy, tmp_path, action, PLANS[action], index, how)
