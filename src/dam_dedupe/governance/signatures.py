"""Signature schemes: how a sign-off proves who made it.

A sign-off signs the plan's *message* (its id and the SHA-256 of its content, see
:func:`plan_message`) for one role. A scheme checks such a signature against the signers
the organisation allows and says whose it is; the signer's identity comes from their key,
never from a name typed on the command line.

The built-in scheme is OpenSSH signatures (``plugins/ssh_signatures.py``). Another one (a
sign-in through the organisation's identity provider, say) is a plugin contributing a
:class:`SignatureScheme` through the ``dam_dedupe_signature_schemes`` hook, chosen with
``[governance] signatures = "NAME"``.
"""

from __future__ import annotations

import abc
import hashlib
import unicodedata
from collections.abc import Mapping
from typing import Any, ClassVar

from dam_dedupe.errors import DamDedupeError
from dam_dedupe.governance.plan import Plan, canonical_json


class SignatureRefused(DamDedupeError):
    """A signature is not valid for this plan and role, or its key is not an allowed signer for the role."""


def person(name: str) -> str:
    """One person is one identity whatever the spelling: Unicode NFKC, spaces collapsed, case folded."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def plan_message(plan: Plan) -> bytes:
    """What a sign-off signs: the plan's id and the SHA-256 of its whole content (steps, policy, parameters)."""
    digest = hashlib.sha256(canonical_json(plan.body).encode("utf-8")).hexdigest()
    return f"dam-dedupe plan {plan.id}\ncontent sha256 {digest}\n".encode()


class SignatureScheme(abc.ABC):
    """Base class of a way to sign plans off.

    Class attributes:
        name: selects it (``[governance] signatures = "ssh"``).

    An instance is built with the ``[governance]`` table, where it reads its own settings.
    """

    name: ClassVar[str]

    def __init__(self, options: Mapping[str, Any]) -> None:
        self.options = dict(options)

    @abc.abstractmethod
    def verify(self, message: bytes, signature: str, role: str) -> str:
        """Return the identity of whoever signed ``message`` for ``role``.

        Raise :class:`SignatureRefused` when the signature does not match the message,
        or its key is not allowed to sign for that role (or at all).
        """

    @abc.abstractmethod
    def trust_digest(self) -> str:
        """A digest of the trust list now in force (who may sign for what), recorded in each plan's policy."""

    def sign(self, message: bytes, key: str, role: str) -> str:
        """Sign ``message`` for ``role`` with the key at ``key`` (for ``dam-dedupe sign``); optional."""
        raise DamDedupeError(f"the {self.name} signature scheme cannot sign here; sign with its own tool")
