"""Secret-looking options with short, common or hostile values: masked where they are shown, never
as substrings everywhere, so every format still parses and no real secret leaks (issue 12)."""

from __future__ import annotations

import json
import secrets as pysecrets

import pytest

from config_checks import formats, secrets
from config_checks.audit import audit_roots
from config_checks.model import Severity
from keytools import redaction
from tests.config_checks.cc_formats import render_and_parse
from tests.config_checks.cc_treegen import NodeSpec, build
from tests.helpers.cli import invoke

HOSTILE = 'quo"te\'s <b>&amp; back\\slash \u00fc\u20ac\U0001f511'
# Options a real tree has whose names look secret but whose values are flags or common words.
TRICKY = """
[service_user]
send_service_user_token = true
[DEFAULT]
admin_token = true
[tricky]
password = 1
secret = json
auth_token = null
api_secret = false
db_password = {hostile}
"""


def _append(path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(text)


@pytest.fixture
def tricky(tmp_path):
    """A tree whose findings must show the tricky values (fixed_key, KEK, root secret, backend)."""
    tree = build(tmp_path / "t", [NodeSpec("ctl-0", "controller", {"swift_inline_secret", "conf_key_manager"}),
                                  NodeSpec("cmp-0", "compute")])
    pg = tree.pg("ctl-0")
    long_pw = pysecrets.token_urlsafe(24)
    tree.secrets.append(long_pw)
    for rel in ("cinder/etc/cinder/cinder.conf", "nova/etc/nova/nova.conf", "glance_api/etc/glance/glance-api.conf",
                "barbican/etc/barbican/barbican.conf"):
        _append(pg / rel, TRICKY.format(hostile=HOSTILE))
    # short and hostile secrets in places whose findings show the value (masked by position)
    _append(pg / "cinder/etc/cinder/cinder.conf", f"\n[keymgr]\nfixed_key = true\n\n[key_manager]\nbackend = {HOSTILE}\n")
    _append(tree.pg("cmp-0") / "nova_libvirt/etc/nova/nova.conf", "\n[key_manager]\nfixed_key = 1\n"
            f"\n[barbican]\nbarbican_endpoint = https://admin:{long_pw}@barbican.example.com:9311\n")
    _append(pg / "barbican/etc/barbican/barbican.conf", "\n[simple_crypto_plugin]\nkek = json\nkek = true\n")
    _append(pg / "swift/etc/swift/proxy-server.conf", f"\n[filter:kms_keymaster]\nencryption_root_secret_a = {HOSTILE}\n"
            "encryption_root_secret_b = true\n")
    return tree


def test_every_format_parses_and_shows_common_words_unmasked(tricky):
    report = audit_roots([tricky.base], per_node=True, threshold=Severity.INFO)
    assert {"KT101", "KT102", "KT106", "KT304", "KT305", "KT402"} <= {f.rule_id for f in report.findings}
    out = render_and_parse(report)
    doc = json.loads(out["json"])
    assert doc["incomplete"] is False  # "false" was not turned into ***
    for fmt, text in out.items():
        for secret in tricky.secrets:
            assert secret not in text, (fmt, secret)
        assert "***@barbican.example.com" in text  # the URL's password, masked at its position


def test_secret_values_are_masked_by_position(tricky):
    report = audit_roots([tricky.base], per_node=True, threshold=Severity.INFO)
    for f in report.findings:
        if f.location.option and secrets.is_secret_option(f.location.option) and f.actual is not None:
            assert f.actual.startswith(("set, ", "sha256:")), f
    kt402 = [f for f in report.findings if f.rule_id == "KT402"]
    assert {f.actual.split(" (")[0] for f in kt402} == {secrets.fingerprint("json"), secrets.fingerprint("true")}
    kt305 = {f.location.option: f.actual for f in report.findings if f.rule_id == "KT305"}
    assert HOSTILE not in "".join(kt305.values()) and set(kt305) >= {"encryption_root_secret_a",
                                                                   "encryption_root_secret_b"}
    backend = [f for f in report.findings if f.rule_id == "KT102"]
    assert HOSTILE in [f.actual for f in backend]  # not a secret: shown, and every format still parses


def test_audit_registers_no_config_value_for_global_redaction(tricky):
    report = audit_roots([tricky.base], per_node=True, threshold=Severity.INFO)
    formats.render(report, "json")
    for value in ["true", "json", "1", "null", *tricky.secrets]:
        assert redaction.redact(f"x {value} y") == f"x {value} y"


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit"])
def test_through_the_cli(tricky, fmt):
    res = invoke(["audit", "--per-node", str(tricky.base), "--format", fmt, "--severity", "info"])
    assert res.exit_code == 1, res.stderr
    for secret in tricky.secrets:
        assert secret not in res.stdout + res.stderr
    if fmt != "text":
        if fmt == "junit":
            import xml.etree.ElementTree as ET
            ET.fromstring(res.stdout)
        else:
            json.loads(res.stdout)
    assert "Traceback" not in res.stderr


def test_global_redaction_ignores_short_and_common_values():
    for value in ["true", "False", "json", "1", "12345", "null", "secret", "password", "abc"]:
        redaction.register_secret(value)
    doc = json.dumps({"ok": True, "v": None, "format": "json", "n": 12345, "pw": "password"})
    assert redaction.redact(doc) == doc
    redaction.register_secret("s3cr3t-pa55")
    assert redaction.redact("pw s3cr3t-pa55") == "pw ***"


def test_a_registered_secret_cannot_break_a_report(tricky):
    """Even a registered secret that occurs in the report is masked inside the strings, not across
    JSON/XML syntax: redaction runs on the fields before serialisation."""
    report = audit_roots([tricky.base], per_node=True, threshold=Severity.INFO)
    redaction.register_secret('", "severity')  # would cut through the JSON if masked afterwards
    redaction.register_secret("ctl-0/var/lib")
    out = render_and_parse(report)
    assert "ctl-0/var/lib" not in out["json"]


def test_fixed_key_retire_diff_masks_short_values_by_position(tmp_path):
    root = tmp_path / "node-a" / "etc"
    for rel, value in (("cinder/cinder.conf", "00"), ("nova/nova.conf", "00")):
        f = root / rel
        f.parent.mkdir(parents=True)
        f.write_text(f"[DEFAULT]\ndebug = 00\n[key_manager]\nfixed_key = {value}\n")
    res = invoke(["fixed-key", "retire", str(tmp_path / "node-a"), "--dry-run"])
    assert res.exit_code == 0, res.stderr
    assert "-fixed_key = ***" in res.stdout and " debug = 00" in res.stdout


@pytest.mark.parametrize("name,secret", [
    ("admin_password", True), ("memcache_secret_key", True), ("application_credential_secret", True),
    ("root_token_id", True), ("fixed_key", True), ("kek", True), ("encryption_root_secret_2", True),
    ("admin_token", True), ("hmac_keys", True), ("login", True), ("passphrase", True),
    # seen in upstream's sample configs: they describe secrets but hold none
    ("password_length", False), ("chap_password_len", False), ("max_allowed_secret_in_bytes", False),
    ("quota_secrets", False), ("enabled_secretstore_plugins", False), ("rbd_secret_uuid", False),
    ("supported_tpm_secret_security", False), ("send_service_user_token", False), ("ssl_key_file", False),
])
def test_secret_option_names(name, secret):
    assert secrets.is_secret_option(name) is secret


def test_flag_values_do_not_make_a_file_hold_a_secret():
    assert not secrets.holds_secret("send_service_user_token", "True")
    assert not secrets.holds_secret("admin_token", "false")
    assert secrets.holds_secret("password", "1")  # weak, but a password
    assert secrets.holds_secret("sql_connection", "mysql+pymysql://b:pw@db/barbican")
