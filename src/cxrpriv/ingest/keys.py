"""The de-identification secret: where it comes from, and the keyed derivations built on it.

Every pseudonym, date shift, UID and checksum the stage writes is an HMAC-SHA256 under this key, so the same
key gives the same outputs across runs and batches, and nobody without the key can recompute them from an
original identifier (or test a guess). The key object never prints its value: ``repr`` and ``str`` show
only where it came from.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

KEY_ENV = "CXRPRIV_DEID_KEY"
# A key shorter than this is guessable; HMAC-SHA256 wants at least 32 bytes of secret anyway.
MIN_KEY_BYTES = 32
# The public key under keys/ for the synthetic demo pipeline; outputs made with it are not protected.
DEMO_KEY_PREFIX = "cxrpriv-PUBLIC-DEMO-KEY"


class KeyUnavailableError(RuntimeError):
    """No usable key: the message says how to provide one (and never contains key material)."""


@dataclass(frozen=True)
class DeidKey:
    """A secret key with its provenance; ``source`` is 'env', 'file', 'throwaway' or 'test'."""

    secret: bytes = field(repr=False)
    source: str

    def __post_init__(self) -> None:
        if len(self.secret) < MIN_KEY_BYTES:
            raise KeyUnavailableError(
                f"the de-identification key from {self.source} is shorter than {MIN_KEY_BYTES} bytes; "
                "generate one with: python -c 'import secrets; print(secrets.token_hex(32))'"
            )

    def __str__(self) -> str:
        return f"DeidKey(source={self.source})"

    @property
    def is_demo(self) -> bool:
        return self.secret.startswith(DEMO_KEY_PREFIX.encode())

    def digest(self, purpose: str, value: bytes | str) -> bytes:
        """HMAC-SHA256 of ``value`` under the key, separated by ``purpose`` so derivations never collide."""
        data = value.encode("utf-8") if isinstance(value, str) else value
        return hmac.new(self.secret, purpose.encode() + b"\x00" + data, hashlib.sha256).digest()

    def checksum(self, data: bytes) -> str:
        """A keyed file checksum: detects changed files without letting outsiders test membership."""
        return hmac.digest(self.secret, data, "sha256").hex()

    def path_tag(self, path: str) -> str:
        """A stand-in for a source path in logs: the path may name a patient, the tag names nobody."""
        return "file:" + self.digest("source-path", path).hex()[:16]

    def check_value(self) -> str:
        """A short value that identifies the key (to refuse mixing keys in one output), not the key itself."""
        return self.digest("key-check", b"").hex()[:16]


def load_key(key_file: Path | None = None, throwaway: bool = False) -> DeidKey:
    """The key from ``key_file``, else ``$CXRPRIV_DEID_KEY``, else a random one if ``throwaway``."""
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise KeyUnavailableError(f"key file {path} does not exist")
        return DeidKey(path.read_bytes().strip(), "file")
    if KEY_ENV in os.environ:
        value = os.environ[KEY_ENV].strip()
        if not value:
            # Set but empty: a secret that exists without its value. Falling back to a throwaway key here
            # would silently break pseudonym continuity, so this is an error whatever --throwaway-key says.
            raise KeyUnavailableError(f"{KEY_ENV} is set but empty")
        return DeidKey(value.encode(), "env")
    if throwaway:
        return DeidKey(secrets.token_bytes(MIN_KEY_BYTES), "throwaway")
    raise KeyUnavailableError(
        f"no de-identification key: set {KEY_ENV} (e.g. from a Kubernetes secret) or pass --key-file; "
        "--throwaway-key makes a random key whose pseudonyms cannot be reproduced later"
    )
