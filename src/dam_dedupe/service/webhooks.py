"""Outgoing webhooks: HMAC-signed JSON events to the subscribers in ``dam-dedupe.toml``, retried, dead-lettered.

Each ``[webhooks.NAME]`` table names a ``url``, the environment variable holding its shared secret
(``secret_env``: the secret is never in the file, the catalog or a log) and the ``events`` it wants.
A delivery is a ``POST`` of the event as JSON with these headers:

- ``X-Dam-Dedupe-Event``: the event name (``scan.finished``, ``cluster.found``, ``action.applied``);
- ``X-Dam-Dedupe-Delivery``: a unique id, the same on every retry (a receiver drops repeats by it);
- ``X-Dam-Dedupe-Timestamp``: Unix seconds when it was signed;
- ``X-Dam-Dedupe-Signature``: ``sha256=`` and the hex HMAC-SHA256, keyed with the secret, of
  ``TIMESTAMP.BODY`` (the timestamp, a full stop, the raw body). A receiver recomputes it, compares in
  constant time and refuses a timestamp more than five minutes old, so a captured request cannot be
  replayed later.

Deliveries run on a background thread so that a scan never waits for a slow subscriber. A 2xx answer
is delivered; anything else (or no answer) is retried after ``backoff_seconds`` x 2^n, ``retries``
times; then the event is kept in the catalog's dead letters (``webhook_dead_letters``), as is every
event still queued when the process has waited ``EXIT_WAIT`` seconds at exit.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import json
import logging
import os
import queue
import threading
import time
import urllib.error
import uuid
from dataclasses import dataclass
from typing import Any

from dam_dedupe.catalog.base import DeadLetter
from dam_dedupe.service.tokens import now

log = logging.getLogger(__name__)

EVENTS = ("scan.finished", "cluster.found", "action.applied")
EXIT_WAIT = 60.0
"""Seconds a finishing process waits for queued deliveries (and their retries) before dead-lettering them."""


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One ``[webhooks.NAME]`` table (see the module notes)."""

    name: str
    url: str
    secret_env: str
    events: tuple[str, ...] = EVENTS
    retries: int = 3
    backoff_seconds: float = 1.0
    timeout_seconds: float = 10.0

    def secret(self) -> bytes:
        """The shared secret from the environment; a subscriber without one receives nothing unsigned."""
        value = os.environ.get(self.secret_env, "")
        if not value:
            raise LookupError(f"the environment variable {self.secret_env} holds no secret")
        return value.encode("utf-8")


def subscribers(section: dict[str, Any]) -> list[Subscriber]:
    """The subscribers of a (schema-checked) ``[webhooks]`` section."""
    found = []
    for name, table in section.items():
        options: dict[str, Any] = dict(table)
        if "events" in options:
            options["events"] = tuple(options["events"])
        found.append(Subscriber(name=name, **options))
    return found


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The ``X-Dam-Dedupe-Signature`` value of a body signed at ``timestamp``."""
    return "sha256=" + hmac.new(secret, timestamp.encode("ascii") + b"." + body, hashlib.sha256).hexdigest()


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, max_age: float = 300.0) -> bool:
    """Whether a received delivery is genuine and fresh (for receivers written in Python)."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= max_age
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(slots=True)
class _Delivery:
    subscriber: Subscriber
    event: str
    body: bytes
    delivery_id: str
    attempts: int = 0
    due: float = 0.0


class Outbox:
    """Queues events for the subscribers and delivers them on one background thread.

    ``catalog_path`` is where undeliverable events are kept (``None``: they are only logged).
    """

    def __init__(self, subscribers: list[Subscriber], catalog_path: str | None) -> None:
        self.subscribers = subscribers
        self.catalog_path = catalog_path
        self._queue: queue.Queue[_Delivery | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._waiting: list[_Delivery] = []

    def wants(self, event: str) -> bool:
        """Whether a subscriber wants ``event`` (``"cluster.found"``, say)."""
        return any(event in subscriber.events for subscriber in self.subscribers)

    def announce(self, event: str, payload: dict[str, Any]) -> None:
        """Queue ``payload`` as ``event`` for every subscriber that wants it."""
        wanted = [s for s in self.subscribers if event in s.events]
        if not wanted:
            return
        body = json.dumps({"event": event, "sent": now(), "data": payload}, ensure_ascii=False).encode("utf-8")
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="dam-dedupe-webhooks", daemon=True)
                self._thread.start()
                atexit.register(self.close)
        for subscriber in wanted:
            self._queue.put(_Delivery(subscriber, event, body, uuid.uuid4().hex))

    def close(self, wait: float = EXIT_WAIT) -> None:
        """Wait up to ``wait`` seconds for every delivery; dead-letter what is left."""
        if self._thread is None:
            return
        self._queue.put(None)
        self._thread.join(wait)
        left = list(self._waiting)
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None:
                left.append(item)
        for delivery in left:
            self._dead(delivery, "not delivered before the process finished")
        self._waiting.clear()
        self._thread = None

    def _run(self) -> None:
        closing = False
        while not (closing and not self._waiting):
            timeout = max(0.0, min((d.due for d in self._waiting), default=time.monotonic() + 1) - time.monotonic())
            try:
                item = self._queue.get(timeout=timeout if self._waiting else None)
                if item is None:
                    closing = True
                else:
                    self._waiting.append(item)
            except queue.Empty:
                pass
            for delivery in [d for d in self._waiting if d.due <= time.monotonic()]:
                self._waiting.remove(delivery)
                self._attempt(delivery)

    def _attempt(self, delivery: _Delivery) -> None:
        """Send once; on failure schedule the next try, or dead-letter after the last."""
        delivery.attempts += 1
        subscriber = delivery.subscriber
        try:
            self._post(delivery)
            return
        except LookupError as exc:  # no secret: retrying cannot help
            self._dead(delivery, str(exc))
            return
        except (OSError, urllib.error.URLError) as exc:
            error = _reason(exc)
        if delivery.attempts > subscriber.retries:
            self._dead(delivery, error)
            return
        delivery.due = time.monotonic() + subscriber.backoff_seconds * 2 ** (delivery.attempts - 1)
        log.info("webhook %s to %s failed (%s); retrying", delivery.event, subscriber.name, error)
        self._waiting.append(delivery)

    @staticmethod
    def _post(delivery: _Delivery) -> None:
        import urllib.request  # here, not at the top: every scan loads this module's plugin, few post (40 ms)

        subscriber = delivery.subscriber
        timestamp = str(int(time.time()))
        request = urllib.request.Request(
            subscriber.url,
            data=delivery.body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "User-Agent": "dam-dedupe-webhooks",
                "X-Dam-Dedupe-Event": delivery.event,
                "X-Dam-Dedupe-Delivery": delivery.delivery_id,
                "X-Dam-Dedupe-Timestamp": timestamp,
                "X-Dam-Dedupe-Signature": sign(subscriber.secret(), timestamp, delivery.body),
            },
        )
        with urllib.request.urlopen(request, timeout=subscriber.timeout_seconds) as response:  # noqa: S310
            response.read()

    def _dead(self, delivery: _Delivery, error: str) -> None:
        """Keep an undeliverable event in the catalog (it names the subscriber, never its secret)."""
        log.warning("webhook %s to %s not delivered: %s", delivery.event, delivery.subscriber.name, error)
        if self.catalog_path is None:
            return
        from dam_dedupe.catalog import open_catalog

        letter = DeadLetter(
            delivery.subscriber.name, delivery.event, delivery.body.decode("utf-8"), error, delivery.attempts, now()
        )
        try:
            catalog = open_catalog(self.catalog_path)
            try:
                catalog.add_dead_letter(letter)
            finally:
                catalog.close()
        except Exception as exc:  # the catalog is gone or locked: the log line above is all that is left
            log.warning("cannot keep the undelivered webhook in %s: %s", self.catalog_path, exc)


def _reason(exc: Exception) -> str:
    """Why a delivery failed, without the URL's query (it may carry a key)."""
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code}"
    if isinstance(exc, urllib.error.URLError):
        return f"no answer: {exc.reason}"
    return f"{type(exc).__name__}: {exc}"
