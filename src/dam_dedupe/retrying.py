"""Retries for cloud adapters: one policy, built on tenacity.

Each adapter says which failures are transient and, where the service sends one, how
long it asked us to wait (``Retry-After``, ``x-ms-retry-after-ms``). The wait honours
that hint exactly; otherwise it backs off exponentially with full jitter. Attempts are
bounded, and when they run out the last error is raised unchanged so the adapter can
turn it into a clear message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import tenacity

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_ATTEMPTS = 8
DEFAULT_INITIAL_WAIT = 0.2
DEFAULT_MAX_WAIT = 30.0


class _HintOrJitter(tenacity.wait.wait_base):
    """Wait what the service asked for, else exponential backoff with full jitter."""

    def __init__(self, retry_after: Callable[[BaseException], float | None], initial: float, maximum: float) -> None:
        self.retry_after = retry_after
        self.backoff = tenacity.wait_random_exponential(multiplier=initial, max=maximum)
        self.maximum = maximum

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        outcome = retry_state.outcome
        error = outcome.exception() if outcome is not None else None
        hint = self.retry_after(error) if error is not None else None
        if hint is not None:
            return max(0.0, hint)
        return float(self.backoff(retry_state))


def call_with_retries(
    fn: Callable[[], T],
    *,
    is_transient: Callable[[BaseException], bool],
    retry_after: Callable[[BaseException], float | None] = lambda _exc: None,
    attempts: int = DEFAULT_ATTEMPTS,
    initial_wait: float = DEFAULT_INITIAL_WAIT,
    max_wait: float = DEFAULT_MAX_WAIT,
    what: str = "request",
) -> T:
    """Call ``fn`` until it succeeds, retrying transient failures.

    Args:
        fn: the call to make; it is called again from scratch on each attempt.
        is_transient: says whether an exception is worth another attempt.
        retry_after: the wait in seconds the service asked for in this exception, or ``None``.
        attempts: the most calls made in all.
        initial_wait, max_wait: the backoff's scale and cap in seconds, when there is no hint.
        what: names the call in log messages.

    Returns the result of the first successful call; re-raises the last exception when
    attempts run out or the failure is not transient.
    """

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.info("%s failed (%s); attempt %d, retrying in %.2fs", what, error, state.attempt_number, wait)

    retryer = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=_HintOrJitter(retry_after, initial_wait, max_wait),
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=log_retry,
        reraise=True,
    )
    return retryer(fn)
