"""Audit rules for Barbican's PKCS#11 plugin (KT404-KT406) on /etc-layout trees written with the
sandbox's own renderer (the `--with hsm` sections, which SoftHSM 2.6 accepts, are the clean case)."""

from __future__ import annotations

from pathlib import Path

from config_checks.audit import audit_roots
from keytools.sandbox import hsm
from keytools.sandbox.configs import ini_text
from keytools.sandbox.state import SandboxConfig

P11_IDS = {"KT404", "KT405", "KT406"}


def tree(tmp_path: Path, mode: int = 0o640, **p11: str | None) -> Path:
    cfg = SandboxConfig(passwords={"hsm_pin": "1234abcd"})
    sections = {"database": {"connection": "sqlite:////var/lib/barbican/barbican.db"},
                "simple_crypto_plugin": {"kek": "dGhpcyBpcyBub3QgYSByZWFsIGtleSBhdCBhbGwhISE="},
                **hsm.barbican_sections(cfg)}
    for option, value in p11.items():
        if value is None:
            sections["p11_crypto_plugin"].pop(option, None)
        else:
            sections["p11_crypto_plugin"][option] = value
    conf = tmp_path / "etc" / "barbican" / "barbican.conf"
    conf.parent.mkdir(parents=True, exist_ok=True)
    conf.write_text(ini_text(sections))
    conf.chmod(mode)
    return tmp_path / "etc"


def found(root: Path) -> dict[str, list[str]]:
    report = audit_roots([root])
    out: dict[str, list[str]] = {}
    for f in report.findings:
        if f.rule_id in P11_IDS:
            out.setdefault(f.rule_id, []).append(f.location.option or "")
    return out


def test_the_sandbox_softhsm_config_is_clean(tmp_path):
    assert found(tree(tmp_path)) == {}


def test_pin_readable_by_others(tmp_path):
    assert found(tree(tmp_path, mode=0o644)) == {"KT404": ["login"]}


def test_barbican_defaults_on_softhsm_and_unknown_mechanisms(tmp_path):
    root = tree(tmp_path, key_wrap_mechanism=None, key_wrap_generate_iv=None, hmac_key_type="CKK_AES",
                hmac_mechanism="CKM_SHA1_HMAC")
    assert sorted(found(root)["KT405"]) == ["hmac_key_type", "hmac_mechanism", "key_wrap_generate_iv",
                                            "key_wrap_mechanism"]


def test_defaults_are_fine_on_a_real_hsm(tmp_path):
    root = tree(tmp_path, library_path="/opt/vendor/lib/libCryptoki2_64.so", key_wrap_mechanism=None,
                key_wrap_generate_iv=None, hmac_key_type=None)
    assert found(root) == {}


def test_pkek_cache_limit(tmp_path):
    assert found(tree(tmp_path, pkek_cache_limit="0")) == {"KT406": ["pkek_cache_limit"]}
    assert found(tree(tmp_path, pkek_cache_limit="50000")) == {"KT406": ["pkek_cache_limit"]}
    assert found(tree(tmp_path, pkek_cache_limit="500")) == {}
