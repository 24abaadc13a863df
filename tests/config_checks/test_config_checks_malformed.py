"""Malformed and unreadable inputs: a finding with file and line (or KT001 + exit 2), never a crash."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config_checks.audit import audit_roots, exit_code
from config_checks.model import Severity
from tests.helpers.cli import invoke


def etc_node(tmp_path, text: str | bytes, rel: str = "cinder/cinder.conf"):
    f = tmp_path / "node-a" / "etc" / rel
    f.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        f.write_bytes(text)
    else:
        f.write_text(text)
    os.chmod(f, 0o600)
    return f


def findings(tmp_path):
    return audit_roots([tmp_path / "node-a"], threshold=Severity.INFO)


def test_bom_is_ignored_and_lines_count_from_one(tmp_path):
    etc_node(tmp_path, "\ufeff[key_manager]\nfixed_key = 00ff\n")
    report = findings(tmp_path)
    hit = [f for f in report.findings if f.rule_id == "KT101"]
    assert hit and hit[0].location.line == 2 and hit[0].location.section == "key_manager"


def test_crlf_line_endings(tmp_path):
    etc_node(tmp_path, b"[DEFAULT]\r\ndebug = true\r\n[barbican]\r\nverify_ssl = False\r\n")
    report = findings(tmp_path)
    hit = [f for f in report.findings if f.rule_id == "KT105"]
    assert hit and hit[0].location.line == 4 and hit[0].actual == "False"


def test_option_before_any_section_is_a_finding_with_line(tmp_path):
    etc_node(tmp_path, "fixed_key = 1234\n[key_manager]\nbackend = barbican\n")
    report = findings(tmp_path)
    syntax = [f for f in report.findings if f.rule_id == "KT002"]
    assert [(f.location.line, f.message) for f in syntax] == [(1, "option before any section header")]
    assert exit_code(report) == 1


def test_garbage_line_and_broken_header(tmp_path):
    etc_node(tmp_path, "[key_manager\nthis is not ini\n[barbican]\nverify_ssl=false\n")
    report = findings(tmp_path)
    assert sorted((f.rule_id, f.location.line, f.actual) for f in report.findings if f.rule_id != "KT107") == [
        ("KT002", 1, "lines 1, 2"), ("KT105", 4, "false")]  # one KT002 per file


def test_duplicate_sections_merge_and_later_value_wins(tmp_path):
    etc_node(tmp_path, "[KEY_MANAGER]\nbackend = barbican\n[barbican]\nverify_ssl = true\n"
                       "[key_manager]\nbackend = 'cinder.keymgr.conf_key_mgr.ConfKeyManager'\n")
    report = findings(tmp_path)
    hit = [f for f in report.findings if f.rule_id == "KT102"]
    assert len(hit) == 1 and hit[0].location.line == 6
    assert hit[0].actual == "cinder.keymgr.conf_key_mgr.ConfKeyManager"  # quotes stripped
    assert not [f for f in report.findings if f.rule_id == "KT105"]


def test_inline_hash_is_part_of_the_value(tmp_path):
    """oslo.config only treats '#' at line start as a comment."""
    etc_node(tmp_path, "[barbican]\nverify_ssl = false # TODO\n")
    assert not [f for f in findings(tmp_path).findings if f.rule_id == "KT105"]


def test_binary_file_is_reported_not_crashed(tmp_path):
    etc_node(tmp_path, b"\x7fELF\x00\x01\x02binary")
    report = findings(tmp_path)
    hit = [f for f in report.findings if f.rule_id == "KT001"]
    assert hit and "binary" in hit[0].message
    assert exit_code(report) == 2


def test_broken_symlink_is_reported(tmp_path):
    good = etc_node(tmp_path, "[key_manager]\nfixed_key = 0011\n", "nova/nova.conf")
    link = good.parent.parent / "cinder" / "cinder.conf"
    link.parent.mkdir()
    link.symlink_to(tmp_path / "gone.conf")
    report = findings(tmp_path)
    assert [(f.rule_id, f.actual) for f in report.findings if f.rule_id == "KT001"] == [("KT001", "broken symlink")]
    assert any(f.rule_id == "KT101" for f in report.findings)  # the other file is still audited
    res = invoke(["audit", str(tmp_path / "node-a")])
    assert res.exit_code == 2 and "KT001" in res.stdout and "audit incomplete" in res.stderr


def test_directory_and_fifo_in_place_of_a_file(tmp_path):
    (tmp_path / "node-a" / "etc" / "cinder" / "cinder.conf").mkdir(parents=True)
    fifo = tmp_path / "node-a" / "etc" / "nova" / "nova.conf"
    fifo.parent.mkdir(parents=True)
    os.mkfifo(fifo)
    report = findings(tmp_path)  # must not block on the FIFO
    assert sorted(f.actual for f in report.findings if f.rule_id == "KT001") == ["not a regular file"] * 2


def test_unreadable_file_for_the_auditing_user(as_nobody):
    """A real EACCES: the audit runs as 'nobody' on a 0600 root-owned file."""
    import shutil
    import tempfile

    public = Path(tempfile.mkdtemp(prefix="kt-cc-perm-", dir="/tmp"))
    try:
        _unreadable_as_nobody(public, as_nobody)
    finally:
        shutil.rmtree(public)


def _unreadable_as_nobody(tmp_path: Path, as_nobody) -> None:
    base = tmp_path / "world"
    f = base / "node-a" / "etc" / "cinder" / "cinder.conf"
    f.parent.mkdir(parents=True)
    f.write_text("[key_manager]\nfixed_key = 00\n")
    os.chmod(f, 0o600)
    nova = base / "node-a" / "etc" / "nova" / "nova.conf"
    nova.parent.mkdir(parents=True)
    nova.write_text("[key_manager]\nbackend = barbican\n[barbican]\nauth_endpoint = https://k/v3\n")
    os.chmod(nova, 0o644)
    for p in [tmp_path, *[d for d in base.rglob("*") if d.is_dir()], base]:
        os.chmod(p, 0o755)
    proc = as_nobody("audit", base / "node-a", "-f", "json")
    assert proc.returncode == 2, proc.stderr
    assert "cannot read (Permission denied)" in proc.stdout
    assert "Traceback" not in proc.stderr
    os.chmod(base / "node-a", 0o700)  # a root the user cannot enter: one-line usage error
    proc = as_nobody("audit", base / "node-a", "-f", "json")
    assert proc.returncode == 2 and "unexpected" not in proc.stderr and proc.stderr.count("\n") == 1
    assert "not readable" in proc.stderr or "Permission denied" in proc.stderr


def test_a_file_larger_than_any_config_is_reported_not_read_whole(tmp_path):
    etc_node(tmp_path, b"[DEFAULT]\n" + b"# padding\n" * (450 * 1024))  # 4.4 MiB
    hit = [f for f in findings(tmp_path).findings if f.rule_id == "KT001"]
    assert [f.actual for f in hit] == ["larger than 4 MiB, more than a config file holds"]
