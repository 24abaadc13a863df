"""End to end on the local cloud: Barbican stores the certificate, the real glance-api verifies at
upload (accepts a valid signature, answers HTTP 400 to tampered data), cursive's full get_verifier
and certificate validation (through castellan and the real Barbican) agree with keytools."""

from __future__ import annotations

import json
import os

import pytest
from castellan import key_manager as castellan_km
from castellan import options as castellan_options
from cryptography.hazmat.primitives import serialization
from cursive import certificate_utils, signature_utils
from cursive import exception as cursive_exc
from oslo_config import cfg
from oslo_context import context as oslo_context

from keytools import image_signature as sig
from sign import certs, upload
from tests.sign_verify import sign_verify_helpers as h


@pytest.fixture(scope="module")
def cloud(sandbox_with):
    return sandbox_with("glance")


@pytest.fixture(scope="module")
def publisher(cloud, tmp_path_factory):
    """A keytools-made key and certificate, stored in Barbican by the demo user."""
    from tests.helpers.cli import invoke

    tmp = tmp_path_factory.mktemp("publisher")
    env = {"OS_CLIENT_CONFIG_FILE": str(cloud.clouds_yaml)}
    res = invoke(["cert", "create", "--out", tmp, "--bits", "2048"], env=env)
    assert res.exit_code == 0, res.output
    res = invoke(["--os-cloud", "sandbox-demo", "cert", "store", tmp / certs.CERT_FILE], env=env)
    assert res.exit_code == 0, res.output
    image = tmp / "cirros.raw"
    image.write_bytes(os.urandom(3 * 1024 * 1024 + 17))
    return {"dir": tmp, "key": tmp / certs.KEY_FILE, "cert": tmp / certs.CERT_FILE, "uuid": res.stdout.strip(),
            "image": image}


def _demo(kt, *args):
    return kt("--os-cloud", "sandbox-demo", *args)


def test_cert_store_is_idempotent_and_listed(kt, publisher):
    res = _demo(kt, "cert", "store", publisher["cert"], "-f", "json")
    assert res.exit_code == 0, res.output
    again = json.loads(res.stdout)
    assert again["uuid"] == publisher["uuid"] and again["created"] is False
    res = _demo(kt, "cert", "list", "-f", "json")
    rows = {r["uuid"]: r for r in json.loads(res.stdout)}
    row = rows[publisher["uuid"]]
    assert row["status"] == "valid" and row["subject"].startswith("CN=Glance image signing")


def test_stored_as_documented(creator_session, publisher):
    from keytools import keymanager

    secret = keymanager.barbican_client(creator_session).secrets.get(publisher["uuid"])
    assert secret.secret_type == "certificate" and secret.algorithm == "RSA"
    assert secret.payload == publisher["cert"].read_bytes()  # PEM bytes, what castellan reads


def test_sign_upload_accepted_by_glance_and_verified_by_image_id(kt, publisher):
    res = _demo(kt, "sign", publisher["image"], "--key", publisher["key"], "--cert-uuid", publisher["uuid"],
                "--cert", publisher["cert"], "--upload", "--name", "signed-e2e", "-f", "json")
    assert res.exit_code == 0, res.output
    image = json.loads(res.stdout)["image"]
    assert image["status"] == "active" and image["size"] == publisher["image"].stat().st_size
    res = _demo(kt, "verify", "--image-id", image["id"], "-f", "json")
    assert res.exit_code == 0, res.output
    verdict = json.loads(res.stdout)
    assert verdict["verdict"] == "valid" and verdict["size"] == image["size"]
    res = _demo(kt, "verify", "--image-id", image["id"], "--trusted-cert", publisher["uuid"])
    assert res.exit_code == 0 and f"trusted_chain: {publisher['uuid']}" in res.stdout


def _signed_props(kt, publisher, image=None):
    res = _demo(kt, "sign", image or publisher["image"], "--key", publisher["key"], "--cert-uuid",
                publisher["uuid"], "-f", "json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)["properties"]


def test_glance_rejects_tampered_upload_with_400(kt, creator_session, publisher, tmp_path):
    from glanceclient import exc as glance_exc

    props = _signed_props(kt, publisher)
    tampered = tmp_path / "tampered.raw"
    data = bytearray(publisher["image"].read_bytes())
    data[1000] ^= 0x01
    tampered.write_bytes(bytes(data))
    client = upload.glance_client(creator_session)
    image = client.images.create(name="tampered-raw", disk_format="raw", container_format="bare", **props)
    try:
        with open(tampered, "rb") as handle, pytest.raises(glance_exc.HTTPBadRequest) as info:
            client.images.upload(image["id"], handle, image_size=len(data))
        assert info.value.code == 400 and "Signature verification failed" in str(info.value)
        assert client.images.get(image["id"])["status"] == "queued"
    finally:
        client.images.delete(image["id"])
    # keytools' own upload says so and leaves nothing behind.
    before = {i["id"] for i in client.images.list()}
    with pytest.raises(Exception) as info:
        upload.upload(creator_session, tampered, props, upload.ImageOptions("tampered-kt"))
    assert getattr(info.value, "exit_code", None) == 1 and "Signature verification failed" in str(info.value)
    assert {i["id"] for i in client.images.list()} == before


def test_verify_image_id_detects_tampered_image(kt, creator_session, publisher, tmp_path):
    """Properties added after the upload (Glance verifies only at upload): verify --image-id catches it."""
    props = _signed_props(kt, publisher)
    client = upload.glance_client(creator_session)
    image = client.images.create(name="tampered-later", disk_format="raw", container_format="bare")
    try:
        original = publisher["image"].read_bytes()
        tampered = original[:-1] + bytes([original[-1] ^ 0x01])  # always differs
        import io

        client.images.upload(image["id"], io.BytesIO(tampered), image_size=len(tampered))
        client.images.update(image["id"], **props)
        res = _demo(kt, "verify", "--image-id", image["id"])
        assert res.exit_code == 1, res.output
        assert res.stdout.startswith("INVALID: ") and "signature verification failed" in res.stderr
    finally:
        client.images.delete(image["id"])


@pytest.fixture(scope="module")
def cursive_with_barbican(cloud):
    """cursive's key-manager lookup, through castellan's Barbican backend on the sandbox."""
    conf = cfg.ConfigOpts()
    castellan_options.set_defaults(conf, backend="barbican", auth_endpoint=cloud.keystone_url)
    original = signature_utils.key_manager.API
    signature_utils.key_manager.API = lambda configuration=None: original(conf)
    try:
        yield
    finally:
        signature_utils.key_manager.API = original


def _context(session):
    return oslo_context.RequestContext(auth_token=session.get_token(), project_id=session.get_project_id())


def test_cursive_get_verifier_and_nova_cert_validation_agree(kt, cursive_with_barbican, creator_session, publisher):
    props = _signed_props(kt, publisher)
    ctx = _context(creator_session)
    verifier = signature_utils.get_verifier(ctx, props[sig.CERT_UUID], props[sig.HASH_METHOD],
                                            props[sig.SIGNATURE], props[sig.KEY_TYPE])
    verifier.update(publisher["image"].read_bytes())
    verifier.verify()
    certificate_utils.verify_certificate(ctx, publisher["uuid"], [publisher["uuid"]])


def test_plain_openssl_style_cert_rejected_by_nova_and_keytools(kt, cursive_with_barbican, creator_session,
                                                                publisher, tmp_path):
    key = serialization.load_pem_private_key(publisher["key"].read_bytes(), None)
    plain = h.write_cert(tmp_path / "plain.pem", h.plain_cert_for(key, "plain-e2e"))
    res = _demo(kt, "cert", "store", plain)
    assert res.exit_code == 0, res.output
    plain_uuid = res.stdout.strip()
    ctx = _context(creator_session)
    with pytest.raises(cursive_exc.SignatureVerificationError, match="chain building failed"):
        certificate_utils.verify_certificate(ctx, plain_uuid, [plain_uuid])
    res = _demo(kt, "sign", publisher["image"], "--key", publisher["key"], "--cert-uuid", plain_uuid, "-f", "json")
    assert res.exit_code == 0, res.output
    props = json.loads(res.stdout)["properties"]
    res = _demo(kt, "verify", publisher["image"], "--properties", json.dumps(props))
    assert res.exit_code == 0 and "self-signed without CA:TRUE/keyCertSign" in res.stdout
    res = _demo(kt, "verify", publisher["image"], "--properties", json.dumps(props), "--trusted-cert", plain_uuid)
    assert res.exit_code == 3, res.output
    assert "is not trusted" in res.stderr and "keytools cert create" in res.stderr


def test_ca_chain_with_trusted_ca(kt, cursive_with_barbican, creator_session, publisher, tmp_path):
    ca_key = serialization.load_pem_private_key(publisher["key"].read_bytes(), None)
    ca_cert = certs.read_certificate(publisher["cert"])
    leaf_key = h.ec_key("secp384r1")
    leaf = h.write_cert(tmp_path / "leaf.pem", h.leaf_signed_by(ca_key, ca_cert, leaf_key, "leaf-e2e"))
    leaf_key_path = h.write_key(tmp_path / "leaf.key", leaf_key)
    leaf_uuid = _demo(kt, "cert", "store", leaf).stdout.strip()
    res = _demo(kt, "sign", publisher["image"], "--key", leaf_key_path, "--cert-uuid", leaf_uuid, "-f", "json")
    assert res.exit_code == 0, res.output
    props = json.loads(res.stdout)["properties"]
    assert props[sig.KEY_TYPE] == "ECC_SECP384R1"
    res = _demo(kt, "sign", publisher["image"], "--key", leaf_key_path, "--cert-uuid", leaf_uuid, "--upload",
                "--name", "ecc-signed", "--hash-method", "SHA-384", "-f", "json")
    assert res.exit_code == 0, res.output  # glance-api verified an ECDSA P-384 / SHA-384 signature
    assert json.loads(res.stdout)["image"]["status"] == "active"
    res = _demo(kt, "verify", publisher["image"], "--properties", json.dumps(props), "--trusted-cert",
                publisher["uuid"], "-f", "json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["trusted_chain"] == [publisher["uuid"], leaf_uuid]
    ctx = _context(creator_session)
    certificate_utils.verify_certificate(ctx, leaf_uuid, [publisher["uuid"]])
    # Trusting only the leaf itself is not enough, for Nova and for keytools.
    with pytest.raises(cursive_exc.SignatureVerificationError):
        certificate_utils.verify_certificate(ctx, leaf_uuid, [leaf_uuid])
    res = _demo(kt, "verify", publisher["image"], "--properties", json.dumps(props), "--trusted-cert", leaf_uuid)
    assert res.exit_code == 3 and "is not trusted" in res.stderr


def test_certificate_and_service_problems(kt, cloud, publisher, tmp_path):
    props = _signed_props(kt, publisher)
    unknown = dict(props, img_signature_certificate_uuid="7d1e2f3a-4b5c-4d6e-8f90-a1b2c3d4e5f6")
    res = _demo(kt, "verify", publisher["image"], "--properties", json.dumps(unknown))
    assert res.exit_code == 3 and "certificate not found in Barbican" in res.stderr
    # The Barbican copy must be the certificate given, and the key must match it.
    other = h.rsa_key(2048, which=7)
    other_cert = h.write_cert(tmp_path / "other.pem", h.cert_for(other))
    res = _demo(kt, "sign", publisher["image"], "--key", publisher["key"], "--cert-uuid", publisher["uuid"],
                "--cert", other_cert)
    assert res.exit_code == 3 and "is not" in res.stderr
    res = _demo(kt, "sign", publisher["image"], "--key", h.write_key(tmp_path / "o.key", other), "--cert-uuid",
                publisher["uuid"])
    assert res.exit_code == 3 and "does not match" in res.stderr
    expired = h.write_cert(tmp_path / "expired.pem", h.cert_for(other, days=1, start_offset_days=-3))
    res = _demo(kt, "cert", "store", expired)
    assert res.exit_code == 3 and "expired on" in res.stderr
    # Key manager unreachable: nothing answers where the cloud points.
    from keytools.sandbox import processes

    dead = processes.free_ports(1)[0]
    clouds = cloud.clouds_yaml.read_text().replace(cloud.keystone_url, f"http://127.0.0.1:{dead}/v3")
    yaml_path = tmp_path / "clouds.yaml"
    yaml_path.write_text(clouds)
    res = kt("--os-cloud", "sandbox-demo", "verify", publisher["image"], "--properties", json.dumps(props),
             env={"OS_CLIENT_CONFIG_FILE": str(yaml_path)})
    assert res.exit_code == 4, res.output
    assert "cannot reach" in res.stderr and "Traceback" not in res.output


def test_sandbox_glance_config(cloud):
    """glance-api's config lives in the state dir (0600: it holds the glance password), loopback only."""
    import stat

    from keytools import oslo_ini
    from keytools.sandbox import glance

    path = glance.config_file(cloud.state)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    conf = oslo_ini.parse_file(str(path))
    assert conf.get("key_manager", "backend") == "barbican"
    assert conf.get("barbican", "auth_endpoint") == cloud.keystone_url
    assert conf.get("paste_deploy", "flavor") == "keystone"
    assert conf.get("glance_store", "filesystem_store_datadir").startswith(str(cloud.state.root))
    assert cloud.url("glance").startswith("http://127.0.0.1:")
