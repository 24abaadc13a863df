"""KEK rotation on a copy of the sandbox's Barbican database (two "nodes" = two barbican.conf files),
with Barbican's own barbican-manage for the rewrap and a scratch Barbican for the validation."""

from __future__ import annotations

import base64
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from barbican_backup_helpers import PASSPHRASE, barbican_conf, conf_copy, store_secrets
from cryptography.fernet import Fernet

from keytools.barbican import barbican_conf as bconf
from keytools.barbican import kek, operations
from tests.helpers.cli import keytools_argv
from tests.helpers.kill import kill_when, spawn

ENV = {"BK_PASS": PASSPHRASE}


@pytest.fixture(scope="module")
def seeded(sandbox):
    """Secrets in two projects (admin, demo): at least two project KEKs."""
    store_secrets(sandbox.session("admin"), "kek-admin")
    store_secrets(sandbox.session("demo"), "kek-demo")
    return sandbox


def nodes(sandbox, tmp: Path, count: int = 2) -> list[Path]:
    db = tmp / "barbican.db"
    shutil.copy(sandbox.state.path("barbican", "barbican.db"), db)
    return [conf_copy(barbican_conf(sandbox), tmp / f"node{i}.conf", connection=f"sqlite:///{db}")
            for i in range(count)]


def rotate(kt, confs: list[Path], *extra: str, out: Path | None = None, input: str | None = None):
    args = [a for c in confs for a in ("--config", str(c))]
    if out is not None:
        args += ["--backup-out", str(out), "--passphrase-env", "BK_PASS"]
    return kt("barbican", "kek", "rotate", *args, *extra, "-f", "json", env=ENV, input=input)


def keks(conf: Path) -> list[str]:
    return list(bconf.load(conf).keks)


def assert_rotated(confs: list[Path], old: str) -> str:
    lists = [keks(c) for c in confs]
    assert all(len(k) == 1 and k == lists[0] for k in lists), "every node holds exactly the new KEK"
    new = lists[0][0]
    assert bconf.kek_fingerprint(new) != bconf.kek_fingerprint(old)
    check = kek.check_project_keks(bconf.load(confs[0]).connection, [new])
    assert check.total >= 2 and check.failed == []
    return new


def old_kek_leftovers(tmp: Path, old: str, archive: Path) -> list[Path]:
    """Every file under ``tmp`` (the nodes' directory) but the encrypted archive that holds the old
    KEK, as text or as its raw bytes."""
    needles = (old.encode(), base64.urlsafe_b64decode(old))
    return [p for p in tmp.rglob("*") if p.is_file() and p != archive
            and any(n in p.read_bytes() for n in needles)]


def test_rotation_end_to_end_prints_only_fingerprints(seeded, kt, tmp_path):
    confs = nodes(seeded, tmp_path)
    old = keks(confs[0])[0]
    before = kek.check_project_keks(bconf.load(confs[0]).connection, [old])
    assert before.total >= 2 and not before.failed
    earlier = tmp_path / "node0.conf.keytools-20200101T000000Z.bak"  # e.g. an older restore --restore-kek's
    shutil.copy(confs[0], earlier)
    result = rotate(kt, confs, out=tmp_path / "pre.ktbak")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["stage"] for s in report["stages"]] == list(kek.STAGES)
    assert all(s["result"] == "done" for s in report["stages"]) and report["finished"]
    new = assert_rotated(confs, old)
    assert report["old"] == [bconf.kek_fingerprint(old)] and report["new"] == bconf.kek_fingerprint(new)
    for needle in (old, new):
        assert needle not in result.output
    validate = next(s for s in report["stages"] if s["stage"] == "validate")["detail"]
    assert "secrets decrypt through a scratch Barbican holding only the new KEK" in validate
    manifest = operations.inspect(tmp_path / "pre.ktbak")
    assert manifest["kek_fingerprint"] == bconf.kek_fingerprint(old)  # the backup came first
    # the stage and retire .bak files held the old KEK in clear: removed once validate passed, and said so;
    # a .bak older than the rotation is not its own: kept
    assert list(tmp_path.glob("*.bak")) == [earlier] and not list(tmp_path.glob(".keytools-*"))
    removed = [Path(p) for p in report["removed_backups"]]
    assert {p.name.split(".keytools-")[0] for p in removed} == {"node0.conf", "node1.conf"}
    assert all(p.parent == tmp_path and p.name.endswith(".bak") for p in removed)
    retire = next(s for s in report["stages"] if s["stage"] == "retire")["detail"]
    assert f"{len(report['removed_backups'])} .bak file(s) of this rotation removed" in retire
    assert old_kek_leftovers(tmp_path, old, tmp_path / "pre.ktbak") == [earlier]
    assert stat.S_IMODE(confs[0].stat().st_mode) == 0o640  # mode kept
    # the old KEK no longer opens anything: a drill with it fails, with the new one passes
    drill = kt("barbican", "drill", "--config", confs[0], "-f", "json")
    assert drill.exit_code == 0, drill.output
    again = rotate(kt, confs, out=tmp_path / "pre.ktbak")  # a finished rotation is not redone by accident
    assert again.exit_code == 2 and "exists and is not a backup of these KEKs" in again.stderr
    assert keks(confs[0]) == [new]


def test_status_and_refusals(seeded, kt, tmp_path):
    confs = nodes(seeded, tmp_path, 3)
    same = kt("barbican", "kek", "status", "--config", confs[0], "--config", confs[1], "-f", "json")
    assert same.exit_code == 0 and json.loads(same.stdout)["differ"] is False
    other = Fernet.generate_key().decode()
    bconf.write_keks(confs[2], [other])
    differ = kt("barbican", "kek", "status", "--config", confs[0], "--config", confs[2])
    assert differ.exit_code == 1 and "differ" in differ.stderr and other not in differ.output
    refused = rotate(kt, [confs[0], confs[2]], out=tmp_path / "x.ktbak")
    assert refused.exit_code == 6 and "differ" in refused.stderr
    wrong = rotate(kt, [confs[2]], out=tmp_path / "x.ktbak")  # a KEK that does not fit the database
    assert wrong.exit_code == 6 and "do not unwrap with the KEK" in wrong.stderr, wrong.output
    nobackup = rotate(kt, confs[:2])
    assert nobackup.exit_code == 2 and "--backup-out" in nobackup.stderr
    assert keks(confs[0]) == keks(confs[1]) and len(keks(confs[0])) == 1  # nothing staged without a backup
    staged = rotate(kt, confs[:2], "--until", "stage", out=tmp_path / "s.ktbak")
    assert staged.exit_code == 0 and len(keks(confs[0])) == 2
    pending = rotate(kt, confs[:1], out=tmp_path / "t.ktbak")
    assert pending.exit_code == 6 and "another KEK rotation is pending" in pending.stderr
    another = rotate(kt, confs[:2], "--new-kek-stdin", out=tmp_path / "s.ktbak", input=Fernet.generate_key().decode())
    assert another.exit_code == 6 and "another new KEK" in another.stderr
    # a node that lost the staged KEK: rewrap refused; the rerun stages it again and finishes
    old = keks(confs[1])[1]
    bconf.write_keks(confs[1], [old])
    lost = rotate(kt, confs[:2], out=tmp_path / "s.ktbak")
    assert lost.exit_code == 6 and "refusing to rewrap" in lost.stderr
    done = rotate(kt, confs[:2], out=tmp_path / "s.ktbak")
    assert done.exit_code == 0, done.output
    assert_rotated(confs[:2], old)


def test_new_kek_from_stdin(seeded, kt, tmp_path):
    confs = nodes(seeded, tmp_path, 1)
    bad = rotate(kt, confs, "--new-kek-stdin", out=tmp_path / "b.ktbak", input="not-a-fernet-key\n")
    assert bad.exit_code == 2 and "not a Fernet key" in bad.stderr and "not-a-fernet-key" not in bad.output
    new = Fernet.generate_key().decode()
    good = rotate(kt, confs, "--new-kek-stdin", "--sample", "3", "--seed", "1", out=tmp_path / "b.ktbak",
                  input=new + "\n")
    assert good.exit_code == 0, good.output
    assert keks(confs[0]) == [new] and new not in good.output


@pytest.mark.parametrize("stage", [*kek.STAGES, "retire-backups"])
def test_killed_in_every_stage_then_rerun_finishes(seeded, tmp_path, stage):
    """retire-backups: killed after retire wrote every config, before it removed the .bak files."""
    confs = nodes(seeded, tmp_path)
    old = keks(confs[0])[0]
    mark = tmp_path / "paused"
    argv = keytools_argv("barbican", "kek", "rotate", "--config", confs[0], "--config", confs[1],
                         "--backup-out", tmp_path / "pre.ktbak", "--passphrase-env", "BK_PASS", "-f", "json")
    env = {**os.environ, **ENV, "KEYTOOLS_FAULT_KEK_PAUSE": f"{stage}:60", "KEYTOOLS_FAULT_KEK_MARK": str(mark)}
    kill_when(spawn(argv, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE), mark.exists, timeout=120, must_reach=True)
    state = json.loads((tmp_path / "node0.conf.keytools-kek-rotation.json").read_text()) \
        if (tmp_path / "node0.conf.keytools-kek-rotation.json").exists() else {"done": []}
    assert stage.split("-")[0] not in state["done"]  # killed inside the stage, before it was recorded
    if stage == "retire-backups":
        assert all(keks(c) == keks(confs[0]) and len(keks(c)) == 1 for c in confs)  # retired, .bak still there
        assert old_kek_leftovers(tmp_path, old, tmp_path / "pre.ktbak")
    rerun = subprocess.run([str(a) for a in argv], env={**os.environ, **ENV}, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["finished"]
    assert_rotated(confs, old)
    assert old_kek_leftovers(tmp_path, old, tmp_path / "pre.ktbak") == []  # the rerun removed the .bak files


def test_table_output_names_the_removed_backups(capsys):
    from keytools.barbican.cli import _render_rotation

    bak = "/etc/barbican/barbican.conf.keytools-20261206T010203Z.bak"
    _render_rotation(kek.RotationReport("state.json", ["sha256:old"], "sha256:new", finished=True,
                                        removed_backups=[bak]), "table")
    out = capsys.readouterr().out
    assert f"removed {bak} (it held the old KEK" in out and "rotation finished" in out
