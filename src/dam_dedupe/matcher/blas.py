"""One BLAS thread while the matcher verifies pairs.

Verification multiplies stacks of small matrices (64 pairs' crop candidates, 32x32 and 64x64
thumbnails). OpenBLAS spreads such products over every core, and on them its threads doubled the
processor time for no gain in wall time, while taking the core the rest of a scan needs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from functools import lru_cache
from typing import Any

from threadpoolctl import ThreadpoolController


@lru_cache(maxsize=1)
def _controller() -> ThreadpoolController:
    # Made once (it inspects the loaded libraries); limiting through it then costs microseconds.
    return ThreadpoolController()


def one_thread() -> AbstractContextManager[Any]:
    """A context in which BLAS (numpy's matrix products) runs on one thread; nested ones are harmless."""
    return _controller().limit(limits=1, user_api="blas")
