"""volume-type create/check/list against the sandbox's real cinder-api (Keystone auth, Barbican).

Type names carry a per-run suffix: the sandbox is shared by the whole test session.
"""

from __future__ import annotations

import json
import stat
import uuid

import pytest

from keytools import keymanager
from keytools.volume_types import cinder_api, manage, spec
from tests.helpers.cli import keytools_argv
from tests.helpers.kill import kill_when, spawn

ADMIN = ("--os-cloud", "sandbox-admin")
DEMO = ("--os-cloud", "sandbox-demo")
RUN = uuid.uuid4().hex[:6]


def name(label: str) -> str:
    return f"kt-{label}-{RUN}"


@pytest.fixture(scope="module")
def cloud(sandbox_with):
    return sandbox_with("cinder")


@pytest.fixture(scope="module")
def admin_cinder(cloud):
    return cinder_api.client(cloud.session("admin"))


@pytest.fixture(scope="module")
def demo_cinder(cloud):
    return cinder_api.client(cloud.session("demo"))


def as_json(result) -> dict | list:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def raw_encrypted_type(cinder, type_name: str, encryption: dict) -> str:
    """A type made directly through cinderclient, bypassing keytools' validation (like a cloud
    configured by hand), to see what ``check`` says about it."""
    volume_type = cinder.volume_types.create(type_name)
    cinder.volume_encryption_types.create(volume_type.id, encryption)
    return volume_type.id


def test_sandbox_cinder_is_registered_and_private(cloud) -> None:
    conf = cloud.state.path("cinder", "cinder.conf")
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    assert "auth_strategy = keystone" in text and "backend = barbican" in text
    endpoint = cloud.session("demo").get_endpoint(service_type="volumev3", interface="public")
    assert endpoint.startswith(f"http://127.0.0.1:{cloud.config.ports['cinder']}/v3/")


def test_create_unchanged_conflict(kt, cloud, admin_cinder) -> None:
    n = name("basic")
    first = as_json(kt(*ADMIN, "volume-type", "create", n, "--description", "LUKS 256", "-f", "json"))
    assert first["action"] == "created"
    assert (first["provider"], first["cipher"], first["key_size"], first["control_location"]) == \
        ("luks", "aes-xts-plain64", 256, "front-end")
    again = as_json(kt(*ADMIN, "volume-type", "create", n, "--description", "LUKS 256", "-f", "json"))
    assert again["action"] == "unchanged" and again["id"] == first["id"]
    # the legacy class name means the same provider: still unchanged
    legacy = kt(*ADMIN, "volume-type", "create", n, "--provider", "nova.volume.encryptors.luks.LuksEncryptor")
    assert legacy.exit_code == 0 and "unchanged" in legacy.stdout

    conflict = kt(*ADMIN, "volume-type", "create", n, "--key-size", "512")
    assert conflict.exit_code == 1
    assert f"volume type '{n}' exists with a different definition: key_size 256 (wanted 512)" in conflict.stderr
    assert "--update" in conflict.stderr and "Traceback" not in conflict.output
    # nothing changed, and the pending marker is gone
    record = cinder_api.find_type(admin_cinder, n)
    assert record.encryption["key_size"] == 256
    assert manage.PENDING_KEY not in record.extra_specs
    assert record.description == "LUKS 256"


def test_update_when_unused(kt, admin_cinder) -> None:
    n = name("upd")
    assert kt(*ADMIN, "volume-type", "create", n).exit_code == 0
    result = as_json(kt(*ADMIN, "volume-type", "create", n, "--key-size", "512", "--description", "v2",
                        "--update", "-f", "json"))
    assert result["action"] == "updated" and result["key_size"] == 512
    record = cinder_api.find_type(admin_cinder, n)
    assert record.encryption["key_size"] == 512 and record.description == "v2"


def test_encrypted_volume_e2e_and_update_refused_in_use(kt, cloud, admin_cinder, demo_cinder) -> None:
    """demo (creator) creates an encrypted volume through cinder-api: Cinder stores its key in
    Barbican as demo. Then the type is in use and Cinder refuses to change its encryption."""
    n = name("inuse")
    assert kt(*ADMIN, "volume-type", "create", n).exit_code == 0
    volume = demo_cinder.volumes.create(1, volume_type=n, name=f"vol-{RUN}")
    try:
        shown = demo_cinder.volumes.get(volume.id)
        assert shown.encrypted is True and shown.status == "creating"  # no cinder-volume: stays creating
        key_id = shown.encryption_key_id
        secret = keymanager.barbican_client(cloud.session("demo")).secrets.get(
            f"{keymanager.barbican_endpoint(cloud.session('demo'))}/v1/secrets/{key_id}")
        assert secret.algorithm.lower() == "aes" and secret.bit_length == 256

        refused = kt(*ADMIN, "volume-type", "create", n, "--key-size", "512", "--update")
        assert refused.exit_code == 6, refused.output
        assert f"volume type '{n}' is in use; Cinder says: Cannot update encryption specs. Volume type in use" \
            in refused.stderr
        assert cinder_api.find_type(admin_cinder, n).encryption["key_size"] == 256

        # check infers the key manager through the API from the volume's key id in Barbican
        report = as_json(kt(*ADMIN, "volume-type", "check", n, "-f", "json"))
        assert report["key_manager"]["backend"] == "barbican"
        assert "looked up in Barbican" in report["key_manager"]["source"]
    finally:
        admin_cinder.volumes.reset_state(volume, state="error")
        admin_cinder.volumes.delete(volume)


def test_interrupted_create_is_completed_by_rerun(kt, admin_cinder) -> None:
    """A crash after the type POST (marker set, no encryption yet) and one after the encryption
    POST (marker still set): a rerun finishes both."""
    wanted = spec.build()
    n1, n2 = name("crash1"), name("crash2")
    manage._create_type(admin_cinder, manage.Request(n1, wanted))
    type2 = manage._create_type(admin_cinder, manage.Request(n2, wanted))
    admin_cinder.volume_encryption_types.create(type2, wanted.as_body())

    first = as_json(kt(*ADMIN, "volume-type", "create", n1, "-f", "json"))
    assert first["action"] == "created" and first["changes"] == ["completed an interrupted create"]
    second = as_json(kt(*ADMIN, "volume-type", "create", n2, "-f", "json"))
    assert second["action"] == "unchanged"
    for n in (n1, n2):
        record = cinder_api.find_type(admin_cinder, n)
        assert record.encryption["cipher"] == "aes-xts-plain64"
        assert manage.PENDING_KEY not in record.extra_specs


def test_existing_unencrypted_type_is_a_conflict(kt, admin_cinder) -> None:
    n = name("plain")
    admin_cinder.volume_types.create(n)
    result = kt(*ADMIN, "volume-type", "create", n)
    assert result.exit_code == 1 and "not encrypted" in result.stderr
    assert cinder_api.find_type(admin_cinder, n).encryption is None
    assert kt(*ADMIN, "volume-type", "create", n, "--update").exit_code == 0
    assert cinder_api.find_type(admin_cinder, n).encryption["provider"] == "luks"


def test_private_type_with_project_access(kt, cloud, admin_cinder, demo_cinder) -> None:
    n = name("priv")
    created = as_json(kt(*ADMIN, "volume-type", "create", n, "--private", "--project", "demo", "-f", "json"))
    assert created["public"] is False
    demo_project = cloud.session("demo").get_project_id()
    assert cinder_api.type_access(admin_cinder, created["id"]) == {demo_project}
    assert n in {t.name for t in demo_cinder.volume_types._list("/types", "volume_types")}
    again = as_json(kt(*ADMIN, "volume-type", "create", n, "--private", "--project", "demo", "-f", "json"))
    assert again["action"] == "unchanged"
    public = kt(*ADMIN, "volume-type", "create", n)
    assert public.exit_code == 1 and "visibility private (wanted public)" in public.stderr


def test_unknown_project(kt, cloud) -> None:
    result = kt(*ADMIN, "volume-type", "create", name("noproj"), "--private", "--project", "no-such-project")
    assert result.exit_code == 2 and "--project 'no-such-project': no such Keystone project" in result.stderr


def test_template_256(kt, admin_cinder) -> None:
    result = as_json(kt(*ADMIN, "volume-type", "create", "--template", "256", "-f", "json"))
    assert result["name"] == "LuksEncryptor-Template-256" and result["action"] in ("created", "unchanged")
    again = as_json(kt(*ADMIN, "volume-type", "create", "--template", "256", "-f", "json"))
    assert again["action"] == "unchanged"


def test_non_admin_gets_clear_error(kt, cloud) -> None:
    result = kt(*DEMO, "volume-type", "create", name("demo"))
    assert result.exit_code == 5
    assert "Cinder refused the request" in result.stderr and "admin" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    listing = kt(*DEMO, "volume-type", "list")
    assert listing.exit_code == 5 and "volume_type_encryption:get" in listing.stderr


def test_check_good_and_bad_types(kt, admin_cinder) -> None:
    good = name("good")
    assert kt(*ADMIN, "volume-type", "create", good, "--key-size", "512").exit_code == 0
    bad = {
        name("short"): ({"provider": "luks", "cipher": "aes-xts-plain64", "key_size": 128,
                         "control_location": "front-end"}, "key size 128 is not valid"),
        name("cbc"): ({"provider": "luks", "cipher": "aes-cbc-plain64", "key_size": 256,
                       "control_location": "front-end"}, "predictable IV"),
        name("bogus"): ({"provider": "luks", "cipher": "aes-foo-plain64", "key_size": 256,
                         "control_location": "front-end"}, "unknown chain mode 'foo'"),
        name("legacy"): ({"provider": "nova.volume.encryptors.luks.LuksEncryptor", "cipher": "aes-xts-plain64",
                          "key_size": 256, "control_location": "front-end"}, None),
    }
    for type_name, (encryption, _) in bad.items():
        raw_encrypted_type(admin_cinder, type_name, encryption)

    ok = kt(*ADMIN, "volume-type", "check", good, name("legacy"))
    assert ok.exit_code == 0, ok.output
    assert "can create encrypted volumes: yes" in ok.stdout

    result = kt(*ADMIN, "volume-type", "check", good, *bad, "no-such-type", "-f", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    rows = {row["name"]: row for row in report["types"]}
    assert rows[good]["sane"] is True
    for type_name, (_, fragment) in bad.items():
        if fragment:
            assert rows[type_name]["sane"] is False
            assert any(fragment in p for p in rows[type_name]["problems"]), rows[type_name]
    assert rows["no-such-type"]["problems"] == ["no such volume type"]
    assert report["problem_count"] == 4
    assert "found 4 problems" in result.stderr


def test_check_all_types_table_and_list(kt, admin_cinder) -> None:
    assert kt(*ADMIN, "volume-type", "create", name("listed")).exit_code == 0
    table = kt(*ADMIN, "volume-type", "check")
    assert name("listed") in table.stdout and "key manager:" in table.stdout
    rows = as_json(kt(*ADMIN, "volume-type", "list", "--encrypted", "-f", "json"))
    assert all(r["encrypted"] for r in rows)
    assert {"name", "provider", "cipher", "key_size", "control_location"} <= set(rows[0])
    every = as_json(kt(*ADMIN, "volume-type", "list", "-f", "json"))
    assert "__DEFAULT__" in {r["name"] for r in every}
    assert "__DEFAULT__" not in {r["name"] for r in rows}


def test_check_key_manager_from_config_file(kt, cloud, tmp_path) -> None:
    n = name("cfg")
    assert kt(*ADMIN, "volume-type", "create", n).exit_code == 0
    ok = as_json(kt(*ADMIN, "volume-type", "check", n, "--config-file",
                    str(cloud.state.path("cinder", "cinder.conf")), "-f", "json"))
    assert ok["key_manager"]["backend"] == "barbican" and "[key_manager] backend = barbican" in \
        ok["key_manager"]["source"]
    legacy = tmp_path / "cinder.conf"
    legacy.write_text("[key_manager]\nbackend = cinder.keymgr.conf_key_mgr.ConfKeyManager\nfixed_key = 00ff\n")
    result = kt(*ADMIN, "volume-type", "check", n, "--config-file", str(legacy))
    assert result.exit_code == 1
    assert "not Barbican" in result.stdout and f"{legacy}:2" in result.stdout
    assert "00ff" not in result.output


def test_check_as_user_without_creator(kt, cloud) -> None:
    result = kt("--os-cloud", "sandbox-cinder", "volume-type", "check", "-f", "json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["creator"]["allowed"] is False
    assert report["creator"]["remedy"].startswith("openstack role add --user cinder --project service creator")
    assert any("type checks skipped" in p for p in report["problems"])


def test_check_as_demo_can_create(kt, cloud) -> None:
    report = json.loads(kt(*DEMO, "volume-type", "check", "-f", "json").stdout)
    assert report["creator"]["allowed"] is True and report["creator"]["user"] == "demo"


def test_concurrent_creates_converge(cloud, admin_cinder) -> None:
    """Three runs creating the same type at once: all succeed, one type with the spec, no marker."""
    from concurrent.futures import ThreadPoolExecutor

    n = name("race")
    wanted = spec.build(key_size=512)
    clients = [cinder_api.client(cloud.session("admin")) for _ in range(3)]
    with ThreadPoolExecutor(3) as pool:
        outcomes = list(pool.map(lambda c: manage.ensure(c, manage.Request(n, wanted)), clients))
    assert {o.type_id for o in outcomes} == {outcomes[0].type_id}
    assert "created" in {o.action for o in outcomes}
    assert [t.name for t in cinder_api.list_types(admin_cinder, with_encryption=False)].count(n) == 1
    record = cinder_api.find_type(admin_cinder, n)
    assert record.encryption["key_size"] == 512 and manage.PENDING_KEY not in record.extra_specs


@pytest.mark.parametrize("kill_after", ["/types returned with HTTP 200", "/encryption returned with HTTP 200"])
def test_kill_9_during_create_then_rerun_converges(kt, cloud, admin_cinder, kill_after: str) -> None:
    """SIGKILL the CLI right after Cinder answered the type POST (or the encryption POST), then rerun."""
    n = name(f"kill{len(kill_after)}")
    log = cloud.state.path("logs", "cinder.log")
    offset = log.stat().st_size

    def answered() -> bool:
        with open(log, errors="replace") as handle:
            handle.seek(offset)
            return kill_after in handle.read()

    kill_when(spawn(keytools_argv(*ADMIN, "volume-type", "create", n), cloud.env()), answered, timeout=60, poll=0.005)
    rerun = as_json(kt(*ADMIN, "volume-type", "create", n, "-f", "json"))
    assert rerun["action"] in ("created", "unchanged")
    record = cinder_api.find_type(admin_cinder, n)
    assert record.encryption["cipher"] == "aes-xts-plain64" and record.encryption["key_size"] == 256
    assert manage.PENDING_KEY not in record.extra_specs
    assert [t.name for t in cinder_api.list_types(admin_cinder, with_encryption=False)].count(n) == 1
