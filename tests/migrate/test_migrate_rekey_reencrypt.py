"""``migrate rekey --reencrypt-data``: LUKS2 gets a new volume key (cryptsetup reencrypt, offline, on the
image file) and its data reads back the same; LUKS1 keeps its volume key and says why; a reencryption
killed midway (keytools and its cryptsetup, as a crashed host would) is resumed by the rerun.

No device-mapper here: data is written and read through aes-xts-plain64 with the volume key that
``cryptsetup luksDump --dump-volume-key`` gives (tests/migrate/luks_helpers.py)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time

import pytest

from keytools.cinder_db import FIXED_KEY_ID
from migrate import keyslots
from tests.helpers.db_seed import keys, seed
from tests.helpers.kill import fork_main, kill_when
from tests.migrate.luks_helpers import luks_format, read_data, volume_key, write_data
from tests.migrate.rekey_helpers import barbican, headers_open_with_db_keys, rekey_args

__all__ = ["barbican"]  # a fixture
pytestmark = pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup not installed")
DATA = os.urandom(256 * 1024)


def test_reencrypt_data_luks2_rotates_luks1_says_why(kt, cinder_url, key_file, fixed_key_hex, tmp_path, barbican):
    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    devs.mkdir()
    v2, v1 = seed(cinder_url, volumes=2).volumes
    luks_format(devs / f"volume-{v2}", fixed.hex().encode(), "luks2")
    luks_format(devs / f"volume-{v1}", fixed.hex().encode(), "luks1")
    write_data(devs / f"volume-{v2}", fixed.hex().encode(), DATA)
    old_vk = {v: volume_key(devs / f"volume-{v}", fixed.hex().encode()) for v in (v1, v2)}
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--reencrypt-data", "-f", "json"))
    assert r.exit_code == 0, r.output
    res = {v["volume_id"]: v for v in json.loads(r.stdout)["volumes"]}
    now = keys(cinder_url, "volumes")
    new = {v: barbican.payload(now[v]).hex().encode() for v in (v1, v2)}
    assert res[v2]["volume_key"] == "rotated" and volume_key(devs / f"volume-{v2}", new[v2]) != old_vk[v2]
    assert read_data(devs / f"volume-{v2}", new[v2], len(DATA)) == DATA
    assert res[v1]["volume_key"] == "kept" and "qemu" in res[v1]["volume_key_note"]
    assert volume_key(devs / f"volume-{v1}", new[v1]) == old_vk[v1]
    headers_open_with_db_keys(cinder_url, devs, barbican, fixed, [v1, v2])
    for vk in old_vk.values():
        assert vk.hex() not in r.output


def _reencrypting(path) -> int | None:
    """The pid of a cryptsetup reencrypt working on ``path``."""
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmd = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if cmd and cmd[0].endswith(b"cryptsetup") and b"reencrypt" in cmd and str(path).encode() in cmd:
                return int(pid)
    return None


def _in_progress(path) -> bool:
    """The header's metadata says a reencryption is under way (read without cryptsetup's lock)."""
    with open(path, "rb") as handle:
        return b"online-reencrypt" in handle.read(64 * 1024)


@pytest.mark.parametrize("phase", ["start", "data"])
def test_reencryption_killed_midway_is_resumed(kt, sandbox, cinder_url, key_file, fixed_key_hex, tmp_path,
                                               barbican, phase):
    """Killed (keytools and its cryptsetup, as a crashed host) while cryptsetup starts the
    reencryption (an unbound keyslot is left) or while it rewrites the data (cryptsetup's
    --resume-only finishes it); the rerun ends with a new volume key and the same data."""
    fixed = bytes.fromhex(fixed_key_hex)
    devs, state = tmp_path / "devs", tmp_path / "st"
    devs.mkdir()
    (vid,) = seed(cinder_url, volumes=1).volumes
    path = devs / f"volume-{vid}"
    luks_format(path, fixed.hex().encode(), "luks2", size=(400 if phase == "data" else 40) * 1024 * 1024)
    write_data(path, fixed.hex().encode(), DATA)
    env = {"OS_CLIENT_CONFIG_FILE": str(sandbox.clouds_yaml)}
    run = fork_main(rekey_args(cinder_url, key_file, state, devs, "--reencrypt-data"), env)
    child: list[int] = []

    def reencrypting() -> bool:
        pid = _reencrypting(path)
        if pid:
            child.append(pid)
        return bool(pid) and (phase == "start" or _in_progress(path))

    kill_when(run, reencrypting, timeout=60, poll=0.005, must_reach=True)
    try:
        os.kill(child[-1], signal.SIGKILL)  # the host went down: cryptsetup dies too
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 10
    while _reencrypting(path) and time.monotonic() < deadline:
        time.sleep(0.02)
    header = keyslots.Header(str(path), shutil.which("cryptsetup"))
    if phase == "data":
        assert header.reencrypt_pending()
    assert keys(cinder_url, "volumes")[vid] != FIXED_KEY_ID  # swapped before the data step
    r = kt(*rekey_args(cinder_url, key_file, state, devs, "--reencrypt-data", "-f", "json"))
    assert r.exit_code == 0, r.output
    (res,) = json.loads(r.stdout)["volumes"]
    assert res["status"] == "rekeyed" and res["volume_key"] == "rotated"
    assert not header.reencrypt_pending()
    new = barbican.payload(keys(cinder_url, "volumes")[vid]).hex().encode()
    assert read_data(path, new, len(DATA)) == DATA
    headers_open_with_db_keys(cinder_url, devs, barbican, fixed, [vid])
