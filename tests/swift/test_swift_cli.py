"""``keytools swift check`` and ``keytools swift new-key`` against the real sandbox."""

from __future__ import annotations

import base64
import json
import os

import pytest

from keytools.sandbox import configs, processes
from keytools.sandbox import swift as sandbox_swift
from swift_middleware import rootsecrets


def _write_conf(swift_sandbox, tmp_path, keymaster=None, pipeline=sandbox_swift.PIPELINE,
                encryption=None, km_file: dict | None = None, km_mode: int = 0o600):
    state, cfg = swift_sandbox.state, swift_sandbox.config
    sections = sandbox_swift.proxy_sections(state, cfg, cfg.ports["swift"], pipeline, keymaster)
    if encryption:
        sections["filter:encryption"].update(encryption)
    if km_file is not None:
        path = tmp_path / "keymaster.conf"
        path.write_text(configs.ini_text({"kms_keymaster": km_file}))
        path.chmod(km_mode)
        sections["filter:keymaster"] = {"use": "egg:keytools#keymaster", "keymaster_config_path": path}
    conf = tmp_path / "proxy-server.conf"
    conf.write_text(configs.ini_text(sections))
    return conf


def _km_file(swift_sandbox, key_id, **extra):
    section = sandbox_swift.keymaster_section(swift_sandbox.config, key_id)
    section.update(extra)
    return section


def test_check_sandbox_proxy_conf_loads_the_key_and_shows_its_fingerprint(kt, swift_sandbox, root_secret):
    conf = sandbox_swift.swift_dir(swift_sandbox.state) / "proxy-server.conf"
    result = kt("swift", "check", str(conf), "-f", "json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True
    assert [c["ok"] for c in doc["checks"]] == [True] * 6
    (key,) = doc["keys"]
    assert key == {"option": "key_id", "secret_id": None, "key_id": root_secret[0], "algorithm": "AES",
                   "bit_length": 256, "fingerprint": rootsecrets.fingerprint(root_secret[1]), "active": True}
    table = kt("swift", "check", str(conf))
    assert table.exit_code == 0 and "SWIFT006 root secrets" in table.stdout
    assert root_secret[1].hex() not in table.output + result.output


@pytest.mark.parametrize("variant, check_id, words", [
    ("order", "SWIFT001", "must end with '<keymaster> encryption proxy-logging proxy-server'"),
    ("disabled", "SWIFT003", "disable_encryption = true"),
    ("kms", "SWIFT002", "switch to use = egg:keytools#keymaster"),
    ("loose-file", "SWIFT004", "has mode 0644"),
    ("weak-key", "SWIFT006", "is AES with 128 bits"),
    ("bad-option", "SWIFT005", "startup = maybe is not one of"),
    ("malformed", "SWIFT005", "Malformed multi-key option name key_id1"),
])
def test_check_reports_each_problem_with_exit_1(kt, swift_sandbox, root_secret, make_secret, tmp_path,
                                                variant, check_id, words):
    key_id = root_secret[0]
    if variant == "order":
        conf = _write_conf(swift_sandbox, tmp_path, pipeline=sandbox_swift.PIPELINE.replace(
            "keymaster encryption", "encryption keymaster"))
    elif variant == "disabled":
        conf = _write_conf(swift_sandbox, tmp_path, encryption={"disable_encryption": "true"})
    elif variant == "kms":
        conf = _write_conf(swift_sandbox, tmp_path, keymaster={"use": "egg:swift#kms_keymaster"})
    elif variant == "loose-file":
        conf = _write_conf(swift_sandbox, tmp_path, km_file=_km_file(swift_sandbox, key_id), km_mode=0o644)
    elif variant == "weak-key":
        conf = _write_conf(swift_sandbox, tmp_path,
                           km_file=_km_file(swift_sandbox, make_secret(os.urandom(16), bits=128)))
    elif variant == "malformed":  # a typo for key_id_1: Swift refuses to start on it, so does check
        conf = _write_conf(swift_sandbox, tmp_path, km_file=_km_file(swift_sandbox, key_id, key_id1=key_id))
    else:
        conf = _write_conf(swift_sandbox, tmp_path, km_file=_km_file(swift_sandbox, key_id, startup="maybe"))
    result = kt("swift", "check", str(conf), "-f", "json")
    assert result.exit_code == 1, result.output
    failed = [c for c in json.loads(result.stdout)["checks"] if not c["ok"]]
    assert [c["check"].split()[0] for c in failed] == [check_id]
    assert words in failed[0]["message"]
    assert "check(s) failed" in result.stderr and "Traceback" not in result.stderr


def test_check_exit_codes_unreachable_refused_unreadable(kt, swift_sandbox, root_secret, tmp_path):
    closed = f"http://127.0.0.1:{processes.free_ports(1)[0]}"
    conf = _write_conf(swift_sandbox, tmp_path,
                       km_file=_km_file(swift_sandbox, root_secret[0], barbican_endpoint=closed))
    result = kt("swift", "check", str(conf))
    assert result.exit_code == 4 and "cannot load key_id" in result.stderr

    conf = _write_conf(swift_sandbox, tmp_path,
                       km_file=_km_file(swift_sandbox, root_secret[0], password="not-the-password"))
    result = kt("swift", "check", str(conf))
    assert result.exit_code == 5 and "Keystone refused the keymaster credentials" in result.stderr
    assert "not-the-password" not in result.output

    garbage = tmp_path / "garbage.conf"
    garbage.write_text("this is not an ini file\n")
    result = kt("swift", "check", str(garbage))
    assert result.exit_code == 2 and "garbage.conf" in result.stderr
    assert kt("swift", "check", str(tmp_path / "missing.conf")).exit_code == 2


def test_new_key_orders_aes256_with_acl_and_the_rotated_config_checks(kt, swift_sandbox, root_secret,
                                                                       barbican, tmp_path):
    conf = _write_conf(swift_sandbox, tmp_path, km_file=_km_file(swift_sandbox, root_secret[0]))
    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--proxy-conf", str(conf),
                "--acl-user", "swift", "-f", "json")
    assert result.exit_code == 0, result.output
    (key,) = json.loads(result.stdout)["keys"]
    assert key["option"] == "key_id_2" and key["bit_length"] == 256
    rotated = _write_conf(swift_sandbox, tmp_path, km_file=_km_file(
        swift_sandbox, root_secret[0], key_id_2=key["key_id"], active_root_secret_id="2"))
    checked = kt("swift", "check", str(rotated), "-f", "json")
    assert checked.exit_code == 0, checked.output
    keys = {k["option"]: k for k in json.loads(checked.stdout)["keys"]}
    assert keys["key_id_2"]["active"] and not keys["key_id"]["active"]
    assert keys["key_id_2"]["fingerprint"] == key["fingerprint"]


def test_new_key_refusals(kt, swift_sandbox, tmp_path):
    assert kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--migrate-from-inline").exit_code == 2
    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--secret-id", "bad id!")
    assert result.exit_code == 2 and "--secret-id" in result.stderr
    ours = _write_conf(swift_sandbox, tmp_path)
    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--migrate-from-inline",
                "--proxy-conf", str(ours))
    assert result.exit_code == 2 and "egg:swift#keymaster" in result.stderr
    short = base64.b64encode(os.urandom(16)).decode()
    inline = _write_conf(swift_sandbox, tmp_path, keymaster={"use": "egg:swift#keymaster",
                                                             "encryption_root_secret": short})
    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--migrate-from-inline",
                "--proxy-conf", str(inline))
    assert result.exit_code == 2 and "at least 32 bytes" in result.stderr
    assert short not in result.output
    # 'cinder' has no creator role: Barbican refuses the order (exit 5, not a traceback).
    result = kt("--os-cloud", "sandbox-cinder", "swift", "new-key")
    assert result.exit_code == 5, result.output


def test_new_key_refuses_malformed_multi_key_names_with_swifts_message(kt, swift_sandbox, root_secret, tmp_path):
    conf = _write_conf(swift_sandbox, tmp_path, km_file=_km_file(swift_sandbox, root_secret[0],
                                                                 key_id_=root_secret[0]))
    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--proxy-conf", str(conf))
    assert result.exit_code == 2 and "Malformed multi-key option name key_id_" in result.stderr
    secret = base64.b64encode(os.urandom(32)).decode()
    inline = _write_conf(swift_sandbox, tmp_path, keymaster={"use": "egg:swift#keymaster",
                                                             "encryption_root_secret1": secret})
    result = kt("--os-cloud", "sandbox-admin", "swift", "new-key", "--migrate-from-inline",
                "--proxy-conf", str(inline))
    assert result.exit_code == 2, result.output
    assert "Malformed multi-key option name encryption_root_secret1" in result.stderr
    assert secret not in result.output and "Traceback" not in result.output


def test_swift_help_reads_like_a_man_page(kt):
    result = kt("swift", "--help")
    assert result.exit_code == 0 and "check" in result.stdout and "new-key" in result.stdout
    assert "two-stage rotation" in kt("swift", "new-key", "--help").stdout
