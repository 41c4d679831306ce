"""Retries for cloud adapters: one policy, built on tenacity.

Each adapter says which failures are transient and, where the service sends one, how
long it asked us to wait (``Retry-After``, ``x-ms-retry-after-ms``). The wait honours
that hint up to the source's ``max_retry_wait`` (60 s unless configured; a longer hint
waits the cap, and the log says so once per source); otherwise it backs off
exponentially with full jitter. Attempts are bounded, and when they run out the last
error is raised unchanged so the adapter can turn it into a clear message (a
:class:`~dam_dedupe.errors.TransientError`, so a governance run stays resumable).

Only idempotent requests belong here: reads, and writes that are conditional (a PUT or
DELETE with ``If-Match`` / ``If-None-Match``). A request that is not (a plain POST, a
Graph ``createUploadSession``) is sent once, and after a lost answer the adapter checks
the store instead of sending it again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import tenacity

from dam_dedupe.errors import ConfigError
from dam_dedupe.records import SourceSpec

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ATTEMPTS = 8
DEFAULT_INITIAL_WAIT = 0.2
DEFAULT_MAX_WAIT = 30.0
DEFAULT_MAX_RETRY_WAIT = 60.0
"""The longest a service's retry hint may make one request wait, unless a source sets ``max_retry_wait``."""


@dataclass
class RetryPolicy:
    """How one source retries: how many attempts, and the longest wait a service's hint may impose.

    Attributes:
        attempts: the most calls made for one request, in all.
        max_retry_wait: a cap in seconds on a ``Retry-After`` hint, so that one asset never stalls a run.
        source: names the source in the log line about a capped hint.
    """

    attempts: int = DEFAULT_ATTEMPTS
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    source: str = ""
    _told_capped: bool = field(default=False, repr=False, compare=False)

    @classmethod
    def for_source(cls, spec: SourceSpec, attempts: int = DEFAULT_ATTEMPTS) -> RetryPolicy:
        """The policy of a source: ``attempts`` (the adapter parses its own ``retry_attempts``) and the
        ``max_retry_wait`` option in seconds."""
        value = spec.option("max_retry_wait", DEFAULT_MAX_RETRY_WAIT)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise ConfigError(f"{spec.label}: max_retry_wait must be a number of seconds above 0, not {value!r}")
        return cls(attempts=attempts, max_retry_wait=float(value), source=spec.label)

    def cap(self, hint: float, what: str) -> float:
        """The wait for a service's hint: the hint itself, or the cap (logged once per policy) when it is longer."""
        if hint <= self.max_retry_wait:
            return hint
        if not self._told_capped:
            self._told_capped = True
            log.warning(
                "%s: the service asked to wait %.0f s before retrying %s; waiting %.0f s instead "
                "(the source's max_retry_wait; said once)",
                self.source or "a source",
                hint,
                what,
                self.max_retry_wait,
            )
        return self.max_retry_wait


class _HintOrJitter(tenacity.wait.wait_base):
    """Wait what the service asked for (capped by the policy), else exponential backoff with full jitter."""

    def __init__(
        self,
        retry_after: Callable[[BaseException], float | None],
        policy: RetryPolicy,
        initial: float,
        maximum: float,
        what: str,
    ) -> None:
        self.retry_after = retry_after
        self.policy = policy
        self.backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)
        self.what = what

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        hint = self.retry_after(error) if error is not None else None
        if hint is not None:
            return self.policy.cap(max(0.0, hint), self.what)
        return float(self.backoff(retry_state))


def call_with_retries(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None] = lambda _exc: None,
    policy: RetryPolicy | None = None,
    initial_wait: float = DEFAULT_INITIAL_WAIT,
    max_wait: float = DEFAULT_MAX_WAIT,
    what: str = "request",
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures; only for idempotent requests.

    Args:
        fn: the call to make; it is called again from scratch on each attempt.
        is_transient: says whether an exception is worth another attempt.
        retry_after: the wait in seconds the service asked for in this exception, or ``None``.
        policy: the source's attempts and hint cap (defaults when ``None``).
        initial_wait, max_wait: the backoff's scale and cap in seconds, when there is no hint.
        what: names the call in log messages.

    Returns the result of the first successful call; re-raises the last exception when
    attempts run out or the failure is not transient.
    """
    policy = policy or RetryPolicy()

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("%s failed (%s); attempt %d, retrying in %.2fs", what, error, state.attempt_number, wait)

    retryer = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=_HintOrJitter(retry_after, policy, initial_wait, max_wait, what),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=log_retry,
        reraise=True,
    )
    return retryer(fn)
