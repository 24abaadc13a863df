"""Every audit rule fires on its problem and stays silent on clean, realistic puppet-generated trees."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from config_checks import registry
from config_checks.audit import audit_roots, exit_code
from config_checks.inputs import discover, node_name
from config_checks.model import Severity
from tests.config_checks.cc_treegen import PG, PROBLEMS, NodeSpec, build
from tests.helpers.cli import invoke

CLEAN = [NodeSpec("ctl-0"), NodeSpec("ctl-1"), NodeSpec("cmp-0", "compute"), NodeSpec("cmp-1", "compute")]


def rule_ids(report) -> set[str]:
    return {f.rule_id for f in report.findings}


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory):
    return build(tmp_path_factory.mktemp("clean"), CLEAN)


def test_clean_tree_has_no_findings(clean_tree):
    report = audit_roots([clean_tree.base], per_node=True)
    assert report.findings == []
    assert exit_code(report) == 0
    assert report.nodes == ["cmp-0", "cmp-1", "ctl-0", "ctl-1"]
    assert report.files_checked == 2 * 7 + 2


def test_clean_tree_only_info_is_group_readable(clean_tree):
    report = audit_roots([clean_tree.base], per_node=True, threshold=Severity.INFO)
    assert rule_ids(report) == {"KT502"}


def test_registry_ids_are_stable_and_unique():
    ids = [r.id for r in registry.RULES]
    assert len(ids) == len(set(ids)) >= 20
    assert all(r.title and r.remediation and r.name for r in registry.RULES)
    # every problem the generator can inject maps to a registered rule
    assert set(PROBLEMS.values()) <= set(ids)


def _problem_nodes(problem: str) -> list[NodeSpec]:
    compute_only = {"no_signature_verification", "rbd", "endpoint_mismatch"}  # nova-compute calls castellan
    if problem in compute_only:
        return [NodeSpec("ctl-0"), NodeSpec("cmp-0", "compute", {problem})]
    if problem == "plain_http":  # a cloud-wide choice; on one node only it is also an inconsistency (KT106)
        return [NodeSpec("ctl-0", "controller", {problem}), NodeSpec("cmp-0", "compute", {problem})]
    return [NodeSpec("ctl-0", "controller", {problem}), NodeSpec("cmp-0", "compute")]


@pytest.mark.parametrize("problem", sorted(PROBLEMS))
def test_each_rule_fires_on_its_problem(tmp_path, problem):
    tree = build(tmp_path, _problem_nodes(problem))
    report = audit_roots([tmp_path], per_node=True, threshold=Severity.LOW)
    expected = PROBLEMS[problem]
    assert expected in rule_ids(report), [f.as_dict() for f in report.findings]
    hits = [f for f in report.findings if f.rule_id == expected]
    for f in hits:
        assert f.location.node in ("ctl-0", "cmp-0")
        assert Path(f.location.path).exists()
        assert f.remediation and f.title
        if f.location.line:
            line = Path(f.location.path).read_text().splitlines()[f.location.line - 1]
            if f.location.option:
                assert line.startswith(f.location.option), (line, f.as_dict())
    # findings besides the expected rule are only the known companions of that problem
    companions = {"fixed_key_mismatch": {"KT101"}, "fixed_key": set(), "fixed_key_keymgr": set(),
                  "swift_weak_secret": {"KT304"}, "swift_inline_secret": set(), "kek_sample": set(),
                  "plain_http": set(), "world_readable": set(), "kek_world_readable": {"KT501"}}
    assert rule_ids(report) - {expected} <= companions.get(problem, set()), [f.as_dict() for f in report.findings]
    assert exit_code(report) == 1
    assert tree.files


def test_rules_silent_on_clean_for_every_rule(clean_tree):
    audit = discover([clean_tree.base], per_node=True)
    for r in registry.RULES:
        if r.id == "KT502":
            continue
        assert list(r.check(audit)) == [], r.id


def test_fixed_key_mismatch_same_node_cinder_vs_nova(tmp_path):
    build(tmp_path, [NodeSpec("ctl-0", "controller", {"fixed_key_mismatch"})])
    report = audit_roots([tmp_path], per_node=True)
    mism = [f for f in report.findings if f.rule_id == "KT103"]
    assert mism and all("same node" in f.message for f in mism)
    assert all(f.actual.startswith("sha256:") and len(f.actual) == len("sha256:") + 8 for f in mism)


def test_fixed_key_mismatch_across_nodes_with_separate_roots(tmp_path):
    a = build(tmp_path / "a", [NodeSpec("ctl-0", "controller", {"fixed_key"})])
    build(tmp_path / "b", [NodeSpec("cmp-0", "compute", {"fixed_key"})])  # a different random key
    report = audit_roots([a.pg("ctl-0"), tmp_path / "b" / "cmp-0" / PG])
    assert report.nodes == ["ctl-0", "cmp-0"]
    mism = [f for f in report.findings if f.rule_id == "KT103"]
    assert [f.location.node for f in mism] == ["cmp-0"]
    assert "across nodes" in mism[0].message


def test_same_fixed_key_everywhere_is_not_a_mismatch(tmp_path):
    build(tmp_path, [NodeSpec("ctl-0", "controller", {"fixed_key"}), NodeSpec("cmp-0", "compute", {"fixed_key"})],
          fixed_key="ab" * 32)
    # upper-case hex is the same key for cinder/nova (they unhexlify it)
    f = tmp_path / "cmp-0" / PG / "nova_libvirt/etc/nova/nova.conf"
    f.write_text(f.read_text().replace("ab" * 32, "AB" * 32))
    report = audit_roots([tmp_path], per_node=True)
    assert "KT103" not in rule_ids(report)
    assert len([x for x in report.findings if x.rule_id == "KT101"]) == 4


def test_conf_d_overrides_main_file(tmp_path):
    tree = build(tmp_path, [NodeSpec("ctl-0", "controller", {"conf_key_manager"})])
    conf_d = tree.pg("ctl-0") / "cinder/etc/cinder/cinder.conf.d"
    conf_d.mkdir()
    (conf_d / "90-barbican.conf").write_text("[key_manager]\nbackend = barbican\n")
    os.chmod(conf_d / "90-barbican.conf", 0o640)
    report = audit_roots([tmp_path], per_node=True)
    assert "KT102" not in rule_ids(report)
    (conf_d / "95-verify.conf").write_text("[barbican]\nverify_ssl = False\n")
    report = audit_roots([tmp_path], per_node=True)
    hit = [f for f in report.findings if f.rule_id == "KT105"]
    assert hit and hit[0].location.relpath == "cinder/etc/cinder/cinder.conf.d/95-verify.conf"
    assert hit[0].location.line == 2


def test_plain_etc_layout_and_node_name(tmp_path):
    etc = tmp_path / "compute-7" / "etc"
    (etc / "nova").mkdir(parents=True)
    (etc / "nova" / "nova.conf").write_text(
        "[DEFAULT]\ncompute_driver = libvirt.LibvirtDriver\n[libvirt]\nimages_type = rbd\n"
        "[glance]\nverify_glance_signatures = true\n[barbican]\nauth_endpoint = https://k/v3\n[keymgr]\napi_class = nova.keymgr.conf_key_mgr.ConfKeyManager\n")
    assert node_name(etc) == "compute-7"
    report = audit_roots([tmp_path / "compute-7"])
    assert report.nodes == ["compute-7"]
    assert rule_ids(report) == {"KT104", "KT202"}


def test_node_names():
    import socket

    assert node_name(Path("/var/lib/config-data/puppet-generated")) == socket.gethostname()
    assert node_name(Path("/srv/collected/ctl-0/var/lib/config-data/puppet-generated")) == "ctl-0"
    assert node_name(Path("/srv/collected/cmp-3/etc")) == "cmp-3"


def test_deprecated_key_manager_api_class_is_low_and_counts_as_backend(tmp_path):
    etc = tmp_path / "n1" / "etc" / "cinder"
    etc.mkdir(parents=True)
    (etc / "cinder.conf").write_text("[key_manager]\napi_class = cinder.keymgr.conf_key_mgr.ConfKeyManager\n"
                                     "[barbican]\nauth_endpoint = https://k:5000/v3\n")
    report = audit_roots([tmp_path / "n1"])
    sev = {f.rule_id: f.severity for f in report.findings}
    assert sev == {"KT102": Severity.HIGH, "KT104": Severity.LOW}


def test_kek_multi_values_each_checked(tmp_path):
    etc = tmp_path / "n1" / "etc" / "barbican"
    etc.mkdir(parents=True)
    good = "x" * 43 + "="
    (etc / "barbican.conf").write_text(f"[simple_crypto_plugin]\nkek = {good}\nkek = short\n")
    os.chmod(etc / "barbican.conf", 0o600)
    report = audit_roots([tmp_path / "n1"])
    weak = [f for f in report.findings if f.rule_id == "KT402"]
    assert [f.location.line for f in weak] == [3]


def test_p11_crypto_needs_no_kek(tmp_path):
    etc = tmp_path / "n1" / "etc" / "barbican"
    etc.mkdir(parents=True)
    (etc / "barbican.conf").write_text("[crypto]\nenabled_crypto_plugins = p11_crypto\n")
    assert audit_roots([tmp_path / "n1"]).findings == []


def test_swift_keymaster_conf_weak_secret(tmp_path):
    etc = tmp_path / "n1" / "etc" / "swift"
    etc.mkdir(parents=True)
    (etc / "proxy-server.conf").write_text(
        "[pipeline:main]\npipeline = catch_errors keymaster encryption proxy-logging proxy-server\n"
        "[filter:keymaster]\nuse = egg:swift#keymaster\nkeymaster_config_path = /etc/swift/keymaster.conf\n"
        "[filter:encryption]\nuse = egg:swift#encryption\n[filter:proxy-logging]\nuse = egg:swift#proxy_logging\n"
        "[app:proxy-server]\nuse = egg:swift#proxy\n")
    (etc / "keymaster.conf").write_text("[keymaster]\nencryption_root_secret = not*base64!\n")
    os.chmod(etc / "keymaster.conf", 0o600)
    report = audit_roots([tmp_path / "n1"])
    assert rule_ids(report) == {"KT305"}
    assert "not base64" in report.findings[0].actual


def test_severity_threshold_filters_and_exit_code(tmp_path):
    build(tmp_path, [NodeSpec("ctl-0", "controller", {"plain_http"})])  # low only
    assert exit_code(audit_roots([tmp_path], per_node=True, threshold=Severity.MEDIUM)) == 0
    assert exit_code(audit_roots([tmp_path], per_node=True, threshold=Severity.LOW)) == 1
    assert invoke(["audit", "--per-node", str(tmp_path), "--severity", "medium"]).exit_code == 0
    res = invoke(["audit", "--per-node", str(tmp_path)])
    assert res.exit_code == 1 and "KT108" in res.stdout


def test_rule_selection_and_list_rules():
    res = invoke(["audit", "--list-rules", "--format", "json"])
    assert res.exit_code == 0 and "KT101" in res.stdout
    res = invoke(["audit", "--rule", "nope", "/tmp"])
    assert res.exit_code == 2 and "unknown rule 'nope'" in res.stderr
    assert registry.select(["fixed-key-present"])[0].id == "KT101"
    assert "KT502" not in {r.id for r in registry.select(None, ["KT502"])}


def test_usage_errors_are_one_line_exit_2(tmp_path):
    res = invoke(["audit", str(tmp_path / "missing")])
    assert res.exit_code == 2 and res.stderr.count("\n") == 1 and "not a directory" in res.stderr
    build(tmp_path / "nodes", [NodeSpec("ctl-0")])
    res = invoke(["audit", str(tmp_path / "nodes")])
    assert res.exit_code == 2 and "--per-node" in res.stderr
