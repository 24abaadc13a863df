"""The audit over real-world trees: the installed packages' own sample configs (as shipped and with
every default switched on) and a devstack-like tree; every format parses, nothing crashes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from config_checks.audit import audit_roots
from config_checks.model import Severity
from keytools import redaction
from tests.config_checks import cc_samples
from tests.config_checks.cc_formats import render_and_parse
from tests.helpers.cli import invoke

DEVSTACK = Path(__file__).with_name("fixtures") / "devstack"
# what a devstack with the barbican plugin writes (lib/cinder, lib/nova, lib/keystone, barbican's
# devstack/lib/barbican): values that must never appear in a report
DEVSTACK_SECRETS = ["secretservice", "stackqueue", "stackdb", "9f3c6e1a2b7d4c58a0e1f2d3c4b5a697",
                    "dGhpcnR5X3R3b19ieXRlX2tleWJsYWhibGFoYmxhaGg="]


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    return cc_samples.build(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def uncommented(shipped, tmp_path_factory):
    root = tmp_path_factory.mktemp("uncommented") / "samples"
    shutil.copytree(shipped, root)
    cc_samples.uncomment_tree(root)
    return root


@pytest.mark.parametrize("variant", ["shipped", "uncommented"])
def test_installed_samples_audit_without_crash_and_every_format_parses(request, variant):
    samples = request.getfixturevalue(variant)
    report = audit_roots([samples], threshold=Severity.INFO)
    assert report.files_checked >= 6 and not report.incomplete
    render_and_parse(report)
    # upstream's own files are valid oslo.config syntax: no KT002 from the parser on any of them
    assert [f.location.relpath for f in report.findings if f.rule_id == "KT002"] == []
    for fmt in ("json", "sarif", "junit", "text"):
        res = invoke(["audit", str(samples), "--format", fmt, "--severity", "info"])
        assert res.exit_code in (0, 1), res.stderr
        assert "Traceback" not in res.stderr
    assert redaction.redact("true false json") == "true false json"


def test_uncommented_defaults_mask_nothing_but_secrets(uncommented):
    nova = (uncommented / "etc/nova/nova.conf").read_text()
    assert "send_service_user_token = false" in nova  # a secret-looking name with a flag value
    doc = json.loads(render_and_parse(audit_roots([uncommented], threshold=Severity.INFO))["json"])
    assert "***" not in json.dumps(doc)  # nothing in the defaults is a secret worth masking


@pytest.fixture
def devstack(tmp_path):
    root = tmp_path / "devstack"
    shutil.copytree(DEVSTACK, root)
    for f in root.rglob("*"):
        if f.is_file():
            f.chmod(0o644)  # devstack runs as 'stack' with umask 022
    return root


def test_devstack_tree_findings(devstack):
    report = audit_roots([devstack], threshold=Severity.LOW)
    got = sorted({(f.rule_id, f.location.relpath) for f in report.findings})
    assert got == sorted({
        ("KT101", "cinder/cinder.conf"),  # lib/cinder writes fixed_key; the barbican plugin only sets backend
        ("KT107", "cinder/cinder.conf"), ("KT107", "nova/nova.conf"),
        ("KT107", "glance/glance-api.conf"),  # nobody sets [barbican] auth_endpoint
        ("KT201", "nova/nova.conf"),  # glance on barbican, verify_glance_signatures unset
        ("KT301", "swift/proxy-server.conf"),  # devstack does not enable swift encryption
        ("KT402", "barbican/barbican.conf"),  # devstack's public KEK
        ("KT403", "barbican/barbican.conf"),
        ("KT501", "cinder/cinder.conf"), ("KT501", "nova/nova.conf"),
        ("KT501", "glance/glance-api.conf"), ("KT501", "swift/proxy-server.conf"),
        ("KT501", "barbican/barbican.conf"),
    })
    kek = next(f for f in report.findings if f.rule_id == "KT402")
    assert "openstack/barbican:" in kek.message


@pytest.mark.parametrize("fmt", ["text", "json", "sarif", "junit"])
def test_devstack_tree_every_format_parses_and_hides_secrets(devstack, fmt):
    report = audit_roots([devstack], threshold=Severity.INFO)
    out = render_and_parse(report)
    res = invoke(["audit", str(devstack), "--format", fmt, "--severity", "info"])
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    for text in (out[fmt], res.stdout, res.stderr):
        for secret in DEVSTACK_SECRETS:
            assert secret not in text, (fmt, secret)
    if fmt == "json":
        doc = json.loads(res.stdout)
        assert doc["incomplete"] is False
