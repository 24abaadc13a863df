"""Nova: cells from nova-manage's own schema, inventory, migrate plan/run/verify/status of instances'
ephemeral keys, own-token reads through castellan, --acl project for Cinder, retire gating, and
bad input (unreachable or wrong nova_api/cell databases) with one-line errors and nothing changed."""

from __future__ import annotations

import base64
import json
import secrets
import uuid

import pytest
import sqlalchemy as sa
from castellan import key_manager as castellan_km
from castellan import options as castellan_options
from castellan.common import exception as castellan_exc
from keystoneauth1 import loading
from keystoneauth1 import session as ks_session
from oslo_config import cfg
from oslo_context import context as oslo_context

from keytools.cinder_db import FIXED_KEY_ID
from tests.helpers.db_seed import instance_keys, keys, seed, seed_instances

OTHER = str(uuid.uuid4())


def _nova_args(nova_dbs, key_file, state, *extra):
    """Nova's default --acl project lists members and admins from Keystone: a run names an admin cloud."""
    admin = ["--admin-cloud", "sandbox-admin"] if extra[:1] == ("run",) else []
    return ["--os-cloud", "sandbox-demo", "migrate", *extra[:1], "--nova-api-db-url", nova_dbs["api"],
            "--fixed-key-file", str(key_file), "--state-dir", str(state), *admin, *extra[1:]]


def _seed_cells(nova_dbs):
    rows = {"cell1": seed_instances(nova_dbs["cell1"], 3, project_id="p-a", host="cmp-1"),
            "cell2": seed_instances(nova_dbs["cell2"], 2, project_id="p-b", host="cmp-2"),
            "cell0": seed_instances(nova_dbs["cell0"], 1, project_id="p-a", host=None)}
    untouched = (seed_instances(nova_dbs["cell1"], 1, key_id=OTHER) + seed_instances(nova_dbs["cell1"], 1, key_id=None)
                 + seed_instances(nova_dbs["cell2"], 2, deleted=True))
    return rows, untouched


def test_inventory_counts_every_service_and_names_what_it_could_not_see(kt, nova_dbs, cinder_url):
    _seed_cells(nova_dbs)
    seed(cinder_url, volumes=2, snapshots_per_volume=1, backups=1)
    seed(cinder_url, volumes=1, deleted=True)
    # an old backup (NULL key id) of an encrypted volume type: may depend on fixed_key
    eng = sa.create_engine(cinder_url)
    with eng.begin() as c:
        vt = c.execute(sa.text("SELECT id FROM volume_types WHERE name = 'LuksEncryptor-Template-256'")).scalar_one()
        c.execute(sa.text("INSERT INTO encryption (encryption_id, volume_type_id, cipher, key_size, provider, "
                          "control_location, deleted) VALUES (:e, :t, 'aes-xts-plain64', 256, 'luks', "
                          "'front-end', 0)"), {"e": str(uuid.uuid4()), "t": vt})
        vol = c.execute(sa.text("SELECT id FROM volumes LIMIT 1")).scalar_one()
        c.execute(sa.text("INSERT INTO backups (id, volume_id, host, project_id, encryption_key_id, deleted, status) "
                          "VALUES (:i, :v, 'ctl-0', 'p-owner', NULL, 0, 'available')"), {"i": str(uuid.uuid4()), "v": vol})
    eng.dispose()
    r = kt("fixed-key", "inventory", "--db-url", cinder_url, "--nova-api-db-url", nova_dbs["api"], "--format", "json")
    assert r.exit_code == 1, r.output
    inv = json.loads(r.stdout)
    assert inv["per_service"] == {"cinder": 6, "nova": 6}
    kinds = {(x["service"], x["kind"], x["location"]): x["count"] for x in inv["references"]}
    assert kinds[("nova", "instances", "cell1/cmp-1")] == 3 and kinds[("nova", "instances", "cell2/cmp-2")] == 2
    assert kinds[("nova", "instances", "cell0/-")] == 1
    assert kinds[("cinder", "backups_may_depend", "ctl-0")] == 1
    assert not [x for x in inv["references"] if x["kind"] == "backups_may_depend" and x["certain"]]
    assert [b["service"] for b in inv["blind"]] == ["glance"]
    r = kt("fixed-key", "inventory", "--nova-db-url", f"c1={nova_dbs['cell1']}")
    assert r.exit_code == 1 and "cinder: NOT SEEN" in r.stdout and "c1/cmp-1" in r.stdout


def test_nova_plan_run_verify_status_and_rerun(kt, sandbox, nova_dbs, key_file, fixed_key_hex, creator_session,
                                               tmp_path):
    rows, untouched = _seed_cells(nova_dbs)
    state = tmp_path / "st"
    before = {c: instance_keys(nova_dbs[c]) for c in ("cell0", "cell1", "cell2")}
    r = kt(*_nova_args(nova_dbs, key_file, state, "plan", "--format", "json"))
    assert r.exit_code == 0, r.output
    plan = json.loads(r.stdout)
    assert plan["service"] == "nova" and plan["to_migrate"] == {"instances": 6}
    assert {c: instance_keys(nova_dbs[c]) for c in before} == before  # plan changes nothing
    r = kt("migrate", "finish", "--nova-api-db-url", nova_dbs["api"], "--state-dir", str(state))
    assert r.exit_code == 6 and "6 instance(s) still use the all-zeros key id" in r.stderr, r.output
    r = kt(*_nova_args(nova_dbs, key_file, state, "run", "--concurrency", "2", "--format", "json"))
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["service"] == "nova" and out["migrated"] == {"instances": 6} and out["remaining"] == {"instances": 0}
    from keytools import keymanager

    client = keymanager.barbican_client(creator_session)
    endpoint = keymanager.barbican_endpoint(creator_session)
    seen = set()
    for cell, ids in rows.items():
        current = instance_keys(nova_dbs[cell])
        for uid in ids:
            kid = current[uid]
            assert kid != FIXED_KEY_ID and kid not in seen
            seen.add(kid)
            assert client.secrets.get(f"{endpoint}/v1/secrets/{kid}").payload == bytes.fromhex(fixed_key_hex)
    for cell in ("cell1", "cell2"):
        current = instance_keys(nova_dbs[cell])
        for uid in untouched:
            if uid in current:
                assert current[uid] == before[cell][uid]  # other ids, NULL, deleted rows: untouched
    r = kt(*_nova_args(nova_dbs, key_file, state, "verify", "--format", "json"))
    assert r.exit_code == 0 and json.loads(r.stdout)["checked"] == 6, r.output
    r = kt(*_nova_args(nova_dbs, key_file, state, "run", "--format", "json"))
    assert r.exit_code == 0 and json.loads(r.stdout)["skipped"], r.output
    r = kt("migrate", "finish", "--nova-api-db-url", nova_dbs["api"], "--state-dir", str(state))
    assert r.exit_code == 0, r.output
    r = kt("migrate", "status", "--nova-api-db-url", nova_dbs["api"], "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["nova"]["remaining"] == {"instances": 0}, r.output
    # verify notices a row pointed elsewhere
    eng = sa.create_engine(nova_dbs["cell1"])
    with eng.begin() as c:
        c.execute(sa.text("UPDATE instances SET ephemeral_key_uuid = :o WHERE uuid = :u"),
                  {"o": OTHER, "u": rows["cell1"][0]})
    eng.dispose()
    r = kt(*_nova_args(nova_dbs, key_file, state, "verify"))
    assert r.exit_code == 1 and "row now uses key" in r.stdout


def test_cinder_and_nova_in_one_run(kt, sandbox, nova_dbs, cinder_url, key_file, tmp_path):
    seed(cinder_url, volumes=2, snapshots_per_volume=1, backups=1)
    _seed_cells(nova_dbs)
    args = ["--os-cloud", "sandbox-demo", "migrate", "run", "--admin-cloud", "sandbox-admin", "--db-url", cinder_url, "--nova-api-db-url",
            nova_dbs["api"], "--fixed-key-file", str(key_file), "--state-dir", str(tmp_path / "st"),
            "--concurrency", "2", "--format", "json"]
    r = kt(*args)
    assert r.exit_code == 0, r.output
    out = {o["service"]: o for o in json.loads(r.stdout)["services"]}
    assert out["cinder"]["migrated"] == {"volumes": 2, "snapshots": 2, "backups": 1}
    assert out["nova"]["migrated"] == {"instances": 6}
    r = kt(*args[:-2], "--service", "nova", "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["service"] == "nova"


# ---- own-token reads through castellan -------------------------------------------------------------

@pytest.fixture(scope="module")
def two_projects(sandbox, admin_session):
    """Real Keystone users: alice and carol in project A (member), bob in project B (member), ada an
    admin of project C (as the cloud's admins are of their own project, not of the users')."""
    from keystoneclient.v3 import client as ks_client

    ks = ks_client.Client(session=admin_session, interface="public")
    tag = uuid.uuid4().hex[:6]
    member = next(r for r in ks.roles.list(name="member") if r.name == "member")
    admin = next(r for r in ks.roles.list(name="admin") if r.name == "admin")
    made = {"users": [], "projects": []}
    out = {}
    for pname, users in (("A", ("alice", "carol")), ("B", ("bob",)), ("C", ("ada",))):
        project = ks.projects.create(name=f"kt-{pname}-{tag}", domain="default")
        made["projects"].append(project)
        for uname in users:
            pw = secrets.token_urlsafe(12)
            user = ks.users.create(name=f"kt-{uname}-{tag}", password=pw, domain="default", default_project=project)
            ks.roles.grant(admin if pname == "C" else member, user=user, project=project)
            made["users"].append(user)
            out[uname] = {"id": user.id, "name": user.name, "password": pw, "project": project.id}
    yield out
    for u in made["users"]:
        ks.users.delete(u)
    for p in made["projects"]:
        ks.projects.delete(p)


def _user_session(sandbox, user) -> ks_session.Session:
    plugin = loading.get_plugin_loader("password").load_from_options(
        auth_url=sandbox.keystone_url, username=user["name"], password=user["password"], project_id=user["project"],
        user_domain_name="Default")
    return ks_session.Session(auth=plugin)


def _castellan_get(sandbox, user, key_id: str) -> bytes:
    """What nova/cinder do: castellan's Barbican backend with the user's own token."""
    conf = cfg.ConfigOpts()
    castellan_options.set_defaults(conf, backend="barbican", auth_endpoint=sandbox.keystone_url)
    km = castellan_km.API(conf)
    sess = _user_session(sandbox, user)
    ctx = oslo_context.RequestContext(auth_token=sess.get_token(), project_id=sess.get_project_id())
    return km.get(ctx, key_id).get_encoded()


def test_owner_reads_migrated_keys_with_own_token_other_project_refused(kt, sandbox, two_projects, nova_dbs,
                                                                          cinder_url, key_file, fixed_key_hex,
                                                                          tmp_path):
    alice, bob, carol, ada = (two_projects[n] for n in ("alice", "bob", "carol", "ada"))
    inst = seed_instances(nova_dbs["cell1"], 1, user_id=alice["id"], project_id=alice["project"])[0]
    r = kt(*_nova_args(nova_dbs, key_file, tmp_path / "st", "plan"))
    assert "every member of its project and every user holding the admin role" in r.stdout, r.output
    owner_vol = seed(cinder_url, volumes=1, user_id=alice["id"], project_id=alice["project"]).volumes[0]
    r = kt(*_nova_args(nova_dbs, key_file, tmp_path / "st", "run", "--db-url", cinder_url, "--concurrency", "1"))
    assert r.exit_code == 0, r.output
    key = bytes.fromhex(fixed_key_hex)
    inst_key = instance_keys(nova_dbs["cell1"])[inst]
    vol_key = keys(cinder_url, "volumes")[owner_vol]
    assert _castellan_get(sandbox, alice, inst_key) == key
    assert _castellan_get(sandbox, alice, vol_key) == key
    for other in (bob, carol):  # another project, and (default ACL) a colleague in the same project
        with pytest.raises(castellan_exc.KeyManagerError) as err:
            _castellan_get(sandbox, other, vol_key)
        assert "403" in str(err.value) or "Forbidden" in str(err.value)
    # Nova's default --acl project: what worked with fixed_key keeps working. A colleague starts or
    # reboots it, an admin of another project rebuilds, migrates or evacuates it; other projects do not.
    assert _castellan_get(sandbox, carol, inst_key) == key
    assert _castellan_get(sandbox, ada, inst_key) == key
    with pytest.raises(castellan_exc.KeyManagerError):
        _castellan_get(sandbox, bob, inst_key)
    # --acl owner: the instance's user alone (colleagues and admins refused, and the plan says so)
    solo = seed_instances(nova_dbs["cell1"], 1, user_id=alice["id"], project_id=alice["project"])[0]
    r = kt(*_nova_args(nova_dbs, key_file, tmp_path / "st", "plan", "--acl", "owner"))
    assert "the instance's user (user_id) only" in r.stdout and "admins cannot" in r.stdout, r.output
    r = kt(*_nova_args(nova_dbs, key_file, tmp_path / "st", "run", "--acl", "owner"))
    assert r.exit_code == 0, r.output
    solo_key = instance_keys(nova_dbs["cell1"])[solo]
    assert _castellan_get(sandbox, alice, solo_key) == key
    for other in (carol, ada, bob):
        with pytest.raises(castellan_exc.KeyManagerError):
            _castellan_get(sandbox, other, solo_key)
    # --acl project: every member of the volume's project, listed from Keystone at migration time
    shared_vol = seed(cinder_url, volumes=1, user_id=alice["id"], project_id=alice["project"]).volumes[0]
    r = kt("--os-cloud", "sandbox-demo", "migrate", "run", "--db-url", cinder_url, "--fixed-key-file", str(key_file),
           "--state-dir", str(tmp_path / "st"), "--acl", "project", "--admin-cloud", "sandbox-admin")
    assert r.exit_code == 0, r.output
    shared_key = keys(cinder_url, "volumes")[shared_vol]
    assert _castellan_get(sandbox, alice, shared_key) == key
    assert _castellan_get(sandbox, carol, shared_key) == key
    with pytest.raises(castellan_exc.KeyManagerError):
        _castellan_get(sandbox, bob, shared_key)


# ---- retire gating ---------------------------------------------------------------------------------

def test_retire_refuses_while_nova_has_refs_or_is_not_seen(kt, sandbox, nova_dbs, cinder_url, key_file, tmp_path):
    from tests.config_checks.cc_treegen import NodeSpec, build

    tree = build(tmp_path / "nodes", [NodeSpec("ctl-0", "controller", {"fixed_key"})])
    base = ["fixed-key", "retire", "--per-node", str(tree.base), "--backup-dir", str(tmp_path / "b"),
            "--db-url", cinder_url]
    seed_instances(nova_dbs["cell2"], 1)
    r = kt(*base, "--ignore-service", "glance")
    assert r.exit_code == 6 and "could not see nova" in r.stderr and r.stderr.count("\n") == 1, r.stderr
    r = kt(*base, "--ignore-service", "glance", "--nova-api-db-url", nova_dbs["api"])
    assert r.exit_code == 6 and "1 nova instances" in r.stderr and not (tmp_path / "b").exists(), r.stderr
    r = kt(*_nova_args(nova_dbs, key_file, tmp_path / "st", "run"))
    assert r.exit_code == 0, r.output
    r = kt(*base, "--ignore-service", "glance", "--nova-api-db-url", nova_dbs["api"], "--format", "json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["ignored_services"] == ["glance"] and out["inventory"]["seen"].keys() == {"cinder", "nova"}
    doc = json.loads(next((tmp_path / "b").glob("*.json")).read_text())
    assert doc["ignored_services"] == ["glance"] and doc["inventory"]["per_service"] == {}


# ---- bad input ------------------------------------------------------------------------------------

def _state(nova_dbs):
    return {c: instance_keys(nova_dbs[c]) for c in ("cell0", "cell1", "cell2")}


@pytest.mark.parametrize("case", ["api-missing", "api-unreachable", "api-not-nova", "cell-not-nova",
                                  "cell-unreachable", "no-source", "bad-cell-name"])
def test_bad_nova_input_one_line_error_nothing_changed(kt, sandbox, nova_dbs, cinder_url, key_file, tmp_path, case):
    seed_instances(nova_dbs["cell1"], 2)
    before = _state(nova_dbs)
    api = nova_dbs["api"]
    extra: list[str] = []
    expect = {"api-missing": 4, "api-unreachable": 4, "api-not-nova": 2, "cell-not-nova": 2, "cell-unreachable": 4,
              "no-source": 2, "bad-cell-name": 2}[case]
    if case == "api-missing":
        api = f"sqlite:///{tmp_path / 'nope.sqlite'}"
    elif case == "api-unreachable":
        api = "mysql+pymysql://nova:S3cretNovaPw@127.0.0.1:1/nova_api"
    elif case == "api-not-nova":
        api = cinder_url
    elif case in ("cell-not-nova", "cell-unreachable"):
        target = cinder_url if case == "cell-not-nova" else "mysql+pymysql://nova:S3cretNovaPw@127.0.0.1:1/nova"
        eng = sa.create_engine(api)
        with eng.begin() as c:
            c.execute(sa.text("UPDATE cell_mappings SET database_connection = :u WHERE name = 'cell2'"), {"u": target})
        eng.dispose()
    elif case == "bad-cell-name":
        extra = ["--cell", "cell9"]
    if case == "no-source":
        args = ["--os-cloud", "sandbox-demo", "migrate", "run", "--admin-cloud", "sandbox-admin", "--service", "nova", "--fixed-key-file", str(key_file),
                "--state-dir", str(tmp_path / "st")]
    else:
        args = ["--os-cloud", "sandbox-demo", "migrate", "run", "--admin-cloud", "sandbox-admin", "--nova-api-db-url", api, "--fixed-key-file",
                str(key_file), "--state-dir", str(tmp_path / "st"), *extra]
    r = kt(*args)
    assert r.exit_code == expect, r.output
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.output and "S3cretNovaPw" not in r.output, r.stderr
    assert _state(nova_dbs) == before
    if case == "cell-not-nova":
        assert "'cell2'" in r.stderr and "not a Nova cell database" in r.stderr
    inv = kt("fixed-key", "inventory", "--nova-api-db-url", api, "--format", "json")
    if case not in ("no-source", "bad-cell-name"):
        assert [b["service"] for b in json.loads(inv.stdout)["blind"]][:2] == ["cinder", "nova"]


def test_nova_config_file_is_understood(kt, sandbox, nova_dbs, tmp_path, fixed_key_hex):
    conf = tmp_path / "nova.conf"
    conf.write_text(f"[api_database]\nconnection = {nova_dbs['api']}\n[database]\nconnection = {nova_dbs['cell1']}\n"
                    f"[key_manager]\nbackend = barbican\nfixed_key = {fixed_key_hex}\n")
    seed_instances(nova_dbs["cell2"], 2)
    r = kt("migrate", "plan", "--nova-config-file", str(conf), "--state-dir", str(tmp_path / "st"), "--format", "json")
    assert r.exit_code == 0 and json.loads(r.stdout)["to_migrate"] == {"instances": 2}, r.output
    assert fixed_key_hex not in r.output
    r = kt("--debug", "--os-cloud", "sandbox-demo", "migrate", "run", "--admin-cloud", "sandbox-admin", "--nova-config-file", str(conf), "--state-dir",
           str(tmp_path / "st"), "--concurrency", "1")
    assert r.exit_code == 0, r.output
    for form in (fixed_key_hex, fixed_key_hex.upper(), base64.b64encode(bytes.fromhex(fixed_key_hex)).decode()):
        assert form not in r.output  # fixed_key from nova.conf is redacted everywhere, also with --debug
    for path in (tmp_path / "st").iterdir():
        assert fixed_key_hex not in path.read_text()
    compute = tmp_path / "compute-nova.conf"  # a compute's nova.conf: only its cell's [database]
    compute.write_text(f"[database]\nconnection = {nova_dbs['cell2']}\n")
    r = kt("fixed-key", "inventory", "--nova-config-file", str(compute), "--format", "json")
    assert json.loads(r.stdout)["per_service"] == {}  # migrated above


def test_template_cell_url_is_formatted_like_nova():
    from keytools.nova_db import format_db_url

    assert format_db_url("{scheme}://{username}:{password}@{hostname}/nova_cell1",
                         "mysql+pymysql://nova:pw@db.example/nova") == "mysql+pymysql://nova:pw@db.example/nova_cell1"


@pytest.mark.parametrize("service,needle", [("swift", "unknown service swift"), ("cinder", "no cinder source given")])
def test_service_option_errors(kt, nova_dbs, key_file, tmp_path, service, needle):
    r = kt("migrate", "plan", "--service", service, "--nova-api-db-url", nova_dbs["api"], "--fixed-key-file",
           str(key_file), "--state-dir", str(tmp_path / "st"))
    assert r.exit_code == 2 and needle in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_inventory_ignore_unknown_service_is_usage_error(kt):
    r = kt("fixed-key", "inventory", "--ignore-service", "swift")
    assert r.exit_code == 2 and "unknown service" in r.stderr


def _drop_done_records(state) -> int:
    dropped = 0
    for path in state.iterdir():
        lines = path.read_text().splitlines(keepends=True)
        kept = [ln for ln in lines if '"op":"done"' not in ln]
        dropped += len(lines) - len(kept)
        path.write_text("".join(kept))
    return dropped


@pytest.mark.parametrize("more_rows", [True, False])
def test_row_swapped_but_not_journaled_done_is_reconciled_and_verified(kt, sandbox, nova_dbs, cinder_url, key_file,
                                                                       tmp_path, more_rows):
    """A kill between the compare-and-swap and the journal's 'done' fsync: the rerun journals the
    row as done (it points at a secret that was read back), so verify checks it."""
    seed_instances(nova_dbs["cell1"], 2)
    seed(cinder_url, volumes=1)
    state = tmp_path / "st"
    args = ["--os-cloud", "sandbox-demo", "migrate", "run", "--admin-cloud", "sandbox-admin", "--db-url", cinder_url, "--nova-api-db-url",
            nova_dbs["api"], "--fixed-key-file", str(key_file), "--state-dir", str(state)]
    assert kt(*args).exit_code == 0
    assert _drop_done_records(state) == 3
    verify = ["--os-cloud", "sandbox-demo", "migrate", "verify", "--db-url", cinder_url, "--nova-api-db-url",
              nova_dbs["api"], "--fixed-key-file", str(key_file), "--state-dir", str(state), "--format", "json"]
    assert [s["checked"] for s in json.loads(kt(*verify).stdout)["services"]] == [0, 0]
    if more_rows:  # the rerun has work to do (Migrator path) or nothing at all (no-op path)
        seed_instances(nova_dbs["cell2"], 1)
    r = kt(*args, "--format", "json")
    assert r.exit_code == 0, r.output
    assert all(not o["orphans"] for o in json.loads(r.stdout)["services"])
    assert [s["checked"] for s in json.loads(kt(*verify).stdout)["services"]] == [1, 3 if more_rows else 2]


def test_nova_project_acl_without_keystone_rights_fails_before_any_secret(kt, sandbox, nova_dbs, key_file, tmp_path):
    """Nova's default ACL lists Keystone's role assignments; credentials that may not are told what
    to pass, before a single secret or row changes."""
    rows = seed_instances(nova_dbs["cell1"], 2)
    before = instance_keys(nova_dbs["cell1"])
    args = _nova_args(nova_dbs, key_file, tmp_path / "st", "run")
    r = kt(*[a for a in args if a not in ("--admin-cloud", "sandbox-admin")])
    assert r.exit_code == 5 and r.stderr.count("\n") == 1, r.output
    assert "--admin-cloud NAME" in r.stderr and "--acl owner" in r.stderr
    assert instance_keys(nova_dbs["cell1"]) == before and all(before[i] == FIXED_KEY_ID for i in rows)
