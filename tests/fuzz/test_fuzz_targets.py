"""Every fuzz target under a small hypothesis budget, every saved reproducer replayed, and one
regression test per class of hostile input issue 21 found (each failed before its fix).

`make fuzz` runs the same targets coverage-guided for as long as asked (tests/fuzz/run.py).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import hostile_certs, targets

REPRODUCERS = Path(__file__).parent / "reproducers"
EXAMPLES = 60  # per target: the suite's share (a few seconds); make fuzz runs thousands


@pytest.mark.parametrize("name", targets.names())
def test_target_seeds_keep_the_contract(name):
    module = targets.load(name)
    for seed in module.SEEDS:
        module.fuzz_one(seed)


@pytest.mark.parametrize("name", targets.names())
def test_target_keeps_the_contract_on_mutated_seeds(name):
    module = targets.load(name)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(targets.mutations(module.SEEDS))
    def one(data):
        module.fuzz_one(data)

    one()


def _reproducers() -> list[Path]:
    return sorted(p for p in REPRODUCERS.glob("*/*") if p.is_file() and p.parent.name in targets.names())


@pytest.mark.parametrize("path", _reproducers(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reproducer_keeps_the_contract(path):
    targets.load(path.parent.name).fuzz_one(path.read_bytes())


# Regression tests: one per class of hostile input (issue 21). Each exited 70 before its fix.

_CINDER = "2026-11-23 12:45:36.200 23845 INFO cinder.keymgr.migration [None req-bd47ab3b-dbdd-45a7-9425-5e4f613f0933 - - - - - -] "


@pytest.mark.parametrize("line", [
    b'{"event": ["start"], "message": "x"}',  # an "event" that is a list (TypeError: unhashable)
    b'{"event": {"a": 1}, "message": "x"}',
    b'{"event": "no-such-event", "pid": [1], "timestamp": {"a": 1}, "message": "x"}',
    b'{"event": "start", "message": "Starting", "pid": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # RecursionError
    b'{"event": "start", "pid": NaN, "message": "x"}',
    b'{"event": "item_error", "message": "Error migrating encryption key: \\ud800"}',  # a lone surrogate
    (_CINDER + "There are still " + "9" * 5000 + " volume(s) using the ConfKeyManager's encryption_key_id").encode(),
    b"{" + b'"a":' * 100 + b"1" + b"}" * 100,
])
def test_migrate_status_hostile_log_lines(line):
    from tests.fuzz.targets import migrate_status

    migrate_status.fuzz_one(line + b"\n")


def test_migrate_status_a_count_no_database_holds_is_unknown(tmp_path):
    from migrate import logparse

    log = tmp_path / "ctl-0-cinder-volume.log"
    log.write_text(_CINDER + "Starting migration of ConfKeyManager keys.\n" + _CINDER + "There are still "
                   + "9" * 5000 + " volume(s) using the ConfKeyManager's encryption_key_id\n")
    last = logparse.parse_file(str(log))["last"]
    assert last["started"] and last["volumes_remaining"] is None


def _pem(der: bytes) -> bytes:
    import base64
    import textwrap

    body = "\n".join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f"-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n".encode()


@pytest.mark.parametrize("name", sorted(hostile_certs.cases()))
def test_verify_refuses_a_certificate_cryptography_refuses_late(name, tmp_path):
    """--cert FILE: the usage error a bad certificate file gets (exit 2), one line naming it."""
    from tests.fuzz import contract
    from tests.fuzz.targets import verify as target

    der = hostile_certs.cases()[name]
    for form, data in (("der", der), ("pem", _pem(der))):
        cert = tmp_path / f"{name}.{form}"
        cert.write_bytes(data)
        props = tmp_path / "props.json"
        props.write_text(json.dumps(target._props()))
        image = tmp_path / "image"
        image.write_bytes(target.IMAGE)
        r = contract.run(["verify", str(image), "--cert", str(cert), "--properties", str(props)])
        assert r.exit_code == 2, r.output
        assert r.stderr.startswith(f"keytools: error: --cert {cert} is ") and r.stderr.count("\n") == 1


@pytest.mark.parametrize("name", sorted(hostile_certs.cases()))
def test_barbican_certificate_refused_late_is_a_certificate_error(name):
    """A certificate from Barbican (castellan reads PEM): CertificateError, exit 3, naming the secret."""
    from keytools.errors import CertificateError
    from verify import verifier

    source = verifier.pem_source(lambda uuid: _pem(hostile_certs.cases()[name]))
    with pytest.raises(CertificateError) as info:
        source("0b0e9e34-6f6c-4b4e-9a8e-4f2b4d1c9a11")
    assert info.value.exit_code == 3
    assert info.value.one_line().startswith("Barbican secret 0b0e9e34-6f6c-4b4e-9a8e-4f2b4d1c9a11 is ")


@pytest.mark.parametrize("props", [
    b'{"img_signature_certificate_uuid": ["0b0e9e34-6f6c-4b4e-9a8e-4f2b4d1c9a11"]}',  # a list for the UUID
    b'{"img_signature_hash_method": 256}',  # a number
    b'{"img_signature": 12345678}',  # str() of it is valid base64: verified as a signature before
    b'{"img_signature_key_type": {"a": "ECC_SECP384R1"}}',
    b'{"img_signature_hash_method": NaN}',  # echoed into -f json before
    b'{"img_signature_hash_method": 1e999}',
    b'{"img_signature_certificate_uuid": "\\udc80"}',  # a lone surrogate: no output encodes it
    b'{"properties": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # RecursionError
    b'{"img_signature_hash_method": ' + b"9" * 5000 + b"}",  # int() refuses 5,000 digits
])
def test_verify_refuses_hostile_properties(props):
    from tests.fuzz import contract
    from tests.fuzz.targets import verify as target

    # the other three properties valid; a later key wins in JSON objects as Python reads them
    text = json.dumps(target._props()).encode()[:-1] + b", " + props[1:]
    target.fuzz_one(b"\x01" + text)
    image = contract.write("image.img", target.IMAGE)
    r = contract.run(["verify", image, "--cert", contract.write("cert.pem", target.CERT_PEM), "--properties",
                      contract.write("props.json", text), "-f", "json"], json_output=True)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.output


def _archive_header(**changes: object) -> bytes:
    from tests.fuzz.targets import barbican_archive

    header = {**barbican_archive._setup()["header"], **changes}
    return json.dumps(header, allow_nan=True).encode()


@pytest.mark.parametrize("header", [
    pytest.param(lambda: _archive_header(segment_size=float("inf")), id="segment_size-Infinity"),  # OverflowError
    pytest.param(lambda: _archive_header(segment_size=1e300), id="segment_size-1e300"),
    pytest.param(lambda: _archive_header(segment_size=[1]), id="segment_size-list"),
    pytest.param(lambda: _archive_header(manifest={"deep": json.loads("[" * 900 + "]" * 900)}), id="nested-900"),
    pytest.param(lambda: _archive_header()[:-1] + b',"x":' + b"[" * 5000 + b"]" * 5000 + b"}", id="nested-5000"),
    pytest.param(lambda: _archive_header(manifest={**_archive_header_manifest(), "counts": {"secrets": float("nan")}}),
                 id="manifest-NaN"),  # echoed into -f json before
    pytest.param(lambda: _archive_header(manifest={**_archive_header_manifest(), "counts": int("9" * 4000)}),
                 id="manifest-4000-digits"),
    pytest.param(lambda: _archive_header(manifest={**_archive_header_manifest(), "host": "\ud800"}),
                 id="manifest-lone-surrogate"),  # the table output could not encode it
])
def test_barbican_archive_hostile_header(header):
    """inspect, inspect --verify, restore --check and drill --archive: exit 2, one line (the
    header is re-encrypted, so a header that parses reaches the authenticated paths too)."""
    from tests.fuzz import contract
    from tests.fuzz.targets import barbican_archive

    barbican_archive.fuzz_one(b"\x01" + header())
    path = contract.write("hostile.ktbak", barbican_archive._rebuild(header()))
    r = contract.run(["barbican", "inspect", "--verify", "--key-file", barbican_archive._setup()["key"], path,
                      "-f", "json"], json_output=True)
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "archive header" in r.stderr, r.output


def _archive_header_manifest() -> dict:
    from tests.fuzz.targets import barbican_archive

    return dict(barbican_archive._setup()["header"]["manifest"])


def test_barbican_archive_that_is_a_fifo_is_refused_without_blocking(tmp_path):
    from tests.fuzz import contract
    from tests.fuzz.targets import barbican_archive

    fifo = tmp_path / "backup.ktbak"
    os.mkfifo(fifo)
    key = barbican_archive._setup()["key"]
    for args in (["barbican", "inspect", str(fifo)],
                 ["barbican", "restore", "--check", "--config", barbican_archive._setup()["conf"], "--key-file",
                  key, str(fifo)]):
        r = contract.run(args)
        assert r.exit_code == 2 and f"{fifo} is a FIFO (named pipe), not a regular file" in r.stderr, r.output
    r = contract.run(["barbican", "inspect", "--verify", "--key-file", str(fifo), barbican_archive._setup()["conf"]])
    assert r.exit_code == 2 and "FIFO" in r.stderr, r.output


_JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda children: st.lists(children) | st.dictionaries(st.text(), children), max_leaves=30)


@settings(max_examples=60, deadline=None, database=None, derandomize=True)
@given(value=_JSON_VALUES, junk=st.binary(max_size=40))
def test_untrusted_json_returns_a_value_or_one_usage_error(value, junk):
    """Whatever the text: the value, or UsageError naming the source; never another exception."""
    from keytools import untrusted_json
    from keytools.errors import UsageError

    for text in (json.dumps(value), json.dumps(value).encode() + junk, junk):
        try:
            loaded = untrusted_json.loads(text, "the source")
        except UsageError as exc:
            assert exc.one_line().startswith("the source is not valid JSON (") and "\n" not in exc.one_line()
            continue
        strict = json.dumps(loaded, allow_nan=False)  # what was accepted can be written as JSON again
        assert json.loads(strict) == loaded


def test_drill_cleanup_survives_a_directory_removed_under_it(tmp_path, monkeypatch):
    """Found by fuzzing two drills at once: a concurrent drill removing its own scratch directory
    between clean_stale's glob and its stat ended the other drill with exit 70."""
    import shutil

    from keytools.barbican import scratch

    gone = tmp_path / f"{scratch.PREFIX}other"
    gone.mkdir()
    real_read = Path.read_text

    def read_text(self, *args, **kwargs):
        if self.parent == gone:
            shutil.rmtree(gone)  # the other drill finishes right now
            raise FileNotFoundError(self)
        return real_read(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    assert scratch.clean_stale(tmp_path) == 0


def _special_inputs(tmp_path):
    """Valid files for every input, a FIFO nobody writes to, and /dev/zero."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from tests.fuzz.targets import barbican_archive, verify as target

    files = {"image": tmp_path / "image.img", "cert": tmp_path / "cert.pem", "props": tmp_path / "props.json",
             "key": tmp_path / "key.pem", "conf": Path(barbican_archive._setup()["conf"]),
             "archive": tmp_path / "a.ktbak", "keyfile": Path(barbican_archive._setup()["key"]),
             "log": tmp_path / "ctl-0-cinder-volume.log"}
    files["image"].write_bytes(target.IMAGE)
    files["cert"].write_bytes(target.CERT_PEM)
    files["props"].write_text(json.dumps(target._props()))
    files["key"].write_bytes(ec.generate_private_key(ec.SECP384R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    files["archive"].write_bytes(barbican_archive._setup()["archive"])
    files["log"].write_text("")
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    return files, fifo


_UUID = "0b0e9e34-6f6c-4b4e-9a8e-4f2b4d1c9a11"
_COMMANDS = {
    "verify image": lambda f: ["verify", f["image"], "--cert", f["cert"], "--properties", f["props"]],
    "verify --cert": lambda f: ["verify", f["image"], "--cert", f["cert"], "--properties", f["props"]],
    "verify --properties": lambda f: ["verify", f["image"], "--cert", f["cert"], "--properties", f["props"]],
    "sign --key": lambda f: ["sign", f["image"], "--key", f["key"], "--cert", f["cert"], "--cert-uuid", _UUID,
                             "--offline"],
    "sign --key-password-file": lambda f: ["sign", f["image"], "--key", f["key"], "--key-password-file",
                                           f["keyfile"], "--cert", f["cert"], "--cert-uuid", _UUID, "--offline"],
    "migrate status log": lambda f: ["migrate", "status", f["log"]],
    "barbican inspect archive": lambda f: ["barbican", "inspect", f["archive"]],
    "barbican inspect --key-file": lambda f: ["barbican", "inspect", "--verify", "--key-file", f["keyfile"],
                                              f["archive"]],
    "barbican inspect --passphrase-file": lambda f: ["barbican", "inspect", "--verify", "--passphrase-file",
                                                     f["keyfile"], f["archive"]],
    "barbican restore --config": lambda f: ["barbican", "restore", "--check", "--config", f["conf"], "--key-file",
                                            f["keyfile"], f["archive"]],
    "barbican drill --archive": lambda f: ["barbican", "drill", "--archive", f["archive"], "--key-file",
                                           f["keyfile"]],
}
_SWAPPED = {"verify image": "image", "verify --cert": "cert", "verify --properties": "props", "sign --key": "key",
            "sign --key-password-file": "keyfile", "migrate status log": "log",
            "barbican inspect archive": "archive", "barbican inspect --key-file": "keyfile",
            "barbican inspect --passphrase-file": "keyfile", "barbican restore --config": "conf",
            "barbican drill --archive": "archive"}


@pytest.mark.parametrize("special", ["fifo", "/dev/zero"])
@pytest.mark.parametrize("command", sorted(_COMMANDS))
def test_a_fifo_or_dev_zero_as_an_input_file_is_refused_at_once(command, special, tmp_path):
    """Each of these blocked forever on a FIFO or read /dev/zero until memory ran out."""
    from tests.fuzz import contract

    files, fifo = _special_inputs(tmp_path)
    files[_SWAPPED[command]] = fifo if special == "fifo" else Path("/dev/zero")
    args = [str(a) for a in _COMMANDS[command](files)]
    r = contract.run(args, seconds=15)
    assert r.exit_code == 2, r.output
    kind = "a FIFO (named pipe)" if special == "fifo" else "a device"
    assert f"{files[_SWAPPED[command]]} is {kind}, not a regular file" in r.stderr, r.output
