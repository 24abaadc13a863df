"""Store a secret in Barbican once: a rerun finds the copy stored before instead of adding another.

Barbican secrets are immutable and their names are not unique, so a crash between the POST and
the printed id would leave one more copy per rerun. The earlier copy is recognised by its name,
its secret type and a check of its payload (a fingerprint), which the caller supplies.
Used by ``keytools cert store`` (certificates) and ``keytools swift new-key`` (root secrets).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def secret_id(ref: str) -> str:
    """The UUID at the end of a secret (or order) ref: what Glance, Nova and Swift configs name."""
    return ref.rstrip("/").rsplit("/", 1)[-1]


def payload_bytes(secret: Any) -> bytes:
    """A barbicanclient secret's payload as bytes (text payloads come back as ``str``)."""
    payload = secret.payload
    return payload if isinstance(payload, bytes) else str(payload).encode()


@dataclass(frozen=True)
class Stored:
    ref: str
    reused: bool  # True: an earlier run had stored it

    @property
    def id(self) -> str:
        return secret_id(self.ref)


def store_once(client: Any, name: str, secret_type: str, same: Callable[[bytes], bool],
               **create: Any) -> Stored:
    """The secret ``name`` of ``secret_type`` whose payload ``same`` accepts, else a new one made
    with ``client.secrets.create(name=, secret_type=, **create)``.

    ``same`` may raise ValueError for a payload it cannot read: that candidate is skipped.
    Client errors propagate (callers wrap this in ``service_errors.translated``).
    """
    for candidate in client.secrets.list(name=name, secret_type=secret_type, limit=100):
        if candidate.name != name:
            continue
        try:
            if same(payload_bytes(candidate)):
                return Stored(candidate.secret_ref, True)
        except ValueError:
            continue
    ref = client.secrets.create(name=name, secret_type=secret_type, **create).store()
    return Stored(ref, False)
