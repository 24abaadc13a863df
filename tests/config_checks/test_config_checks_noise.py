"""Less noise on real trees: one KT002 per file, KT107 only where castellan really talks to
Barbican (cinder, nova-compute and glance-api alike), no endpoint comparisons of placeholders."""

from __future__ import annotations

from pathlib import Path

import pytest

from config_checks.audit import audit_roots
from config_checks.model import Severity

FILES = {"cinder": "cinder/cinder.conf", "nova": "nova/nova.conf", "glance_api": "glance/glance-api.conf",
         "barbican": "barbican/barbican.conf"}
COMPUTE = "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n"


def etc(tmp_path: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        f = tmp_path / "node-a" / "etc" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(text)
        f.chmod(0o600)
    return tmp_path / "node-a"


def ids(root: Path, rule: str, threshold: Severity = Severity.INFO) -> list:
    return [f for f in audit_roots([root], threshold=threshold).findings if f.rule_id == rule]


def test_one_kt002_per_file_with_the_first_lines(tmp_path):
    bad = "".join(f"garbage line {i}\n" for i in range(10))
    root = etc(tmp_path, {"cinder/cinder.conf": "[DEFAULT]\ndebug = true\n" + bad,
                          "cinder/cinder.conf.d/10-extra.conf": "oops\n[ok]\nx = 1\nmore garbage\n"})
    hits = ids(root, "KT002")
    assert [(Path(f.location.path).name, f.location.line, f.actual) for f in hits] == [
        ("cinder.conf", 3, "lines 3, 4, 5 and 7 more"), ("10-extra.conf", 1, "lines 1, 4")]
    assert hits[0].message.startswith("10 lines oslo.config cannot parse: line 3: ")
    assert hits[0].message.endswith("; and 7 more")


def test_malformed_header_does_not_leak_the_rest_of_its_line(tmp_path):
    root = etc(tmp_path, {"cinder/cinder.conf": "[database]connection=mysql://u:Hunter2Hunter2@db/c\n"})
    (hit,) = ids(root, "KT002")
    assert "Hunter2Hunter2" not in hit.message + hit.actual and hit.actual == "line 1"


# --- KT107: where castellan really talks to Barbican -----------------------------------------

@pytest.mark.parametrize("service,extra", [("cinder", ""), ("nova", COMPUTE), ("glance_api", "")])
def test_kt107_same_for_cinder_nova_compute_and_glance(tmp_path, service, extra):
    """No [key_manager] backend: castellan's default (barbican) for all three services alike."""
    without = etc(tmp_path / "a", {FILES[service]: extra + "[key_manager]\n"})
    assert ids(without, "KT107") == []  # no Barbican anywhere in the audited trees: nothing to say
    deployed = etc(tmp_path / "b", {FILES[service]: extra + "[key_manager]\n",
                                    FILES["barbican"]: "[DEFAULT]\nhost_href = https://b:9311\n"})
    assert [f.location.option for f in ids(deployed, "KT107")] == ["auth_endpoint"]
    named = etc(tmp_path / "c", {FILES[service]: extra + "[key_manager]\nbackend = barbican\n"})
    assert len(ids(named, "KT107")) == 1  # the backend is named: Barbican is meant to be used
    ok = etc(tmp_path / "d", {FILES[service]: extra + "[key_manager]\nbackend = barbican\n"
                                                      "[barbican]\nauth_endpoint = https://k:5000/v3\n"})
    assert ids(ok, "KT107") == []


@pytest.mark.parametrize("backend", ["vault", "cinder.keymgr.conf_key_mgr.ConfKeyManager"])
def test_kt107_not_for_other_backends(tmp_path, backend):
    root = etc(tmp_path, {FILES["cinder"]: f"[key_manager]\nbackend = {backend}\n",
                          FILES["barbican"]: "[DEFAULT]\n"})
    assert ids(root, "KT107") == []


def test_kt107_not_for_nova_services_that_never_call_castellan(tmp_path):
    """TripleO's nova (api/conductor/scheduler) and nova_metadata do not open the key manager."""
    pg = tmp_path / "ctl" / "var/lib/config-data/puppet-generated"
    for svc in ("nova", "nova_metadata"):
        f = pg / svc / "etc/nova/nova.conf"
        f.parent.mkdir(parents=True)
        f.write_text("[key_manager]\nbackend = barbican\n[barbican]\nverify_ssl = false\n"
                     "barbican_endpoint = http://barbican.example.com:9311\n")
    report = audit_roots([tmp_path / "ctl"], threshold=Severity.INFO)
    assert not {"KT105", "KT107", "KT108"} & {f.rule_id for f in report.findings}
    # nova-api with ephemeral storage encryption does use Barbican
    f = pg / "nova/etc/nova/nova.conf"
    f.write_text(f.read_text() + "[ephemeral_storage_encryption]\nenabled = true\n")
    report = audit_roots([tmp_path / "ctl"], threshold=Severity.INFO)
    assert {(x.rule_id, x.location.relpath) for x in report.findings if x.rule_id in ("KT105", "KT107")} == {
        ("KT105", "nova/etc/nova/nova.conf"), ("KT107", "nova/etc/nova/nova.conf")}


# --- placeholders are not endpoints --------------------------------------------------------------

@pytest.mark.parametrize("placeholder", ["{{ barbican_url }}", "https://{{ vip }}:9311",
                                         "%{hiera('barbican_api_url')}", "https://%{::fqdn}:9311"])
def test_endpoint_checks_skip_template_placeholders(tmp_path, placeholder):
    real = "[key_manager]\nbackend = barbican\n[barbican]\nbarbican_endpoint = https://barbican.example.com:9311\n" \
           "auth_endpoint = https://keystone.example.com:5000/v3\n"
    templ = (f"[key_manager]\nbackend = barbican\n[barbican]\nbarbican_endpoint = {placeholder}\n"
             f"auth_endpoint = {placeholder.replace('9311', '5000')}\n"
             f"[keystone_authtoken]\nwww_authenticate_uri = https://keystone.example.com:5000\n")
    root = etc(tmp_path, {FILES["cinder"]: real, "nova/nova.conf": COMPUTE + templ,
                          FILES["glance_api"]: real.replace("https://barbican", "http://barbican") if False else real})
    report = audit_roots([root], threshold=Severity.INFO)
    assert not [f for f in report.findings if f.rule_id in ("KT106", "KT108")], report.findings
    # and the same file with two real, different endpoints is still reported
    root2 = etc(tmp_path / "x", {FILES["cinder"]: real, FILES["glance_api"]: real,
                                 "nova/nova.conf": COMPUTE + templ.replace(placeholder, "https://old.example.com:9311")})
    assert [f.rule_id for f in audit_roots([root2]).findings if f.rule_id == "KT106"]


def test_plain_http_placeholder_is_skipped(tmp_path):
    root = etc(tmp_path, {FILES["glance_api"]: "[key_manager]\nbackend = barbican\n[barbican]\n"
                                               "barbican_endpoint = http://{{ internal_vip }}:9311\n"
                                               "auth_endpoint = https://k.example.com:5000/v3\n"})
    assert ids(root, "KT108") == []
