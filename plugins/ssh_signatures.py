"""Sign-offs as OpenSSH signatures, checked against the organisation's allowed-signers file.

Why OpenSSH signatures: they are what git uses for signed commits, so IT already knows how
to issue and revoke the keys (``ssh-keygen``, hardware keys with ``sk-ssh-ed25519``); a
signature is checked offline, years later, by an auditor with nothing but the allowed-signers
file; and no identity-provider round trip or network is needed on the machine that applies.

The allowed-signers file (``[governance] allowed_signers``) is OpenSSH's own format; each
person's *roles* are the namespaces their line allows, ``dam-dedupe-ROLE``::

    ana@example.org namespaces="dam-dedupe-legal" ssh-ed25519 AAAAC3Nza...
    ben@example.org namespaces="dam-dedupe-it,dam-dedupe-compliance" ssh-ed25519 AAAAC3Nza...

A sign-off for ``legal`` is a signature in namespace ``dam-dedupe-legal``, so ``ssh-keygen``
itself refuses a key whose line does not name that role. A line without ``namespaces``
gives no role at all here (OpenSSH would allow every namespace).
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from dam_dedupe import hookimpl
from dam_dedupe.errors import ConfigError, DamDedupeError
from dam_dedupe.governance.signatures import SignatureRefused, SignatureScheme, person

NAMESPACE = "dam-dedupe-{role}"


def namespace(role: str) -> str:
    """The signature namespace standing for a role."""
    return NAMESPACE.format(role=role)


def _ssh_keygen() -> str:
    found = shutil.which("ssh-keygen")
    if found is None:
        raise DamDedupeError("ssh-keygen is not installed; install OpenSSH (Debian: apt-get install openssh-client)")
    return found


def principals_with_roles(text: str) -> dict[str, set[str]]:
    """Each principal pattern of an allowed-signers file with the roles (namespaces) its lines allow."""
    roles: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = shlex.split(line, posix=True)
        principals, options = fields[0], [f for f in fields[1:] if "=" in f or f == "cert-authority"]
        allowed: set[str] = set()
        for option in options:
            key, _, value = option.partition("=")
            if key.lower() == "namespaces":
                allowed |= {n.removeprefix("dam-dedupe-") for n in value.split(",") if n.startswith("dam-dedupe-")}
        for principal in principals.split(","):
            roles.setdefault(principal, set()).update(allowed)
    return roles


class SshSignatures(SignatureScheme):
    """OpenSSH signatures (``ssh-keygen -Y sign`` / ``-Y verify``) against an allowed-signers file."""

    name = "ssh"

    @property
    def allowed_signers(self) -> Path:
        """The allowed-signers file the organisation keeps."""
        value = self.options.get("allowed_signers")
        if not value:
            raise ConfigError('[governance] signatures = "ssh" needs allowed_signers = "PATH" (OpenSSH format)')
        path = Path(str(value)).expanduser()
        if not path.is_file():
            raise ConfigError(f"[governance] allowed_signers: {path} does not exist")
        return path

    def trust_digest(self) -> str:
        """SHA-256 of the allowed-signers file."""
        return "sha256:" + hashlib.sha256(self.allowed_signers.read_bytes()).hexdigest()

    def verify(self, message: bytes, signature: str, role: str) -> str:
        """Find the signer's principal by their key, then let ``ssh-keygen`` check the signature for the role."""
        allowed = self.allowed_signers
        with tempfile.TemporaryDirectory() as folder:
            sig = Path(folder) / "signoff.sig"
            sig.write_text(signature, encoding="utf-8")
            found = subprocess.run(
                [_ssh_keygen(), "-Y", "find-principals", "-s", str(sig), "-f", str(allowed)],
                capture_output=True,
                text=True,
            )
            principals = found.stdout.split()
            if found.returncode != 0 or not principals:
                raise SignatureRefused(f"the signature's key is not in the allowed signers ({allowed})")
            for principal in principals:
                checked = subprocess.run(
                    [
                        _ssh_keygen(),
                        "-Y",
                        "verify",
                        "-f",
                        str(allowed),
                        "-I",
                        principal,
                        "-n",
                        namespace(role),
                        "-s",
                        str(sig),
                    ],
                    input=message,
                    capture_output=True,
                )
                if checked.returncode == 0 and role in principals_with_roles(allowed.read_text()).get(principal, ()):
                    return person(principal)
        raise SignatureRefused(
            f"the signature is by {', '.join(principals)}, whose allowed-signers line does not give the role "
            f"'{role}' (namespaces=\"{namespace(role)}\"), or it was made for another plan or role"
        )

    def sign(self, message: bytes, key: str, role: str) -> str:
        """``ssh-keygen -Y sign`` with the signer's own key (it may ask for its passphrase or a touch)."""
        done = subprocess.run(
            [_ssh_keygen(), "-Y", "sign", "-q", "-f", key, "-n", namespace(role)], input=message, capture_output=True
        )
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip()
            raise DamDedupeError(f"ssh-keygen could not sign with {key}: {reason}")
        return done.stdout.decode("ascii")


@hookimpl
def dam_dedupe_signature_schemes() -> list[type[SignatureScheme]]:
    """Contribute OpenSSH signatures."""
    return [SshSignatures]
