"""A vendor's plugin as the test suite installs it: an adapter, canonical hooks and event listeners.

- ``counting://PATH``: the local adapter, recording every ``open`` in the file named by
  ``DAM_TEST_READ_LOG`` (one line per read, from any process), and every shard of a listing
  listed, as ``PID SHARD``, in the file named by ``DAM_TEST_LIST_LOG`` when it is set.
- ``headhash://PATH``: the same, with a weak store hash (of the first 64 bytes).
- ``needs-sdk://``: an adapter whose SDK is missing, to show the install message.
- ``crashing://PATH``: ``counting://`` whose "SDK" kills its own process (as a native library's
  crash does) when it opens a file whose name starts with ``crash-``; listing a shard (a folder) named
  ``crash-*`` fails as a store that refuses it does.
- Canonical hooks: a member whose path contains ``/staging/`` is vetoed; a member whose
  name starts with ``chosen-`` is chosen.
- Event listeners append to the file named by ``DAM_TEST_EVENT_LOG``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import signal
from typing import BinaryIO

from dam_dedupe import hookimpl
from dam_dedupe.adapters.local import LocalAdapter
from dam_dedupe.errors import MissingExtra, SourceError
from dam_dedupe.records import AssetRecord, CanonicalChoice, SourceSpec


class CountingAdapter(LocalAdapter):
    """Local folders under the ``counting://`` scheme, logging each read."""

    scheme = "counting"
    description = "test: local folders, counting reads"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(SourceSpec("file://" + spec.uri.removeprefix("counting://"), spec.name, spec.options))
        self.spec = spec

    def record_for(self, path, st):  # type: ignore[no-untyped-def]
        return dataclasses.replace(super().record_for(path, st), source=self.spec.uri)

    def open(self, record: AssetRecord) -> BinaryIO:
        with open(os.environ["DAM_TEST_READ_LOG"], "a", encoding="utf-8") as log:
            log.write(record.key + "\n")
        return super().open(record)

    def list_shard(self, shard):  # type: ignore[no-untyped-def]
        if os.environ.get("DAM_TEST_LIST_LOG"):
            with open(os.environ["DAM_TEST_LIST_LOG"], "a", encoding="utf-8") as log:
                log.write(f"{os.getpid()} {shard}\n")
        return super().list_shard(shard)


class HeadHashAdapter(CountingAdapter):
    """Like ``counting://``, but the "store" gives a content hash of the first 64 bytes only.

    Files that share their first 64 bytes look identical to the store: the matcher must
    confirm with SHA-256 before calling them copies.
    """

    scheme = "headhash"
    description = "test: a store whose content hash is weak"

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(SourceSpec("counting://" + spec.uri.removeprefix("headhash://"), spec.name, spec.options))
        self.spec = spec

    def record_for(self, path, st):  # type: ignore[no-untyped-def]
        with open(path, "rb") as f:
            head = hashlib.md5(f.read(64)).hexdigest()
        return dataclasses.replace(super().record_for(path, st), source=self.spec.uri, store_hash=f"md5:{head}")


class CrashingAdapter(CountingAdapter):
    """Like ``counting://``, but opening a ``crash-*`` file kills the reading process outright."""

    scheme = "crashing"
    description = "test: local folders whose reader crashes on crash-* files"

    def open(self, record: AssetRecord) -> BinaryIO:
        stream = super().open(record)
        if os.path.basename(record.key).startswith("crash-"):
            os.kill(os.getpid(), signal.SIGKILL)
        return stream

    def list_shard(self, shard):  # type: ignore[no-untyped-def]
        if shard.startswith("crash-"):
            raise SourceError(f"the store refused to list {shard}")
        return super().list_shard(shard)


class NeedsSdkAdapter(LocalAdapter):
    """An adapter whose SDK is not installed."""

    scheme = "needs-sdk"
    extra = "needs-sdk"
    description = "test: an adapter with a missing SDK"

    @classmethod
    def check_available(cls) -> None:
        raise MissingExtra("needs-sdk", "some-cloud-sdk")


def _event(line: str) -> None:
    path = os.environ.get("DAM_TEST_EVENT_LOG")
    if path:
        with open(path, "a", encoding="utf-8") as log:
            log.write(line + "\n")


@hookimpl
def dam_dedupe_adapters():  # type: ignore[no-untyped-def]
    return [CountingAdapter, HeadHashAdapter, CrashingAdapter, NeedsSdkAdapter]


@hookimpl
def dam_dedupe_canonical_veto(cluster, member):  # type: ignore[no-untyped-def]
    return "in the staging folder" if "/staging/" in member.asset.uri else None


@hookimpl
def dam_dedupe_choose_canonical(cluster, ranked):  # type: ignore[no-untyped-def]
    for member in cluster.members:
        if member.asset.name.startswith("chosen-"):
            return CanonicalChoice(member.asset.uri, "named chosen- by the vendor's rule")
    return None


@hookimpl
def dam_dedupe_cluster_found(cluster):  # type: ignore[no-untyped-def]
    _event(f"cluster {cluster.id} {len(cluster.members)}")


@hookimpl
def dam_dedupe_scan_finished(summary):  # type: ignore[no-untyped-def]
    _event(f"scan {summary.run_id} listed={summary.listed} fingerprinted={summary.fingerprinted}")
