"""simple_crypto master-KEK rotation as resumable stages: plan, backup, stage, rewrap, validate, retire.

Every stage is idempotent and recorded in a state file (0600, atomic) only after it completed, so a
rotation killed anywhere is finished by rerunning it. Only fingerprints are ever shown. The rewrap is
Barbican's own ``barbican-manage simple_crypto rewrap_pkek`` (Fernet MultiFernet.rotate of every
project KEK under the first ``kek``); old KEKs are dropped only once every project KEK unwraps with
the new KEK alone and the secrets decrypt through a scratch Barbican holding only the new KEK.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cryptography import fernet

from keytools import oslo_ini, redaction
from keytools.barbican import barbican_conf, faults, operations, store_status
from keytools.barbican.archive import KeySource
from keytools.barbican.barbican_conf import BarbicanConfig, kek_fingerprint
from keytools.barbican.dbquery import reader
from keytools.errors import KeytoolsError, ProblemsFound, StateError, UsageError
from keytools.fileutil import atomic_write, remove_stale_workdirs
from keytools.tools import find_tool

STAGES = ("plan", "backup", "stage", "rewrap", "validate", "retire")
PLUGIN = "barbican.plugin.crypto.simple_crypto.SimpleCryptoPlugin"


@dataclass
class NodeStatus:
    config: str
    fingerprints: list[str]
    primary: str | None
    list_fingerprint: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class StageResult:
    stage: str
    result: str  # done | already done | refused | failed
    seconds: float
    detail: str = ""


@dataclass
class RotationReport:
    state_file: str
    old: list[str] = field(default_factory=list)
    new: str | None = None
    stages: list[StageResult] = field(default_factory=list)
    finished: bool = False
    removed_backups: list[str] = field(default_factory=list)  # the rotation's .bak files (old KEK in clear)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def node_status(configs: list[str]) -> list[NodeStatus]:
    out = []
    for path in configs:
        conf = barbican_conf.load(path)
        out.append(NodeStatus(str(path), conf.kek_fingerprints, conf.kek_fingerprints[0], conf.kek_fingerprint))
    return out


def nodes_differ(status: list[NodeStatus]) -> bool:
    return len({s.list_fingerprint for s in status}) > 1


# --- project KEKs ---------------------------------------------------------------------------

@dataclass
class UnwrapCheck:
    total: int
    failed: list[str]  # kek_data ids (not secret) that do not unwrap


def check_project_keks(connection: str, keks: list[str] | tuple[str, ...]) -> UnwrapCheck:
    """Does every simple_crypto project KEK unwrap with ``keks``? (Fernet authenticates: a wrong
    KEK is an InvalidToken, never garbage.) The unwrapped keys are dropped at once."""
    try:
        box = fernet.MultiFernet([fernet.Fernet(k.encode() if isinstance(k, str) else k) for k in keks])
    except (ValueError, TypeError):
        raise UsageError("a kek is not a Fernet key (32 bytes, URL-safe base64)",
                         "Generate one with: python3 -c 'from cryptography.fernet import Fernet; "
                         "print(Fernet.generate_key().decode())'") from None
    failed = []
    with reader(connection) as query:
        rows = query(f"SELECT id, plugin_meta FROM kek_data WHERE plugin_name = '{PLUGIN}' AND deleted = 0")  # noqa: S608
    for kid, meta in rows:
        try:
            box.decrypt(meta.encode() if isinstance(meta, str) else bytes(meta))
        except (fernet.InvalidToken, TypeError, ValueError):
            failed.append(str(kid))
    return UnwrapCheck(len(rows), failed)


# --- state ----------------------------------------------------------------------------------

def default_state_file(config: str) -> Path:
    return Path(config).with_name(Path(config).name + ".keytools-kek-rotation.json")


class State:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = {}
        if path.exists():
            try:
                self.data = json.loads(path.read_text())
                assert isinstance(self.data.get("done"), list)
            except (ValueError, AssertionError, OSError):
                raise UsageError(f"{path}: not a keytools KEK rotation state file",
                                 "Move it away if no rotation is running") from None

    @property
    def pending(self) -> bool:
        return bool(self.data) and "retire" not in self.data.get("done", [])

    def done(self, stage: str) -> bool:
        return stage in self.data.get("done", [])

    def mark(self, stage: str, **extra: Any) -> None:
        self.data.update(extra)
        if stage not in self.data["done"]:
            self.data["done"].append(stage)
        self.save()

    def save(self) -> None:
        atomic_write(self.path, json.dumps(self.data, indent=1), mode=0o600)


# --- the rotation ---------------------------------------------------------------------------

class Rotation:
    def __init__(self, configs: list[str], backup_out: str | None, source: KeySource | None,
                 new_kek: str | None = None, state_file: str | None = None, until: str | None = None,
                 sample: int | None = None, seed: int | None = None,
                 progress: Callable[[str], None] | None = None) -> None:
        if not configs:
            raise UsageError("no --config given", "Name every Barbican node's barbican.conf with --config")
        if until and until not in STAGES:
            raise UsageError(f"--until {until} is not a stage", f"Choose from {', '.join(STAGES)}")
        self.configs = [str(Path(c).resolve()) for c in configs]
        self.backup_out, self.source, self.new_kek = backup_out, source, new_kek
        if new_kek:
            redaction.register_secret(new_kek)
        self.state = State(Path(state_file) if state_file else default_state_file(self.configs[0]))
        self.until, self.sample, self.seed = until, sample, seed
        self.progress = progress or (lambda _m: None)
        self.report = RotationReport(str(self.state.path))

    def conf(self, i: int = 0) -> BarbicanConfig:
        return barbican_conf.load(self.configs[i])

    @contextlib.contextmanager
    def _running(self, name: str) -> Iterator[StageResult]:
        self.progress(f"{name} ...")
        started = time.monotonic()
        record = StageResult(name, "failed", 0.0)
        self.report.stages.append(record)
        try:
            yield record
            if record.result == "failed":
                record.result = "done"
        except KeytoolsError as exc:
            record.detail = exc.one_line()
            raise
        finally:
            record.seconds = round(time.monotonic() - started, 3)

    def run(self) -> RotationReport:
        """Every stage not yet done, in order; stops at the first failure (``self.error``)."""
        self.error: KeytoolsError | None = None
        try:
            for name in STAGES:
                if self.state.done(name) and name != "plan":
                    self.report.stages.append(StageResult(name, "already done", 0.0))
                else:
                    with self._running(name) as rec:
                        getattr(self, "_" + name)(rec)
                if name == self.until:
                    break
        except KeytoolsError as exc:
            self.error = exc
        self.report.old = self.state.data.get("old", [])
        self.report.new = self.state.data.get("new")
        self.report.finished = self.state.done("retire")
        return self.report

    # plan: what will change; refuses a second rotation and a KEK that does not fit the database
    def _plan(self, rec: StageResult) -> None:
        if self.state.pending:
            if self.state.data.get("configs") != self.configs:
                raise StateError(f"another KEK rotation is pending ({self.state.path}, for "
                                 f"{', '.join(self.state.data.get('configs', []))})",
                                 "Finish it first: rerun 'keytools barbican kek rotate' with its --config list")
            if self.new_kek and self.state.data.get("new") and kek_fingerprint(self.new_kek) != self.state.data["new"]:
                raise StateError(f"another KEK rotation is pending ({self.state.path}) with another new KEK "
                                 f"({self.state.data['new']})", "Rerun without a new KEK to finish it")
            rec.result = "already done"
            rec.detail = f"resuming: done {', '.join(self.state.data['done'])}"
            return
        status = node_status(self.configs)
        if nodes_differ(status):
            raise StateError("the nodes' KEKs differ: " + "; ".join(f"{s.config}: {s.list_fingerprint}" for s in status),
                             "Make every barbican.conf hold the same kek lines (keytools barbican kek status)")
        conf = self.conf()
        if len(conf.keks) > 1:
            raise StateError(f"{conf.path} already holds {len(conf.keks)} KEKs: a rotation is pending",
                             "Finish it (rewrap, then drop the old kek lines) before starting another")
        check = check_project_keks(conf.connection, conf.keks)
        if check.failed:
            raise StateError(f"{len(check.failed)} of {check.total} project KEKs do not unwrap with the KEK in "
                             f"{conf.path} ({conf.kek_fingerprint}): it is not the KEK of this database",
                             "Point --config at the barbican.conf this Barbican runs with")
        self.state.data = {"version": 1, "configs": self.configs, "done": [], "old": conf.kek_fingerprints,
                           "old_list": conf.kek_fingerprint, "new": None, "project_keks": check.total,
                           "started_at": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
        with reader(conf.connection) as query:
            hsm_note = store_status.p11_kek_note(query)
        faults.kek_pause("plan")
        self.state.mark("plan")
        rec.detail = (f"{check.total} project KEKs under {conf.kek_fingerprint}; {len(self.configs)} node config(s); "
                      "new KEK first in kek, old kept until validate" + hsm_note)

    def _backup(self, rec: StageResult) -> None:
        if not self.backup_out:
            raise UsageError("the rotation needs a backup first: --backup-out FILE is missing",
                             "Give --backup-out and a passphrase source (--passphrase-file/-env or --key-file)")
        target = Path(self.backup_out)
        if target.exists():  # written (atomically) by a run killed before it could record it?
            manifest = operations.inspect(target)
            if manifest["kek_fingerprint"] != self.state.data["old_list"]:
                raise UsageError(f"--backup-out {target} exists and is not a backup of these KEKs",
                                 "Choose a new file name")
            rec.detail = f"{target} (already written)"
        else:
            if self.source is None:
                raise UsageError("the backup needs a passphrase or key file",
                                 "Use --passphrase-file, --passphrase-env or --key-file")
            made = operations.backup(self.configs[0], target, self.source)
            faults.kek_pause("backup")
            rec.detail = f"{target}, {made['bytes']} bytes, KEK {made['kek_fingerprint']}"
        self.state.mark("backup", archive=str(target))

    def _new_kek_material(self) -> str:
        """The new KEK: from a config a killed run already wrote it to, else from stdin, else fresh."""
        recorded = self.state.data.get("new")
        for path in self.configs:
            conf = barbican_conf.load(path)
            if recorded and conf.kek_fingerprints and conf.kek_fingerprints[0] == recorded:
                return conf.keks[0]
        if self.new_kek:
            if recorded and kek_fingerprint(self.new_kek) != recorded:
                raise StateError(f"the new KEK given is not the one this rotation started staging ({recorded})",
                                 "Give the same new KEK again")
            check_project_keks_format(self.new_kek)
            return self.new_kek
        kek = fernet.Fernet.generate_key().decode()
        redaction.register_secret(kek)
        return kek

    def _stage(self, rec: StageResult) -> None:
        kek = self._new_kek_material()
        new_fp = kek_fingerprint(kek)
        self.state.data["new"] = new_fp
        self.state.save()  # before any config changes: a rerun knows which KEK it was writing
        changed = []
        for path in self.configs:
            conf = barbican_conf.load(path)
            if conf.kek_fingerprints and conf.kek_fingerprints[0] == new_fp:
                continue
            target = conf.kek_files[0] if conf.kek_files else conf.path
            barbican_conf.write_keks(target, [kek, *conf.keks])
            changed.append(str(target))
            faults.kek_pause("stage")
        self.state.mark("stage")
        rec.detail = (f"new KEK {new_fp} first, old {', '.join(self.state.data['old'])} kept; "
                      f"{len(changed)} file(s) written (.bak kept until retire). Restart Barbican on every node now")

    def _rewrap(self, rec: StageResult) -> None:
        status = node_status(self.configs)
        if nodes_differ(status) or any(s.primary != self.state.data["new"] for s in status):
            # a node lost the staged KEK (config management?): the next run stages it again
            self.state.data["done"] = [d for d in self.state.data["done"] if d != "stage"]
            self.state.save()
            raise StateError("refusing to rewrap: the nodes' KEKs differ: "
                             + "; ".join(f"{s.config}: {s.list_fingerprint}" for s in status),
                             "Rerun the rotation: it stages the new KEK again where it is missing "
                             "(then restart Barbican there)")
        conf = self.conf()
        output = run_rewrap(conf)
        moved = len(re.findall(r"^Retrieving KEKs for Project", output, re.M))
        rec.detail = f"barbican-manage simple_crypto rewrap_pkek over {moved} projects"
        faults.kek_pause("rewrap")
        self.state.mark("rewrap")

    def _validate(self, rec: StageResult) -> None:
        conf = self.conf()
        new = [conf.keks[0]]
        check = check_project_keks(conf.connection, new)
        if check.failed:
            raise ProblemsFound(f"{len(check.failed)} of {check.total} project KEKs do not unwrap with the new KEK "
                                f"{self.state.data['new']} alone (kek_data ids {', '.join(check.failed[:5])})",
                                "Restart every Barbican node with the staged config, then rerun the rotation "
                                "(the rewrap runs again)")
        from keytools.barbican.scratch_drill import ScratchDrill

        drill = ScratchDrill(config=self.configs[0], sample=self.sample, seed=self.seed, keks=new)
        report = drill.run()
        if report.result != "pass":
            if drill.error is not None:
                raise drill.error
            raise ProblemsFound("secrets do not decrypt with the new KEK alone: "
                                + (report.problems[0] if report.problems else
                                   (report.failed_step.detail if report.failed_step else "?")),
                                "Do not retire the old KEK; rerun the rotation after a restart of Barbican")
        rec.detail = (f"{check.total} project KEKs unwrap with {self.state.data['new']} alone; "
                      f"{report.secrets_checked}/{report.secrets_total} secrets decrypt through a scratch Barbican "
                      "holding only the new KEK")
        faults.kek_pause("validate")
        self.state.mark("validate")

    def _retire(self, rec: StageResult) -> None:
        new_fp = self.state.data["new"]
        kek = None
        for path in self.configs:
            conf = barbican_conf.load(path)
            if conf.kek_fingerprints and conf.kek_fingerprints[0] == new_fp:
                kek = conf.keks[0]
                break
        if kek is None:
            raise StateError("no --config holds the new KEK any more", "Restore the .bak files and rerun")
        check = check_project_keks(self.conf().connection, [kek])
        if check.failed:  # a project KEK created by a not-yet-restarted node under the old KEK
            raise ProblemsFound(f"{len(check.failed)} project KEKs appeared under an old KEK since validate",
                                "Restart every Barbican node, then rerun the rotation")
        written = 0
        for path in self.configs:
            conf = barbican_conf.load(path)
            if list(conf.keks) == [kek]:
                continue
            target = conf.kek_files[0] if conf.kek_files else conf.path
            barbican_conf.write_keks(target, [kek])
            written += 1
            faults.kek_pause("retire")
        # Validate passed: the old KEK now lives only in the encrypted backup. Before retire is
        # recorded, so a run killed in between removes them on its rerun.
        faults.kek_pause("retire-backups")
        removed = self._remove_own_backups()
        self.report.removed_backups = [str(p) for p in removed]
        self.state.mark("retire", finished_at=dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
        rec.detail = (f"old KEKs {', '.join(self.state.data['old'])} dropped from {written} file(s); "
                      f"{len(removed)} .bak file(s) of this rotation removed (they held the old KEK); "
                      "restart Barbican on every node")

    def _remove_own_backups(self) -> list[Path]:
        """Delete what this rotation left beside the KEK files that holds an old KEK in clear: its
        ``<file>.keytools-<time>.bak`` copies (written since the plan, holding an old KEK), the temp
        files of a .bak write a kill interrupted, and the work directories of a killed crudini edit."""
        started = self.state.data.get("started_at", "")
        old = set(self.state.data.get("old", []))
        removed = []
        for target in self._kek_targets():
            remove_stale_workdirs(target.parent, "kek")
            candidates = [*target.parent.glob(f"{target.name}.keytools-*.bak"),
                          *target.parent.glob(f".{target.name}.keytools-*.bak.*.tmp")]
            for path in candidates:
                if not path.name.startswith(".") and not (_backup_time(path, target) >= started
                                                          and _holds_kek(path, old)):
                    continue
                path.unlink(missing_ok=True)
                removed.append(path)
        return removed

    def _kek_targets(self) -> list[Path]:
        targets: dict[Path, None] = {}
        for path in self.configs:
            conf = barbican_conf.load(path)
            targets.update(dict.fromkeys(p.resolve() for p in (conf.kek_files or (conf.path,))))
        return list(targets)


def _backup_time(path: Path, target: Path) -> str:
    """The UTC time in a .bak name (write_keks': YYYYmmddTHHMMSSZ) as the state file writes times."""
    stamp = path.name[len(target.name) + len(".keytools-"):-len(".bak")]
    try:
        return dt.datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").strftime("%Y-%m-%dT%H:%M:%SZ")
    except ValueError:
        return ""


def _holds_kek(path: Path, fingerprints: set[str]) -> bool:
    try:
        settings = oslo_ini.parse_file(path).get_all(barbican_conf.KEK_SECTION, barbican_conf.KEK_OPTION)
    except KeytoolsError:
        return False
    return any(kek_fingerprint(s.value.strip()) in fingerprints for s in settings if s.value.strip())


def check_project_keks_format(kek: str) -> None:
    try:
        fernet.Fernet(kek.encode())
    except (ValueError, TypeError):
        raise UsageError("the new KEK is not a Fernet key (32 bytes, URL-safe base64)",
                         "Generate one with: python3 -c 'from cryptography.fernet import Fernet; "
                         "print(Fernet.generate_key().decode())'") from None


def barbican_manage() -> str:
    return find_tool("barbican-manage", "Install Barbican: pip install 'keytools[sandbox]'")


def run_rewrap(conf: BarbicanConfig) -> str:
    """``barbican-manage simple_crypto rewrap_pkek`` with exactly this barbican.conf.

    Barbican's simple_crypto module parses its own CONF from the default search path (~/.barbican
    first), not from --config-file, so barbican-manage runs with HOME pointing at a private directory
    whose .barbican/ holds this config (and its barbican.conf.d, or an empty one).
    """
    with tempfile.TemporaryDirectory(prefix="keytools-rewrap-") as home:
        dot = Path(home) / ".barbican"
        dot.mkdir(mode=0o700)
        (dot / "barbican.conf").symlink_to(conf.path.resolve())
        conf_d = conf.path.resolve().with_name("barbican.conf.d")
        if conf_d.is_dir():
            (dot / "barbican.conf.d").symlink_to(conf_d)
        else:
            (dot / "barbican.conf.d").mkdir(mode=0o700)
        env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
        env["HOME"] = home
        result = subprocess.run([barbican_manage(), "simple_crypto", "rewrap_pkek"], capture_output=True,
                                text=True, env=env, cwd=home)
    output = result.stdout + result.stderr
    if result.returncode != 0 or "Error occurred!" in output:
        tail = " | ".join(redaction.redact(output).strip().splitlines()[-2:])
        raise KeytoolsError(f"barbican-manage simple_crypto rewrap_pkek failed (exit {result.returncode}): {tail[:300]}",
                            "Fix the cause and rerun the rotation (the rewrap is idempotent)")
    return output
