"""Every published sample KEK and Swift root secret in config_checks/data/public_secrets.json is
flagged (KT402, KT305), with its source named; the list is well-formed and cited."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path

import pytest

from config_checks import public_secrets
from config_checks.audit import audit_roots
from config_checks.model import Severity

DATA = Path(public_secrets.__file__).with_name("data") / "public_secrets.json"
ENTRIES = json.loads(DATA.read_text())["secrets"]


def _etc(tmp_path: Path, rel: str, text: str) -> Path:
    f = tmp_path / "node-a" / "etc" / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    f.chmod(0o600)
    return tmp_path / "node-a"


def test_list_is_cited_and_hashes_match():
    assert {e["kind"] for e in ENTRIES} == {"barbican_kek", "swift_root_secret"}
    assert len({e["value"] for e in ENTRIES}) == len(ENTRIES)
    for e in ENTRIES:
        assert e["sha256"] == hashlib.sha256(e["value"].encode()).hexdigest()
        assert e["sources"] and all(s["repo"].startswith("openstack/") and s["path"] for s in e["sources"])
    kinds = {e["value"]: e["kind"] for e in ENTRIES}
    assert kinds["YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="] == "barbican_kek"  # barbican.conf, install guide
    assert kinds["changeme/changeme/changeme/changeme/change/="] == "swift_root_secret"  # SAIO


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["kind"] == "barbican_kek"], ids=lambda e: e["value"][:12])
@pytest.mark.parametrize("quote", ["", "'"])
def test_each_public_kek_is_flagged(tmp_path, entry, quote):
    root = _etc(tmp_path, "barbican/barbican.conf",
                f"[simple_crypto_plugin]\nkek = {quote}{entry['value']}{quote}\n")
    hits = [f for f in audit_roots([root]).findings if f.rule_id == "KT402"]
    assert len(hits) == 1 and "public sample value from openstack/barbican:" in hits[0].message
    assert entry["value"] not in hits[0].message + hits[0].actual


@pytest.mark.parametrize("entry", [e for e in ENTRIES if e["kind"] == "swift_root_secret"],
                         ids=lambda e: e["value"][:12])
@pytest.mark.parametrize("rel,section", [("swift/keymaster.conf", "keymaster"),
                                         ("swift/proxy-server.conf", "filter:keymaster")])
def test_each_public_root_secret_is_flagged(tmp_path, entry, rel, section):
    root = _etc(tmp_path, rel, f"[{section}]\nencryption_root_secret = {entry['value']}\n"
                               f"encryption_root_secret_7 = {entry['value']}\n")
    hits = [f for f in audit_roots([root], threshold=Severity.INFO).findings if f.rule_id == "KT305"]
    assert len(hits) == 2
    assert all("public sample value from openstack/swift:" in f.message for f in hits)
    assert all(entry["value"] not in f.message + f.actual for f in hits)


def test_a_random_secret_is_not_a_public_one(tmp_path):
    import base64
    import os

    root = _etc(tmp_path, "swift/keymaster.conf",
                f"[keymaster]\nencryption_root_secret = {base64.b64encode(os.urandom(32)).decode()}\n")
    assert not [f for f in audit_roots([root]).findings if f.rule_id == "KT305"]


def test_installed_barbican_still_ships_its_sample_kek():
    """The citation can be checked against the installed upstream code (barbican's test suite)."""
    spec = importlib.util.find_spec("barbican")
    utils = Path(spec.origin).parent / "tests" / "utils.py" if spec and spec.origin else None
    if utils is None or not utils.exists():
        pytest.skip("barbican's test suite is not installed")
    cited = [e["value"] for e in ENTRIES if any(s["path"] == "barbican/tests/utils.py" for s in e["sources"])]
    assert cited and all(v in utils.read_text() for v in cited)
