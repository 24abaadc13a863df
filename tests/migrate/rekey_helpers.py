"""What the rekey tests share: the command line, a fleet of headers, a Barbican reader (fixture),
and the invariant every header must satisfy."""

from __future__ import annotations

import pytest

from keytools import keymanager
from keytools.cinder_db import FIXED_KEY_ID
from tests.helpers.db_seed import keys, seed
from tests.migrate.luks_helpers import luks_format, opens, used_slots

FAST = ("--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000")


def rekey_args(url, key_file, state, devs, *extra):
    return ["--os-cloud", "sandbox-demo", "migrate", "rekey", "--db-url", url, "--fixed-key-file", str(key_file),
            "--state-dir", str(state), "--luks", str(devs / "volume-{id}"), *FAST, *extra]


@pytest.fixture
def barbican(creator_session):
    client = keymanager.barbican_client(creator_session)
    endpoint = keymanager.barbican_endpoint(creator_session)

    class B:
        def payload(self, kid: str) -> bytes:
            return client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload

        def acl_users(self, kid: str) -> list[str]:
            return list(client.acls.get(f"{endpoint}/v1/secrets/{kid}").read.users or [])

        def bits(self, kid: str) -> int:
            return client.secrets.get(f"{endpoint}/v1/secrets/{kid}").bit_length

        endpoint_url = endpoint

    return B()


def headers_open_with_db_keys(url, devs, barbican, fixed: bytes, vols) -> None:
    """The invariant: every header opens with the key its row points at, and with nothing else."""
    current = keys(url, "volumes")
    for vid in vols:
        kid = current[vid]
        key = fixed if kid == FIXED_KEY_ID else barbican.payload(kid)
        path = devs / f"volume-{vid}"
        assert opens(path, key.hex().encode()), f"volume {vid}: header does not open with the database's key"
        if kid != FIXED_KEY_ID:
            assert not opens(path, fixed.hex().encode()), f"volume {vid}: fixed_key still opens it"
            assert used_slots(path) == 1, f"volume {vid}: leftover keyslots"


def make_fleet(url, devs, fixed: bytes, n: int, kinds=("luks1", "luks2"), **seed_kw):
    rows = seed(url, volumes=n, **seed_kw)
    devs.mkdir(exist_ok=True)
    for i, vid in enumerate(rows.volumes):
        luks_format(devs / f"volume-{vid}", fixed.hex().encode(), kinds[i % len(kinds)])
    return rows


