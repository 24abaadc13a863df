"""Ending a rotation on proxies that run Swift's own keymasters, against the sandbox's real Swift.

Swift's ``keymaster`` (inline root secrets in its ``keymaster_config_path`` file, section
``[keymaster]``) and Swift's ``kms_keymaster`` (Barbican through castellan, ``[kms_keymaster]``):
key-usage counts, reencrypt rewrites through the proxy's own keymaster, retire-key edits Swift's own
config form, and a proxy started from the edited config (Swift's own classes, only the new root
secret) reads every object back byte for byte with its metadata and timestamps.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from rotation_helpers import VERSIONING, snapshot, write_workload
from swift_helpers import ProxyProcess, swift_keymaster

from keytools.sandbox import configs
from keytools.sandbox import swift as sandbox_swift

INLINE_ACCOUNT = "AUTH_rotswiftkm"
KMS_ACCOUNT = "AUTH_rotkms"


def _b64(secret: bytes) -> str:
    return base64.b64encode(secret).decode()


def _start(proxies, *made: ProxyProcess) -> None:
    proxies.extend(made)
    for proxy in made:
        proxy.wait_ready()


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _counts(kt, conf, account, state) -> dict[str, dict]:
    doc = _json(kt("swift", "key-usage", "--proxy-config", str(conf), "--account", account,
                   "--state-dir", str(state), "-f", "json"))
    return {k["option"]: k for k in doc["keys"]}


def _rotate(kt, conf, account, state, old: str, new: str, kmfile, section: str) -> tuple[int, str]:
    """key-usage, reencrypt, key-usage, retire-key --config; returns (objects moved, all output)."""
    args = ["--proxy-config", str(conf), "--account", account, "--state-dir", str(state)]
    seen = []
    before = _counts(kt, conf, account, state)
    moved = before[old]["objects"]
    assert moved > 10 and before[new]["active"] is True and before[new]["objects"] == 0
    refused = kt("swift", "retire-key", old, *args)
    assert refused.exit_code == 6 and f"still encrypted under {old}" in refused.stderr
    done = _json(kt("swift", "reencrypt", *args, "--from-key-id", old, "-f", "json"))
    assert done["rewritten"] == moved and done["failed"] == 0
    after = _counts(kt, conf, account, state)
    assert after[old]["objects"] == 0 and after[new]["objects"] == moved
    printed = kt("swift", "retire-key", old, *args)
    assert printed.exit_code == 0, printed.output
    assert f"[{section}]" in printed.stdout and "active_root_secret_id = 2" in printed.stdout
    edited = kt("swift", "retire-key", old, *args, "--config", "-f", "json")
    doc = _json(edited)
    assert doc["file"] == str(kmfile) and doc["section"] == section and doc["edited"] is True
    seen += [refused.output, printed.output, edited.output]
    return moved, "\n".join(seen)


@pytest.fixture(scope="module")
def inline(swift_sandbox, swift_workdir, proxies):
    state, cfg = swift_sandbox.state, swift_sandbox.config
    work = swift_workdir / "swift-keymaster"
    work.mkdir(parents=True, exist_ok=True)
    old, new = os.urandom(32), os.urandom(48)
    kmfile = work / "keymaster.conf"
    kmfile.write_text(f"# operator comment\n[keymaster]\nencryption_root_secret = {_b64(old)}\n"
                      f"encryption_root_secret_2 = {_b64(new)}\nactive_root_secret_id = 2\n")
    kmfile.chmod(0o600)
    writer = ProxyProcess(state, cfg, work, "km-old", swift_keymaster(old), overrides=VERSIONING)
    both = ProxyProcess(state, cfg, work, "km-both", {"use": "egg:swift#keymaster",
                                                      "keymaster_config_path": str(kmfile)},
                        overrides=VERSIONING)
    _start(proxies, writer, both)
    write_workload(writer.url, INLINE_ACCOUNT, "s", sizes=(0, 70_000))
    return {"old": old, "new": new, "kmfile": kmfile, "both": both, "work": work,
            "before": snapshot(both.url, INLINE_ACCOUNT)}


def test_swift_keymaster_rotation_ends_and_only_the_new_secret_reads_everything(kt, inline, swift_sandbox,
                                                                                proxies):
    work, kmfile = inline["work"], inline["kmfile"]
    moved, said = _rotate(kt, inline["both"].conf, INLINE_ACCOUNT, work / "state", "encryption_root_secret",
                          "encryption_root_secret_2", kmfile, "keymaster")
    for secret in (inline["old"], inline["new"]):  # inline root secrets are never shown
        assert _b64(secret) not in said and secret.hex() not in said
    assert "encryption_root_secret_2 = <unchanged>" in said and "the retired secret" in said
    text = kmfile.read_text()
    assert text.startswith("# operator comment\n[keymaster]\n")
    assert "encryption_root_secret =" not in text and f"encryption_root_secret_2 = {_b64(inline['new'])}" in text
    assert kmfile.stat().st_mode & 0o777 == 0o600
    (backup,) = work.glob("keymaster.conf.keytools-*.bak")
    assert backup.stat().st_mode & 0o777 == 0o600
    # Swift's own keymaster, started from the edited file: only the new root secret.
    reader = ProxyProcess(swift_sandbox.state, swift_sandbox.config, work, "km-new",
                          {"use": "egg:swift#keymaster", "keymaster_config_path": str(kmfile)},
                          overrides=VERSIONING)
    _start(proxies, reader)
    assert snapshot(reader.url, INLINE_ACCOUNT) == inline["before"]
    assert moved == 18  # plain 2n+4 (n=2) minus size-0, segments 5, versions 2+1, history 3 + 1


def test_swift_keymaster_config_errors_are_one_line(kt, inline, tmp_path):
    conf = tmp_path / "proxy.conf"
    text = inline["both"].conf.read_text()
    conf.write_text(text.replace(f"keymaster_config_path = {inline['kmfile']}",
                                 f"keymaster_config_path = {inline['kmfile']}\nencryption_root_secret = "
                                 f"{_b64(os.urandom(32))}"))
    r = kt("swift", "key-usage", "--proxy-config", str(conf), "--account", INLINE_ACCOUNT)
    assert r.exit_code == 2 and "keymaster_config_path is set, but there are other config options " \
        "specified: encryption_root_secret" in r.stderr
    bad = tmp_path / "bad.conf"
    bad.write_text("[keymaster]\nencryption_root_secret = c2hvcnQ=\n")
    conf.write_text(text.replace(f"keymaster_config_path = {inline['kmfile']}", f"keymaster_config_path = {bad}"))
    r = kt("swift", "reencrypt", "--proxy-config", str(conf), "--account", INLINE_ACCOUNT,
           "--from-key-id", "encryption_root_secret")
    assert r.exit_code == 2 and "must be a base64 encoding of at least 32 raw bytes" in r.stderr
    assert "c2hvcnQ" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def kms(swift_sandbox, swift_workdir, proxies, make_secret):
    state, cfg = swift_sandbox.state, swift_sandbox.config
    work = swift_workdir / "kms-keymaster"
    work.mkdir(parents=True, exist_ok=True)
    old, new = os.urandom(32), os.urandom(32)
    key_a, key_b = make_secret(old), make_secret(new)
    barbican = swift_sandbox.url("barbican")
    kmfile = work / "kms.conf"
    kmfile.write_text(configs.ini_text({"kms_keymaster": {
        **sandbox_swift.keymaster_section(cfg, key_a), "key_id_2": key_b, "active_root_secret_id": "2",
        "barbican_endpoint": barbican}}))
    kmfile.chmod(0o600)
    writer = ProxyProcess(state, cfg, work, "kms-old", {
        "use": "egg:swift#kms_keymaster", **sandbox_swift.keymaster_section(cfg, key_a),
        "barbican_endpoint": barbican}, overrides=VERSIONING)
    both = ProxyProcess(state, cfg, work, "kms-both", {"use": "egg:swift#kms_keymaster",
                                                      "keymaster_config_path": str(kmfile)},
                        overrides=VERSIONING)
    _start(proxies, writer, both)
    write_workload(writer.url, KMS_ACCOUNT, "k", sizes=(0, 70_000))
    return {"new": new, "key_a": key_a, "key_b": key_b, "kmfile": kmfile, "both": both, "work": work,
            "before": snapshot(both.url, KMS_ACCOUNT)}


def test_kms_keymaster_rotation_ends_and_swift_reads_it_with_the_new_secret_only(kt, kms, swift_sandbox,
                                                                                  proxies):
    work, kmfile = kms["work"], kms["kmfile"]
    moved, said = _rotate(kt, kms["both"].conf, KMS_ACCOUNT, work / "state", "key_id", "key_id_2",
                          kmfile, "kms_keymaster")
    assert moved == 18 and f"key_id_2 = {kms['key_b']}" in said and "password" not in said
    text = kmfile.read_text()
    assert f"key_id = {kms['key_a']}" not in text and f"key_id_2 = {kms['key_b']}" in text
    assert "password = " in text  # every other option stays
    cfg = swift_sandbox.config
    from_file = ProxyProcess(swift_sandbox.state, cfg, work, "kms-new",
                             {"use": "egg:swift#kms_keymaster", "keymaster_config_path": str(kmfile)},
                             overrides=VERSIONING)
    # Swift's plain keymaster with nothing but the new root secret's bytes.
    only_new = ProxyProcess(swift_sandbox.state, cfg, work, "kms-inline-new", {
        "use": "egg:swift#keymaster", "encryption_root_secret_2": _b64(kms["new"]),
        "active_root_secret_id": "2"}, overrides=VERSIONING)
    _start(proxies, from_file, only_new)
    assert snapshot(from_file.url, KMS_ACCOUNT) == kms["before"]
    assert snapshot(only_new.url, KMS_ACCOUNT) == kms["before"]
