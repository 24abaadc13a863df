"""cert create and the checks before signing, offline: files, modes, extensions, bad inputs."""

from __future__ import annotations

import json
import os
import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cursive import certificate_utils

from keytools import image_signature as sig
from sign import certs
from tests.helpers.cli import invoke
from tests.sign_verify import sign_verify_helpers as h

CERT_UUID = "0b7c3a52-7f0e-4a1d-8c1b-3d5e6f708192"


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pair")
    key = h.rsa_key(2048)
    return {"key": h.write_key(tmp / "k.pem", key), "cert": h.write_cert(tmp / "c.pem", h.cert_for(key)),
            "image": _image(tmp / "img", 300_000), "tmp": tmp, "obj": key}


def _image(path, size):
    path.write_bytes(os.urandom(size))
    return path


def _sign(pair, *extra, key=None, cert=None, image=None):
    return invoke(["sign", image or pair["image"], "--key", key or pair["key"], "--cert-uuid", CERT_UUID,
                   "--cert", cert or pair["cert"], "--offline", *extra])


@pytest.mark.parametrize("args, expect", [
    ([], "RSA 3072"), (["--bits", "2048"], "RSA 2048"), (["--key-type", "ec", "--curve", "secp521r1"], "EC secp521r1"),
])
def test_cert_create_writes_private_key_and_nova_valid_certificate(tmp_path, args, expect):
    res = invoke(["cert", "create", "--out", tmp_path / "out", "--days", "30", "--cn", "publisher", *args,
                  "-f", "json"])
    assert res.exit_code == 0, res.output
    info = json.loads(res.stdout)
    assert info["key_type"] == expect and info["subject"] == "CN=publisher"
    key_path, cert_path = tmp_path / "out" / certs.KEY_FILE, tmp_path / "out" / certs.CERT_FILE
    assert stat.S_IMODE(key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert sig.public_keys_equal(key.public_key(), cert.public_key())
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_cert_sign and usage.digital_signature
    # cursive's chain check, as Nova runs it with the certificate's own id trusted.
    ctx = certificate_utils.CertificateVerificationContext([("own", cert)])
    ctx.update(cert)
    ctx.verify()


def test_plain_self_signed_cert_fails_cursive_chain_check():
    cert = h.plain_cert_for(h.rsa_key(2048))
    ctx = certificate_utils.CertificateVerificationContext([("own", cert)])
    ctx.update(cert)
    with pytest.raises(Exception, match="Certificate chain building failed"):
        ctx.verify()


def test_cert_create_csr_and_no_overwrite(tmp_path):
    res = invoke(["cert", "create", "--out", tmp_path, "--csr"])
    assert res.exit_code == 0, res.output
    csr = x509.load_pem_x509_csr((tmp_path / certs.CSR_FILE).read_bytes())
    assert csr.is_signature_valid
    before = (tmp_path / certs.KEY_FILE).read_bytes()
    res = invoke(["cert", "create", "--out", tmp_path, "--csr"])
    assert res.exit_code == 2 and "already exists" in res.stderr and "--force" in res.stderr
    assert (tmp_path / certs.KEY_FILE).read_bytes() == before


def test_cert_create_refuses_weak_key_without_override(tmp_path):
    res = invoke(["cert", "create", "--out", tmp_path / "a", "--bits", "1024"])
    assert res.exit_code == 2 and "too weak" in res.stderr and "Traceback" not in res.output
    assert not (tmp_path / "a" / certs.KEY_FILE).exists()
    res = invoke(["cert", "create", "--out", tmp_path / "b", "--bits", "1024", "--allow-weak-key"])
    assert res.exit_code == 0, res.output


def test_sign_text_and_glance_args_formats(pair):
    res = _sign(pair)
    assert res.exit_code == 0, res.output
    lines = dict(line.split("=", 1) for line in res.stdout.splitlines())
    assert set(lines) == set(sig.PROPERTIES) and lines[sig.KEY_TYPE] == "RSA-PSS"
    res = _sign(pair, "-f", "glance-args")
    assert res.exit_code == 0 and res.stdout.count("--property ") == 4
    assert "--property img_signature_hash_method=SHA-256" in res.stdout


@pytest.mark.parametrize("case, code, text", [
    ("mismatch", 3, "does not match"),
    ("expired", 3, "expired on"),
    ("not_yet_valid", 3, "is not valid before"),
    ("weak", 2, "too weak"),
    ("missing_image", 2, "No such file or directory"),
    ("unreadable_image", 2, "cannot read image"),
    ("empty_image", 2, "is empty"),
    ("directory_image", 2, "is a directory"),
    ("bad_hash", 2, "Invalid value for '--hash-method'"),
    ("bad_uuid", 2, "is not a Barbican secret UUID"),
    ("bad_key", 2, "is not a usable private key"),
    ("offline_no_cert", 2, "--offline needs --cert FILE"),
    ("no_signing_usage", 3, "does not allow digitalSignature"),
    ("p256", 2, "is not accepted by Glance and Nova"),
])
def test_sign_bad_inputs(pair, tmp_path, case, code, text, request):
    tmp = tmp_path
    args: dict = {}
    extra: list = []
    if case == "mismatch":
        args["cert"] = h.write_cert(tmp / "other.pem", h.cert_for(h.rsa_key(2048, which=1)))
    elif case == "expired":
        args["cert"] = h.write_cert(tmp / "old.pem", h.cert_for(pair["obj"], days=1, start_offset_days=-10))
    elif case == "not_yet_valid":
        args["cert"] = h.write_cert(tmp / "new.pem", h.cert_for(pair["obj"], days=30, start_offset_days=5))
    elif case == "weak":
        weak = h.rsa_key(1024)
        args["key"] = h.write_key(tmp / "weak.key", weak)
        args["cert"] = h.write_cert(tmp / "weak.pem", h.cert_for(weak))
    elif case == "missing_image":
        args["image"] = tmp / "nope.img"
    elif case == "unreadable_image":
        args["image"] = _image(tmp / "secret.img", 10)
        args["image"].chmod(0)
        if os.geteuid() == 0:
            _unreadable_as_nobody(pair, request.getfixturevalue("as_nobody"))
            return
    elif case == "empty_image":
        args["image"] = _image(tmp / "empty.img", 0)
    elif case == "directory_image":
        args["image"] = tmp
    elif case == "bad_hash":
        extra = ["--hash-method", "SHA256"]
    elif case == "bad_uuid":
        res = invoke(["sign", pair["image"], "--key", pair["key"], "--cert-uuid", "not-a-uuid", "--cert",
                      pair["cert"], "--offline"])
        assert res.exit_code == code and text in res.stderr
        return
    elif case == "bad_key":
        args["key"] = pair["cert"]
    elif case == "offline_no_cert":
        res = invoke(["sign", pair["image"], "--key", pair["key"], "--cert-uuid", CERT_UUID, "--offline"])
        assert res.exit_code == code and text in res.stderr
        return
    elif case == "no_signing_usage":
        args["cert"] = h.write_cert(tmp / "ku.pem", _cert_without_signing(pair["obj"]))
    elif case == "p256":
        from cryptography.hazmat.primitives.asymmetric import ec

        k = ec.generate_private_key(ec.SECP256R1())
        args["key"] = h.write_key(tmp / "p256.key", k)
        args["cert"] = h.write_cert(tmp / "p256.pem", h.plain_cert_for(k))
    res = _sign(pair, *extra, **args)
    assert res.exit_code == code, res.output
    assert text in res.stderr, res.stderr
    assert res.stderr.startswith("keytools: error: ") and "Traceback" not in res.output
    assert res.stdout == ""


def test_weak_key_allowed_with_override(pair, tmp_path):
    weak = h.rsa_key(1024)
    res = _sign(pair, "--allow-weak-key", key=h.write_key(tmp_path / "w.key", weak),
                cert=h.write_cert(tmp_path / "w.pem", h.cert_for(weak)))
    assert res.exit_code == 0, res.output


def test_encrypted_key_password_never_printed(pair, tmp_path):
    password = "s3cret-Passw0rd-xyz"
    enc = tmp_path / "enc.key"
    enc.write_bytes(pair["obj"].private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.BestAvailableEncryption(password.encode())))
    pw = tmp_path / "pw"
    pw.write_text(password + "\n")
    assert _sign(pair, "--key-password-file", pw, key=enc).exit_code == 0
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    res = _sign(pair, "--key-password-file", wrong, key=enc, image=tmp_path / "missing-" / password)
    assert res.exit_code == 2 and password not in res.output
    res = _sign(pair, key=enc)
    assert res.exit_code == 2 and "encrypted private key" in res.stderr


def _unreadable_as_nobody(pair, as_nobody):
    """As root every file is readable: run keytools as 'nobody' on a file it may not read."""
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        os.chmod(tmp, 0o755)
        files = {}
        for name in ("key", "cert"):
            files[name] = os.path.join(tmp, name)
            shutil.copy(pair[name], files[name])
            os.chmod(files[name], 0o644)
        image = os.path.join(tmp, "image")
        with open(image, "wb") as handle:
            handle.write(b"data")
        os.chmod(image, 0)
        res = as_nobody("sign", image, "--key", files["key"], "--cert-uuid", CERT_UUID, "--cert", files["cert"],
                        "--offline")
    assert res.returncode == 2, res.stderr
    assert "not readable" in res.stderr and image in res.stderr


def _cert_without_signing(key):
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "enc only")])
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.KeyUsage(False, False, True, False, False, False, False, False, False), True)
            .sign(key, hashes.SHA256()))


def test_corrupt_key_never_yields_a_signature(pair, tmp_path):
    from cryptography.hazmat.primitives.asymmetric import rsa

    n = pair["obj"].private_numbers()
    broken = rsa.RSAPrivateNumbers(n.p, n.q, n.d + 2, n.dmp1 + 2, n.dmq1, n.iqmp, n.public_numbers)
    key = broken.private_key(unsafe_skip_rsa_key_validation=True)
    res = _sign(pair, key=h.write_key(tmp_path / "broken.key", key))
    assert res.exit_code == 2 and "key file is corrupt" in res.stderr and res.stdout == ""
