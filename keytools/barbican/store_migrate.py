"""``keytools barbican store migrate --to pkcs11``: move secrets from simple_crypto to the HSM in
place, keeping every secret id.

Barbican 23 moves nothing between stores (the 1.3 API microversion and ``barbican-manage secret
migrate`` come later, with schema changes). A secret's plugin is decided at read time only by
``encrypted_data.kek_id -> kek_data.plugin_name``, so a move is an in-place update of that row, the
shape ``barbican-manage simple_crypto rewrap_secrets`` uses: per secret, one transaction that locks
the row (``SELECT ... FOR UPDATE`` on MariaDB), decrypts it through simple_crypto, encrypts it
through p11_crypto under the project's KEK (bound by the plugin as Barbican binds it), decrypts the
new ciphertext again and compares, then updates ``cypher_text``, ``kek_meta_extended`` and
``kek_id``. Ids, ACLs, consumers and container links are other rows: untouched. Both plugins stay
enabled on every node during the move, so each secret is readable at every moment from whichever
plugin its row names. A kill leaves committed rows moved and the rest untouched; a rerun selects by
plugin and goes on. Payload fingerprints (never payloads) are compared before and after.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import logging
import os
import random
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

from keytools.barbican import barbican_conf, barbican_runtime, faults, store_config, store_status
from keytools.barbican.dbquery import reader
from keytools.barbican.store_config import P11, PLUGIN_CLASSES, SIMPLE, StoreConfig
from keytools.errors import ServiceUnavailable, StateError, UsageError
from keytools.logs import log_event

LOG = logging.getLogger("keytools.barbican.store")
TARGETS = {"pkcs11": P11}

CANDIDATE_SQL = """
SELECT e.id, s.id, p.external_id
FROM encrypted_data e
JOIN secrets s ON e.secret_id = s.id
JOIN kek_data k ON e.kek_id = k.id
JOIN projects p ON s.project_id = p.id
WHERE k.plugin_name = '{plugin}' AND s.deleted = 0 AND e.deleted = 0
ORDER BY s.created_at, s.id
"""


def fingerprint(payload: bytes) -> str:
    """A domain-separated hash naming a payload without revealing it."""
    return "sha256:" + hashlib.sha256(b"keytools-barbican-payload\0" + payload).hexdigest()[:32]


@dataclass
class Problem:
    secret: str
    project: str
    reason: str


@dataclass
class MoveReport:
    to: str
    dry_run: bool
    selected: int = 0  # secrets on the source plugin in the selection
    moved: int = 0
    already: int = 0  # moved by a concurrent or earlier run meanwhile
    skipped: list[Problem] = field(default_factory=list)
    soft_deleted_left: int = 0  # on simple_crypto, soft-deleted: not moved
    remaining: int = 0  # active secrets still on simple_crypto after the run (all projects)
    verified: int = 0  # read back through p11_crypto alone
    fingerprints_compared: int = 0
    verify_failed: list[Problem] = field(default_factory=list)
    api_checked: int = 0
    api_note: str = ""
    api_max_version: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return not self.skipped and not self.verify_failed


# --- preflight ------------------------------------------------------------------------------

def refusals(nodes: list[StoreConfig], preferences: list[store_status.Preference], target: str) -> list[str]:
    """Why the move must not start: every node must serve both plugins and store new secrets on
    the target; no project may prefer the software store (it would keep getting new secrets)."""
    out = []
    for node in nodes:
        for plugin in (SIMPLE, target):
            if not node.serves(plugin):
                out.append(f"{node.config}: {plugin} is not enabled (needs a [secretstore:NAME] store with "
                           f"crypto_plugin = {plugin} in stores_lookup_suffix, or without multiple stores an "
                           f"[crypto] enabled_crypto_plugins = {plugin} line, "
                           + ("and [simple_crypto_plugin] kek)" if plugin == SIMPLE else
                              "and [p11_crypto_plugin] library_path and login)"))
        if node.default_crypto != target:
            out.append(f"{node.config}: new secrets still go to {node.default_crypto or 'no store'}; make the "
                       f"{target} store the global default ([secretstore:NAME] global_default = True) "
                       "and restart Barbican")
    for pref in preferences:
        if pref.crypto_plugin != target:
            out.append(f"project {pref.project} prefers store {pref.store!r} ({pref.crypto_plugin}); unset it as an "
                       f"admin of that project: DELETE /v1/secret-stores/{pref.store_id}/preferred")
    return out


# --- the move -------------------------------------------------------------------------------

class Mover:
    """One run: preflight, move (or count, with ``dry_run``), verify."""

    def __init__(self, config: str, nodes: list[str] | None = None, to: str = "pkcs11", dry_run: bool = False,
                 sample: int | None = None, project: str | None = None, seed: int | None = None,
                 api_session: Any = None, api_sample: int = 5,
                 progress: Callable[[int | None, str], AbstractContextManager[Callable[[int], None]]]
                 | None = None) -> None:
        """``progress``: ``(total, label) -> context yielding advance(n)``, e.g.
        ``keytools.progress.progress`` (a TTY-only bar); none by default."""
        if to not in TARGETS:
            raise UsageError(f"--to {to} is not supported", "Use --to pkcs11")
        if sample is not None and sample < 1:
            raise UsageError("--sample must be at least 1", "Give a positive number of secrets")
        self.config = config
        self.nodes = [config, *[n for n in (nodes or []) if n != config]]
        self.target = TARGETS[to]
        self.report = MoveReport(to=to, dry_run=dry_run)
        self.sample, self.project, self.seed = sample, project, seed
        self.api_session, self.api_sample = api_session, api_sample
        self.progress = progress or (lambda _total, _label: contextlib.nullcontext(lambda _n=1: None))
        self.before: dict[str, str] = {}  # secret id -> payload fingerprint taken before its move
        self.projects: dict[str, str] = {}  # secret id -> Keystone project id

    # preflight
    def preflight(self) -> tuple[Any, list[tuple[str, str, str]]]:
        for path in self.nodes:
            if not os.path.exists(path):
                raise UsageError(f"--config {path}: no such file", "Give every Barbican node's barbican.conf")
        nodes = [store_config.load(p) for p in self.nodes]
        conf = barbican_conf.load(self.config, need_kek=False)
        with reader(conf.connection) as query:
            preferences = store_status.read_preferences(query)
            todo = [(str(e), str(s), str(p)) for e, s, p in
                    query(CANDIDATE_SQL.format(plugin=PLUGIN_CLASSES[SIMPLE]))]  # noqa: S608 - a constant
            deleted = query(f"SELECT COUNT(*) FROM encrypted_data e JOIN secrets s ON e.secret_id = s.id "  # noqa: S608
                            f"JOIN kek_data k ON e.kek_id = k.id WHERE k.plugin_name = '{PLUGIN_CLASSES[SIMPLE]}' "
                            "AND (s.deleted = 1 OR e.deleted = 1)")
        self.report.soft_deleted_left = int(deleted[0][0]) if deleted else 0
        if todo and not nodes[0].serves(SIMPLE):
            raise StateError(f"{len(todo)} secrets are still on simple_crypto but {self.config} no longer "
                             "enables it (Barbican answers 500 for them)",
                             "Put simple_crypto (and its kek) back into every node's barbican.conf, restart "
                             "Barbican, and rerun the move")
        problems = refusals(nodes, preferences, self.target)
        if problems:
            raise StateError("the move is refused: " + "; ".join(problems),
                             "Fix the above on every node (see docs/barbican-hsm.md) and rerun")
        if self.project:
            todo = [t for t in todo if t[2] == self.project]
        if self.sample is not None and len(todo) > self.sample:
            rng = random.Random(self.seed)
            todo = sorted(rng.sample(todo, self.sample), key=todo.index)
        self.report.selected = len(todo)
        rt = barbican_runtime.load(self.config)
        try:
            barbican_runtime.load_p11(rt)  # a wrong PIN or missing MKEK/HMAC stops here, once
            if todo:
                barbican_runtime.load_simple(rt)
        except BaseException:
            rt.close()
            raise
        return rt, todo

    def run(self) -> MoveReport:
        started = time.monotonic()
        if self.api_session is not None:
            self.report.api_max_version = store_status.api_max_version(self.api_session)
            if store_status.offers_move(self.report.api_max_version):
                self.report.notes.append(f"the Barbican API offers microversion {self.report.api_max_version}: "
                                         "PUT /v1/secrets/{id}/secret-store/{store-id} is available; "
                                         "keytools still moves in place (same result, no API round trips)")
            else:
                self.report.notes.append(f"the Barbican API offers microversions up to {self.report.api_max_version}, "
                                         "not 1.3 (secret-store move): moving in place")
        rt, todo = self.preflight()
        try:
            if not self.report.dry_run:
                self._move_all(rt, todo)
            moved_ids = [s for _, s, _ in todo]
            self._verify(rt, moved_ids if not self.report.dry_run else [])
        finally:
            rt.close()
        if self.api_session is not None and not self.report.dry_run:
            self._api_check()
        with reader(rt.conf.database.connection) as query:
            left = query(CANDIDATE_SQL.format(plugin=PLUGIN_CLASSES[SIMPLE]))  # noqa: S608
        self.report.remaining = len(left)
        if self.report.soft_deleted_left:
            self.report.notes.append(f"{self.report.soft_deleted_left} soft-deleted secrets stay on simple_crypto: "
                                     "keep [simple_crypto_plugin] kek until 'barbican-manage db clean' has purged "
                                     "them (and older backups have expired)")
        self.report.seconds = time.monotonic() - started
        return self.report

    def _move_all(self, rt: barbican_runtime.Runtime, todo: list[tuple[str, str, str]]) -> None:
        keks: dict[str, str] = {}  # project -> its p11_crypto kek_data id
        with self.progress(len(todo), f"Moving secrets to {self.report.to}") as advance:
            for datum_id, secret_id, project in todo:
                self._move_logged(rt, datum_id, secret_id, project, keks)
                advance(1)

    def _move_logged(self, rt: barbican_runtime.Runtime, datum_id: str, secret_id: str, project: str,
                     keks: dict[str, str]) -> None:
        """One secret (its project's KEK bound first), logged; errors that stop the run are typed here."""
        from barbican.common import exception as barbican_exc
        from barbican.model import repositories
        from oslo_db import exception as db_exc
        from sqlalchemy import exc as sa_exc

        self.projects[secret_id] = project
        try:
            if project not in keks:
                keks[project] = self._bind_kek(rt, project)
            outcome = self._move_one(rt, datum_id, secret_id, project, keks[project])
        except barbican_exc.PKCS11Exception as exc:  # systematic: the HSM refuses, stop here
            raise StateError(f"the HSM refused an operation while moving secret {secret_id}: {exc}; "
                             f"{self.report.moved} secrets moved before it, this one left as it was",
                             "Check [p11_crypto_plugin] (mechanisms, token) and rerun") from None
        except (db_exc.DBError, sa_exc.OperationalError) as exc:
            raise ServiceUnavailable(f"database error while moving secret {secret_id} "
                                     f"({type(exc).__name__}); it was left as it was",
                                     "Rerun the same command: moved secrets stay moved") from None
        finally:
            repositories.clear()
        log_event(LOG, logging.INFO if outcome in ("moved", "already moved") else logging.WARNING,
                  f"secret {secret_id} (project {project}): {outcome}", "barbican.store.move",
                  secret=secret_id, project=project, outcome=outcome, to=self.report.to)
        faults.store_pause("secret")

    def _bind_kek(self, rt: barbican_runtime.Runtime, project: str) -> str:
        """The project's p11_crypto KEK, found or created and bound by the plugin as Barbican does
        on a store (``store_crypto._find_or_create_kek_objects``), committed on its own."""
        from barbican.common import resources
        from barbican.model import repositories
        from barbican.plugin import store_crypto

        try:
            project_model = resources.get_or_create_project(project)
            kek_model, _ = store_crypto._find_or_create_kek_objects(rt.plugin(self.target), project_model)
            kek_id = kek_model.id
            repositories.commit()
            return kek_id
        except BaseException:
            repositories.rollback()
            raise
        finally:
            repositories.clear()

    def _move_one(self, rt: barbican_runtime.Runtime, datum_id: str, secret_id: str, project: str,
                  kek_id: str) -> str:
        from barbican.model import models, repositories
        from barbican.plugin.crypto import base

        session = repositories.get_session()
        try:
            datum = (session.query(models.EncryptedDatum).filter_by(id=datum_id)
                     .with_for_update().one_or_none())
            if datum is None or datum.deleted:
                repositories.rollback()
                self.report.already += 1
                return "gone meanwhile"
            if datum.kek_meta_project.plugin_name != PLUGIN_CLASSES[SIMPLE]:
                repositories.rollback()
                self.report.already += 1
                return "already moved"
            try:
                plain = rt.plugin(SIMPLE).decrypt(base.DecryptDTO(base64.b64decode(datum.cypher_text)),
                                                  base.KEKMetaDTO(datum.kek_meta_project),
                                                  datum.kek_meta_extended, project)
            except Exception as exc:  # noqa: BLE001 - any failure to decrypt: report, skip, write nothing
                repositories.rollback()
                self.report.skipped.append(Problem(secret_id, project, "the simple_crypto ciphertext does not "
                                                   f"decrypt ({type(exc).__name__}); left as it is"))
                return "skipped: old ciphertext does not decrypt"
            before = fingerprint(plain)
            kek = session.query(models.KEKDatum).filter_by(id=kek_id).one()
            new = rt.plugin(self.target).encrypt(base.EncryptDTO(plain), base.KEKMetaDTO(kek), project)
            again = rt.plugin(self.target).decrypt(base.DecryptDTO(new.cypher_text), base.KEKMetaDTO(kek),
                                                   new.kek_meta_extended, project)
            if fingerprint(again) != before:
                repositories.rollback()
                self.report.skipped.append(Problem(secret_id, project, "the new ciphertext did not decrypt to "
                                                   "the same payload; left on simple_crypto"))
                return "skipped: round trip differs"
            datum.cypher_text = base64.b64encode(new.cypher_text)
            datum.kek_meta_extended = new.kek_meta_extended
            datum.kek_id = kek.id
            datum.kek_meta_project = kek
            faults.store_pause("commit")
            repositories.commit()
            self.before[secret_id] = before
            self.report.moved += 1
            return "moved"
        except BaseException:
            repositories.rollback()
            raise

    # verify
    def _verify(self, rt: barbican_runtime.Runtime, moved: list[str]) -> None:
        """Every secret of the selection now on the target, read back from the database through
        the target plugin alone (a second plugin instance: no cached project KEK or master key
        handle), compared by fingerprint where this run took one before the move."""
        from barbican.model import models, repositories
        from barbican.plugin.crypto import base

        if not moved:
            return
        fresh = barbican_runtime.fresh_p11(rt)
        try:
            session = repositories.get_session()
            for secret_id in moved:
                secret = session.query(models.Secret).filter_by(id=secret_id).one_or_none()
                if secret is None or secret.deleted or not secret.encrypted_data:
                    continue
                datum = secret.encrypted_data[0]
                if datum.kek_meta_project.plugin_name != PLUGIN_CLASSES[self.target]:
                    continue  # skipped above: reported there
                try:
                    plain = fresh.plugin(self.target).decrypt(
                        base.DecryptDTO(base64.b64decode(datum.cypher_text)), base.KEKMetaDTO(datum.kek_meta_project),
                        datum.kek_meta_extended, secret.project.external_id)
                except Exception as exc:  # noqa: BLE001
                    self.report.verify_failed.append(Problem(secret_id, secret.project.external_id,
                                                             f"does not decrypt through {self.target} "
                                                             f"({type(exc).__name__})"))
                    continue
                self.report.verified += 1
                if secret_id in self.before:
                    self.report.fingerprints_compared += 1
                    if fingerprint(plain) != self.before[secret_id]:
                        self.report.verify_failed.append(Problem(secret_id, secret.project.external_id,
                                                                 "payload fingerprint differs from before the move"))
            repositories.rollback()
        finally:
            repositories.clear()

    def _api_check(self) -> None:
        """A sample of the moved secrets read through the Barbican API as the session's user (only
        secrets of its project: Barbican's policy lets a user read its own project's secrets)."""
        from barbicanclient import client as barbican_client

        project = self.api_session.get_project_id()
        mine = [s for s, fp in self.before.items() if self.projects.get(s) == project]
        if not mine:
            self.report.api_note = f"no moved secret in the API user's project {project}"
            return
        rng = random.Random(self.seed)
        chosen = rng.sample(mine, min(self.api_sample, len(mine)))
        client = barbican_client.Client(session=self.api_session)
        endpoint = self.api_session.get_endpoint(service_type="key-manager", interface="public")
        for secret_id in chosen:
            payload = client.secrets.get(f"{endpoint.rstrip('/')}/v1/secrets/{secret_id}").payload
            data = payload.encode() if isinstance(payload, str) else payload
            if fingerprint(data) != self.before[secret_id]:
                self.report.verify_failed.append(Problem(secret_id, project, "read through the API, the payload "
                                                         "fingerprint differs from before the move"))
            self.report.api_checked += 1

