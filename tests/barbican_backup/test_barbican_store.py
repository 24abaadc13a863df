"""``keytools barbican store status|migrate`` against a real Barbican with two stores on a real
SoftHSM2 token (``hsm_sandbox``, SQLite; ``hsm_mariadb_sandbox`` for row locks on MariaDB)."""

from __future__ import annotations

import base64
import json
import os
import random
import re
import threading
from pathlib import Path

import pytest

from keytools.barbican import barbican_conf
from keytools.barbican.dbquery import reader
from keytools.barbican.faults import STORE_ENV
from tests.barbican_backup import store_helpers as h
from tests.helpers.cli import invoke
from tests.helpers.kill import fork_main, kill_when


def kt(sb, *args: str, softhsm: Path | None = None):
    env = {"OS_CLIENT_CONFIG_FILE": str(sb.clouds_yaml),
           "SOFTHSM2_CONF": str(softhsm or sb.state.path("hsm", "softhsm2.conf"))}
    return invoke(list(args), env=env)


def migrate(sb, *extra: str, conf: Path | None = None):
    return kt(sb, "barbican", "store", "migrate", "--to", "pkcs11", "--config", str(conf or h.conf_path(sb)),
              "--format", "json", *extra)


def conf_variant(sb, tmp_path: Path, **changes: str | None) -> Path:
    """barbican.conf with options replaced (``section__option``; None drops the line)."""
    text = h.conf_path(sb).read_text()
    for key, value in changes.items():
        section, option = key.split("__")
        section = section.replace("_colon_", ":")
        pattern = re.compile(rf"(\[{re.escape(section)}\][^\[]*?)^{option} = [^\n]*\n", re.M | re.S)
        assert pattern.search(text), key
        text = pattern.sub(lambda m: m.group(1) + ("" if value is None else f"{option} = {value}\n"), text, count=1)
    path = tmp_path / "barbican.conf"
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def _softhsm_env(monkeypatch, request):
    for name in ("hsm_sandbox", "hsm_mariadb_sandbox"):
        if name in request.fixturenames:
            sb = request.getfixturevalue(name)
            monkeypatch.setenv("SOFTHSM2_CONF", str(sb.state.path("hsm", "softhsm2.conf")))


def _moved_everything(sb, seeded: h.Seeded, before: dict[str, str], related) -> None:
    assert set(h.plugin_of(sb, seeded.all_ids()).values()) == {"P11CryptoPlugin"}
    assert h.read_all(sb, seeded) == before  # same ids, same payloads, through the API
    assert h.related_rows(sb) == related  # ACLs, consumers, container links, secrets: untouched


@pytest.mark.parametrize("which", ["hsm_sandbox", "hsm_mariadb_sandbox"])
def test_migrate_moves_every_secret_in_place(request, which):
    sb = request.getfixturevalue(which)
    seeded = h.seed(sb)
    before = h.read_all(sb, seeded)
    assert before == {i: fp for by in seeded.secrets.values() for i, fp in by.items()}
    related = h.related_rows(sb)

    status = kt(sb, "barbican", "store", "status", "--config", str(h.conf_path(sb)), "--format", "json",
                "--os-cloud", "sandbox-demo")
    assert status.exit_code == 0, status.output
    data = json.loads(status.stdout)
    assert data["totals"]["simple_crypto"]["active"] >= len(seeded.all_ids())
    assert data["totals"]["simple_crypto"]["deleted"] >= 1
    assert data["p11_global_default_everywhere"] is True
    assert data["api_max_version"] == "1.2" and data["api_offers_secret_store_move"] is False

    dry = migrate(sb, "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert json.loads(dry.stdout)["selected"] >= len(seeded.all_ids())
    assert set(h.plugin_of(sb, seeded.all_ids()).values()) == {"SimpleCryptoPlugin"}

    run = migrate(sb, "--os-cloud", "sandbox-demo")
    assert run.exit_code == 0, run.output
    report = json.loads(run.stdout)
    assert report["moved"] >= len(seeded.all_ids()) and report["remaining"] == 0
    assert report["verified"] == report["moved"] == report["fingerprints_compared"]
    assert report["api_checked"] >= 1 and not report["verify_failed"]
    assert report["soft_deleted_left"] >= 1
    assert any("microversions up to 1.2" in n for n in report["notes"])
    assert any("barbican-manage db clean" in n for n in report["notes"])
    _moved_everything(sb, seeded, before, related)

    again = migrate(sb)  # a rerun finds nothing to do
    assert again.exit_code == 0 and json.loads(again.stdout)["moved"] == 0


def test_sample_and_project_limit_the_move(hsm_sandbox):
    sb = hsm_sandbox
    seeded = h.seed(sb, per_project=2, projects=("demo", "service"), extras=False)
    demo_project = h.session(sb, "demo").get_project_id()
    one = migrate(sb, "--project", demo_project, "--sample", "1", "--seed", "3")
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["moved"] == 1
    plugins = h.plugin_of(sb, seeded.all_ids())
    assert [plugins[s] for s in seeded.secrets["demo"]].count("P11CryptoPlugin") == 1
    assert {plugins[s] for s in seeded.secrets["service"]} == {"SimpleCryptoPlugin"}
    assert h.read_all(sb, seeded) == {i: fp for by in seeded.secrets.values() for i, fp in by.items()}
    assert migrate(sb).exit_code == 0


def test_refusals_wrong_pin_mkek_p11_off_software_preference(hsm_sandbox, tmp_path):
    sb = hsm_sandbox
    seeded = h.seed(sb, per_project=1, projects=("demo",), extras=False)
    pin = sb.config.passwords["hsm_pin"]

    wrong = migrate(sb, conf=conf_variant(sb, tmp_path, p11_crypto_plugin__login="00000000"))
    assert wrong.exit_code == 5, wrong.output
    assert "refused the PIN" in wrong.stderr and "not retried" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and "Traceback" not in wrong.output
    assert pin not in wrong.output and "00000000" not in wrong.output

    no_mkek = migrate(sb, conf=conf_variant(sb, tmp_path, p11_crypto_plugin__mkek_label="nosuchkey"))
    assert no_mkek.exit_code == 6, no_mkek.output
    assert "MKEK" in no_mkek.stderr and "gen_mkek" in no_mkek.stderr

    p11_off = migrate(sb, conf=conf_variant(sb, tmp_path, secretstore__stores_lookup_suffix="software"))
    assert p11_off.exit_code == 6 and "p11_crypto is not enabled" in p11_off.stderr, p11_off.output

    not_default = migrate(sb, conf=conf_variant(sb, tmp_path, **{"secretstore_colon_pkcs11__global_default": None}))
    assert not_default.exit_code == 6 and "global_default" in not_default.stderr, not_default.output

    other_node = conf_variant(sb, tmp_path, secretstore__stores_lookup_suffix="pkcs11")
    two = migrate(sb, "--config", str(other_node))
    assert two.exit_code == 6 and f"{other_node}: simple_crypto is not enabled" in two.stderr, two.output

    h.prefer_software(sb, "demo", True)
    try:
        preferred = migrate(sb)
        assert preferred.exit_code == 6, preferred.output
        assert "prefers store" in preferred.stderr and "/preferred" in preferred.stderr
    finally:
        h.prefer_software(sb, "demo", False)
    assert set(h.plugin_of(sb, seeded.all_ids()).values()) == {"SimpleCryptoPlugin"}  # nothing moved

    partly = migrate(sb, "--sample", "1")
    assert partly.exit_code == 0, partly.output
    seeded_more = h.seed(sb, per_project=1, projects=("demo",), extras=False)
    removed = conf_variant(sb, tmp_path, secretstore__stores_lookup_suffix="pkcs11", simple_crypto_plugin__kek=None)
    gone = migrate(sb, conf=removed)
    assert gone.exit_code == 6 and "still on simple_crypto" in gone.stderr, gone.output
    assert migrate(sb).exit_code == 0
    assert set(h.plugin_of(sb, seeded.all_ids() + seeded_more.all_ids()).values()) == {"P11CryptoPlugin"}


def test_undecryptable_secret_is_reported_and_left_alone(hsm_sandbox):
    sb = hsm_sandbox
    seeded = h.seed(sb, per_project=3, projects=("demo",), extras=False)
    bad = seeded.all_ids()[1]
    conn = barbican_conf.load(h.conf_path(sb), need_kek=False).connection
    path = conn.split("///", 1)[1]
    import sqlite3

    db = sqlite3.connect(path)
    (original,) = db.execute("SELECT cypher_text FROM encrypted_data WHERE secret_id = ?", (bad,)).fetchone()
    corrupt = base64.b64encode(b"gAAAAA" + os.urandom(40)).decode()
    db.execute("UPDATE encrypted_data SET cypher_text = ? WHERE secret_id = ?", (corrupt, bad))
    db.commit()
    try:
        result = migrate(sb)
        assert result.exit_code == 1, result.output
        report = json.loads(result.stdout)
        assert [p["secret"] for p in report["skipped"]] == [bad]
        assert "does not decrypt" in report["skipped"][0]["reason"]
        plugins = h.plugin_of(sb, seeded.all_ids())
        assert plugins[bad] == "SimpleCryptoPlugin"
        assert [plugins[s] for s in seeded.all_ids() if s != bad] == ["P11CryptoPlugin"] * 2
        (now,) = db.execute("SELECT cypher_text FROM encrypted_data WHERE secret_id = ?", (bad,)).fetchone()
        assert now == corrupt  # never half-written
    finally:
        db.execute("UPDATE encrypted_data SET cypher_text = ? WHERE secret_id = ?", (original, bad))
        db.commit()
        db.close()
    assert migrate(sb).exit_code == 0
    assert h.read_all(sb, seeded) == seeded.secrets["demo"]


@pytest.mark.slow
def test_kill_9_trials_converge_and_every_secret_stays_readable(hsm_sandbox):
    """12 kill -9 trials at random moments (inside a secret's transaction or between secrets);
    after each, every secret reads through the API; a final rerun converges."""
    sb = hsm_sandbox
    seeded = h.seed(sb, per_project=8, projects=("demo", "service"), extras=False)
    expected = {i: fp for by in seeded.secrets.values() for i, fp in by.items()}
    ids = seeded.all_ids()
    rng = random.Random(25)
    args = ["barbican", "store", "migrate", "--to", "pkcs11", "--config", str(h.conf_path(sb))]
    killed = 0
    for trial in range(12):
        on_p11 = list(h.plugin_of(sb, ids).values()).count("P11CryptoPlugin")
        if on_p11 == len(ids):
            break
        point = "commit" if trial % 2 == 0 else "secret"
        env = {STORE_ENV: f"{point}:{rng.uniform(0.02, 0.12):.3f}"}
        target = on_p11 + rng.randint(0, 2)
        run = fork_main(args, env)
        if kill_when(run, lambda t=target: list(h.plugin_of(sb, ids).values()).count("P11CryptoPlugin") >= t,
                     timeout=60, poll=0.01):
            killed += 1
        assert h.read_all(sb, seeded) == expected  # readable, on whichever store, at this moment
    assert killed >= 10
    final = migrate(sb)
    assert final.exit_code == 0, final.output
    assert set(h.plugin_of(sb, ids).values()) == {"P11CryptoPlugin"}
    assert h.read_all(sb, seeded) == expected
    with reader(barbican_conf.load(h.conf_path(sb), need_kek=False).connection) as query:
        rows = query("SELECT secret_id, COUNT(*) FROM encrypted_data GROUP BY secret_id HAVING COUNT(*) > 1")
    assert rows == []  # in place: never a second encrypted_data row


def _token_copy(sb, dest: Path, empty: bool = False) -> Path:
    """A softhsm2.conf pointing at a copy of the sandbox's token directory (or an empty one)."""
    import shutil

    tokens = dest / "tokens"
    if empty:
        tokens.mkdir(parents=True)
    else:
        shutil.copytree(sb.state.path("hsm", "tokens"), tokens)
    conf = dest / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    return conf


def test_backup_says_the_mkek_stays_in_the_hsm_and_the_drill_reads_through_it(hsm_sandbox, tmp_path):
    sb = hsm_sandbox
    seeded = h.seed(sb, per_project=2, projects=("demo",), extras=False)
    assert migrate(sb).exit_code == 0
    assert set(h.plugin_of(sb, seeded.all_ids()).values()) == {"P11CryptoPlugin"}
    pin = sb.config.passwords["hsm_pin"]

    (tmp_path / "pass").write_text("store-test passphrase 0123456789\n")
    (tmp_path / "pass").chmod(0o600)
    backup = kt(sb, "barbican", "backup", "--config", str(h.conf_path(sb)), "--out", str(tmp_path / "b.ktbak"),
                "--passphrase-file", str(tmp_path / "pass"), "--format", "json")
    assert backup.exit_code == 0, backup.output
    manifest = json.loads(backup.stdout)["pkcs11"]
    assert manifest["keys_in_archive"] is False and "live in the HSM" in manifest["note"]
    assert manifest["mkek_label"] and pin not in backup.output
    assert pin.encode() not in (tmp_path / "b.ktbak").read_bytes()

    drill = kt(sb, "barbican", "drill", "--config", str(h.conf_path(sb)), "--format", "json",
               softhsm=_token_copy(sb, tmp_path / "copy"))
    assert drill.exit_code == 0, drill.output
    assert json.loads(drill.stdout)["result"] == "pass" and pin not in drill.output

    blind = kt(sb, "barbican", "drill", "--config", str(h.conf_path(sb)), "--format", "json",
               softhsm=_token_copy(sb, tmp_path / "empty", empty=True))
    assert blind.exit_code != 0  # without the HSM's keys the moved secrets are lost


def test_sandbox_with_hsm_env_files_and_no_pin_in_logs(hsm_sandbox):
    sb = hsm_sandbox
    env = kt(sb, "sandbox", "env", "--state-dir", str(sb.state.root))
    assert env.exit_code == 0
    assert f"export SOFTHSM2_CONF={sb.state.path('hsm', 'softhsm2.conf')}" in env.stdout
    for path in (h.conf_path(sb), sb.state.path("hsm", "softhsm2.conf"), sb.state.config_file):
        assert path.stat().st_mode & 0o077 == 0, path
    assert sb.state.path("hsm", "tokens").stat().st_mode & 0o077 == 0
    pin, so_pin = sb.config.passwords["hsm_pin"], sb.config.passwords["hsm_so_pin"]
    for log in sb.state.path("logs").iterdir():
        text = log.read_text(errors="replace")
        assert pin not in text and so_pin not in text, log
    conf = h.conf_path(sb).read_text()
    assert "SoftHSM 2.6 needs" in conf and "not production advice" in conf
    status = kt(sb, "barbican", "store", "status", "--config", str(h.conf_path(sb)))
    assert status.exit_code == 0 and "PKCS#11 global default on every node: yes" in status.stdout


def test_kek_rotate_says_it_covers_only_simple_crypto(hsm_sandbox, tmp_path):
    sb = hsm_sandbox
    h.seed(sb, per_project=1, projects=("demo",), extras=False)
    assert migrate(sb).exit_code == 0  # demo now has a p11_crypto project KEK
    plan = kt(sb, "barbican", "kek", "rotate", "--config", str(h.conf_path(sb)), "--until", "plan",
              "--state", str(tmp_path / "rotation.json"), "--format", "json")
    assert plan.exit_code == 0, plan.output
    detail = json.loads(plan.stdout)["stages"][0]["detail"]
    assert "simple_crypto project KEKs only" in detail and "p11_crypto project KEKs" in detail


def test_two_concurrent_moves_on_mariadb_move_each_secret_once(hsm_mariadb_sandbox):
    """Two runs at once on MariaDB: the row lock (SELECT ... FOR UPDATE) makes the second wait and
    find the secret already moved, so every secret is moved exactly once, in place."""
    sb = hsm_mariadb_sandbox
    seeded = h.seed(sb, per_project=6, projects=("demo", "service"), extras=False)
    expected = {i: fp for by in seeded.secrets.values() for i, fp in by.items()}
    args = ["--log-format", "json", "barbican", "store", "migrate", "--to", "pkcs11", "--config", str(h.conf_path(sb))]
    env = {STORE_ENV: "commit:0.05"}
    reads: list[object] = []  # every read round through the API while the runs go: dict or the error
    done = threading.Event()

    def reader_loop() -> None:
        while not done.is_set():
            try:
                reads.append(h.read_all(sb, seeded))
            except Exception as exc:  # noqa: BLE001 - recorded, asserted below
                reads.append(exc)

    runs = [fork_main(args, env), fork_main(args, env)]
    thread = threading.Thread(target=reader_loop)
    thread.start()
    try:
        outputs = [run.read_stderr_until(lambda _seen: False, timeout=300, poll=0.2) for run in runs]
    finally:
        done.set()
        thread.join()
    for run in runs:
        run.kill_9()  # reaps it (it has exited: its stderr reached end of file)
    assert reads and all(r == expected for r in reads), [r for r in reads if r != expected][:1]
    assert [run.returncode for run in runs] == [0, 0], [[ln for ln in out.decode().splitlines() if "error" in ln] for out in outputs]
    moved = [json.loads(line)["secret"] for out in outputs for line in out.decode().splitlines()
             if line.startswith("{") and json.loads(line).get("outcome") == "moved"]
    assert sorted(moved) == sorted(set(moved)) and set(expected) <= set(moved)
    assert set(h.plugin_of(sb, list(expected)).values()) == {"P11CryptoPlugin"}
    assert h.read_all(sb, seeded) == expected
    with reader(barbican_conf.load(h.conf_path(sb), need_kek=False).connection) as query:
        rows = query("SELECT secret_id, COUNT(*) FROM encrypted_data GROUP BY secret_id HAVING COUNT(*) > 1")
    assert list(rows) == []
