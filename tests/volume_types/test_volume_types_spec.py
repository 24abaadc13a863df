"""Validation of encryption specs: the rules, and the CLI refusing bad input before any API call.

The CLI cases run with a cloud name that does not exist: any API call would fail with an
authentication/config error, so getting the validation message (exit 2) proves nothing was called.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from keytools.cli import main
from keytools.errors import UsageError
from keytools.volume_types import spec


def run_cli(*args: str) -> tuple[int, str]:
    runner = CliRunner()
    with runner.isolation(env={"OS_CLIENT_CONFIG_FILE": "/nonexistent/clouds.yaml"}) as streams:
        code = main(list(args))
        return code, streams[0].getvalue().decode() + streams[1].getvalue().decode()


@pytest.mark.parametrize(("given", "expected"), [
    ("luks", "luks"), ("LUKS", "luks"), ("plain", "plain"),
    ("nova.volume.encryptors.luks.LuksEncryptor", "luks"),
    ("os_brick.encryptors.luks.LuksEncryptor", "luks"),
    ("nova.volume.encryptors.cryptsetup.CryptsetupEncryptor", "plain"),
    ("LuksEncryptor", "luks"), ("CryptsetupEncryptor", "plain"),
])
def test_providers_and_legacy_names_map(given: str, expected: str) -> None:
    assert spec.normalize_provider(given) == expected


@pytest.mark.parametrize("cipher", ["aes-xts-plain64", "aes-xts-plain", "aes-cbc-essiv:sha256",
                                    "serpent-xts-plain64", "twofish-cbc-essiv:sha256"])
def test_dm_crypt_ciphers_accepted(cipher: str) -> None:
    assert spec.cipher_problem(cipher) is None


def test_xts_needs_double_keys_cbc_single() -> None:
    assert spec.valid_key_sizes("aes-xts-plain64") == (256, 512)
    assert spec.valid_key_sizes("aes-cbc-essiv:sha256") == (128, 192, 256)
    assert "XTS splits the key" in spec.key_size_problem("aes-xts-plain64", 128)


def test_template_is_the_documented_type() -> None:
    name, s = spec.template(256)
    assert name == "LuksEncryptor-Template-256"
    assert s == spec.EncryptionSpec("luks", "aes-xts-plain64", 256, "front-end")
    assert spec.template(512)[1].key_size == 512
    with pytest.raises(UsageError):
        spec.template(128)


@pytest.mark.parametrize(("encryption", "fragment"), [
    ({"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 128, "control_location": "front-end"},
     "key size 128 is not valid"),
    ({"provider": "luks", "cipher": "aes-cbc-plain64", "key_size": 256, "control_location": "front-end"},
     "predictable IV"),
    ({"provider": "luks", "cipher": None, "key_size": None, "control_location": "front-end"},
     "cipher not set"),
    ({"provider": "NoOpEncryptor", "cipher": "aes-xts-plain64", "key_size": 256, "control_location": "front-end"},
     "does not encrypt"),
    ({"provider": "luks", "cipher": "aes-gcm-random", "key_size": 256, "control_location": "front-end"},
     "unknown chain mode"),
])
def test_stored_specs_problems(encryption: dict, fragment: str) -> None:
    _, problems = spec.from_cinder(encryption)
    assert any(fragment in p for p in problems), problems


def test_stored_legacy_provider_is_sane() -> None:
    s, problems = spec.from_cinder({"provider": "nova.volume.encryptors.luks.LuksEncryptor",
                                    "cipher": "aes-xts-plain64", "key_size": 512,
                                    "control_location": "front-end"})
    assert problems == [] and s.provider == "luks"


@pytest.mark.parametrize(("args", "fragment"), [
    (["--provider", "bitlocker"], "--provider 'bitlocker' is not a volume encryption provider"),
    (["--provider", "nova.volume.encryptors.nop.NoopEncryptor"], "no-op encryptor does not encrypt"),
    (["--cipher", "aes"], "not in dm-crypt's cipher-chainmode-ivmode form"),
    (["--cipher", "des-xts-plain64"], "unknown block cipher 'des'"),
    (["--cipher", "aes-ofb-plain64"], "unknown chain mode 'ofb'"),
    (["--cipher", "aes-xts-random"], "unknown IV mode 'random'"),
    (["--cipher", "aes-cbc-essiv"], "essiv needs a hash"),
    (["--key-size", "128"], "--key-size: key size 128 is not valid for aes-xts-plain64"),
    (["--key-size", "384"], "use 256 or 512"),
    (["--cipher", "aes-cbc-essiv:sha256", "--key-size", "512"], "use 128 or 192 or 256"),
    (["--control-location", "middle"], "--control-location 'middle' is not valid"),
    (["--project", "demo"], "--project only applies to a private type"),
])
def test_cli_validation_errors_before_any_call(args: list[str], fragment: str) -> None:
    code, out = run_cli("--os-cloud", "no-such-cloud", "volume-type", "create", "T", *args)
    assert code == 2, out
    assert fragment in out
    assert out.startswith("keytools: error:") and out.count("\n") == 1  # one line, no traceback


def test_cli_template_with_spec_option_refused() -> None:
    code, out = run_cli("--os-cloud", "no-such-cloud", "volume-type", "create", "--template", "256",
                        "--key-size", "512")
    assert code == 2 and "--template fixes the spec; drop --key-size" in out


def test_cli_missing_name() -> None:
    code, out = run_cli("--os-cloud", "no-such-cloud", "volume-type", "create")
    assert code == 2 and "NAME is missing" in out


def test_cli_check_bad_config_file_before_any_call(tmp_path) -> None:
    code, out = run_cli("--os-cloud", "no-such-cloud", "volume-type", "check",
                        "--config-file", str(tmp_path / "missing.conf"))
    assert code == 2 and "missing.conf: no such file" in out
