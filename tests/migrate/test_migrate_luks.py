"""``migrate verify --luks``: real LUKS1/LUKS2 headers made by cryptsetup luksFormat on image files,
keyed with the hex of fixed_key as os-brick derives it, after a real migration to the sandbox's
Barbican. Headers keyed otherwise, non-LUKS files, missing, dangling and unreadable paths, and a
missing cryptsetup are reported, never written to."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess

import pytest

from migrate import luks as lk
from tests.helpers.db_seed import keys, seed
from tests.migrate.luks_helpers import luks_format

pytestmark = pytest.mark.skipif(shutil.which("cryptsetup") is None, reason="cryptsetup not installed")


def digest(path) -> tuple[str, float]:
    return hashlib.sha256(open(path, "rb").read()).hexdigest(), os.stat(path).st_mtime


def _args(url, key_file, state, *extra):
    return ["--os-cloud", "sandbox-demo", "migrate", "verify", "--db-url", url, "--fixed-key-file", str(key_file),
            "--state-dir", str(state), *extra]


@pytest.fixture
def migrated(kt, cinder_url, key_file, tmp_path):
    rows = seed(cinder_url, volumes=6)
    state = tmp_path / "st"
    res = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file",
             str(key_file), "--state-dir", str(state), "--concurrency", "2")
    assert res.exit_code == 0, res.output
    left = seed(cinder_url, volumes=1)  # still on the all-zeros id: tested with fixed_key itself
    return rows.volumes, left.volumes[0], state


def test_verify_luks_template_reports_each_volume_and_writes_nothing(kt, cinder_url, key_file, fixed_key_hex,
                                                                       migrated, tmp_path):
    vols, zero_vol, state = migrated
    good = fixed_key_hex.lower().encode()  # binascii.hexlify(key bytes)
    devs = tmp_path / "devs"
    devs.mkdir()
    path = {v: devs / f"volume-{v}" for v in [*vols, zero_vol]}
    luks_format(path[vols[0]], good, "luks1")
    luks_format(path[vols[1]], good, "luks2")
    luks_format(path[vols[2]], b"0123456789abcdef" * 4, "luks2")  # another key
    path[vols[3]].write_bytes(b"\0" * 65536)  # not LUKS
    # vols[4]: no device at all
    path[vols[5]].symlink_to(devs / "gone")  # dangling
    luks_format(path[zero_vol], good, "luks2")
    before = {v: digest(p) for v, p in path.items() if p.exists()}
    res = kt(*_args(cinder_url, key_file, state, "--luks", str(devs / "volume-{id}"), "-f", "json"))
    assert res.exit_code == 1, res.output
    luks = {r["volume_id"]: r for r in json.loads(res.stdout)["luks"]}
    assert luks[vols[0]]["result"] == "opens" and luks[vols[1]]["result"] == "opens"
    assert luks[vols[2]]["result"] == "does not open"
    assert luks[vols[3]]["result"] == "not LUKS"
    assert luks[vols[4]]["result"] == "missing"
    assert luks[vols[5]]["result"] == "missing" and "dangling symlink" in luks[vols[5]]["detail"]
    assert luks[zero_vol]["result"] == "opens" and luks[zero_vol]["key_id"] == lk_zero()
    current = keys(cinder_url, "volumes")
    assert luks[vols[0]]["key_id"] == current[vols[0]] != lk_zero()  # the Barbican secret was used
    assert "4 LUKS header(s) not opened by their key" in res.stderr
    assert {v: digest(p) for v, p in path.items() if p.exists()} == before  # never written
    assert fixed_key_hex not in res.output and fixed_key_hex.upper() not in res.output
    # The table form, and a single explicit volume that opens: exit 0.
    res = kt(*_args(cinder_url, key_file, state, "--luks", f"{vols[1]}={path[vols[1]]}"))
    assert res.exit_code == 0, res.output
    assert "LUKS: 1 of 1 volume header(s) open with their key." in res.stdout and "opens" in res.stdout
    res = kt(*_args(cinder_url, key_file, state, "--luks", f"{vols[2]}={path[vols[2]]}",
                    "--luks", f"no-such-volume={path[vols[1]]}", "-f", "json"))
    results = {r["volume_id"]: r["result"] for r in json.loads(res.stdout)["luks"]}
    assert results == {vols[2]: "does not open", "no-such-volume": "no key"} and res.exit_code == 1


def lk_zero() -> str:
    from keytools.cinder_db import FIXED_KEY_ID

    return FIXED_KEY_ID


def test_unreadable_path_as_an_unprivileged_user(tmp_path, fixed_key_hex):
    """root reads anything, so the check runs in a child that dropped to nobody."""
    if os.geteuid() != 0:
        pytest.skip("needs root to drop to nobody")
    locked = tmp_path / "locked"
    locked.mkdir()
    luks_format(locked / "volume-x", fixed_key_hex.encode())
    (locked / "volume-x").chmod(0o600)
    os.chmod(tmp_path, 0o755)
    locked.chmod(0o700)  # nobody may not enter
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgid(65534)
            os.setuid(65534)
            result, detail = lk.try_header(str(locked / "volume-x"), bytes.fromhex(fixed_key_hex),
                                           shutil.which("cryptsetup") or "cryptsetup")
            os.write(write_fd, json.dumps([result, detail]).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    data = os.read(read_fd, 4096)
    os.waitpid(pid, 0)
    os.close(read_fd)
    result, detail = json.loads(data)
    assert result == "unreadable" and "ermission denied" in detail
    # a directory is not a volume either
    assert lk.try_header(str(tmp_path), b"k", "cryptsetup")[0] == "unreadable"


def test_bad_luks_input_is_refused_before_anything(kt, cinder_url, key_file, tmp_path, sandbox):
    seed(cinder_url, volumes=1)
    res = kt(*_args(cinder_url, key_file, tmp_path, "--luks", str(tmp_path / "one-file.img")))
    assert res.exit_code == 2 and "names no volume" in res.stderr and "Traceback" not in res.output
    res = kt(*_args(cinder_url, key_file, tmp_path, "--luks", str(tmp_path / "volume-{id}")),
             env={"PATH": str(tmp_path / "empty-bin")})
    assert res.exit_code == 2, res.output
    assert "cryptsetup is not installed or not on PATH" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.output
    res = kt("--os-cloud", "sandbox-demo", "migrate", "verify", "--service", "glance", "--glance-cloud",
             "sandbox-admin", "--fixed-key-file", str(key_file), "--state-dir", str(tmp_path), "--luks",
             str(tmp_path / "volume-{id}"))
    assert res.exit_code == 2 and "no Cinder database" in res.stderr


def test_passphrase_is_os_brick_s():
    """Compared with os-brick's own function, in a child (os-brick imports eventlet)."""
    import sys

    code = ("from castellan.common.objects import symmetric_key as s; from os_brick import utils; "
            "print(utils.get_passphrase_from_secret(s.SymmetricKey('AES', 256, bytes(range(32)))))")
    theirs = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()
    assert lk.passphrase(bytes(range(32))).decode() == theirs
