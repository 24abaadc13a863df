"""``volume-type check``: is every encrypted type sane, is the key manager Barbican, can the caller
create an encrypted volume?

The key manager is read from cinder.conf when one is given. Otherwise it is inferred through the
API: Cinder's volume details (microversion 3.64) show a per-volume ``encryption_key_id`` only when
it is not ConfKeyManager's all-zeros id, and Barbican answers 404 for ids it does not hold (403 or
200 for ids it does), so a few encrypted volumes tell which key manager made their keys.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from keystoneauth1 import session as ks_session

from keytools import keymanager, oslo_ini, rbac
from keytools.errors import Forbidden, KeytoolsError
from keytools.service_errors import translated
from keytools.volume_types import cinder_api
from keytools.volume_types.spec import TEMPLATE_NAME, from_cinder

BARBICAN_CLASS = "castellan.key_manager.barbican_key_manager.BarbicanKeyManager"
KEY_PROBES = 3  # key ids looked up in Barbican
VOLUME_SCAN_LIMIT = 200


@dataclass
class TypeCheck:
    name: str
    id: str | None
    encryption: dict[str, Any] | None
    problems: list[str] = field(default_factory=list)

    def as_row(self) -> dict[str, Any]:
        enc = self.encryption or {}
        return {"name": self.name, "id": self.id, "provider": enc.get("provider"),
                "cipher": enc.get("cipher"), "key_size": enc.get("key_size"),
                "control_location": enc.get("control_location"), "sane": not self.problems,
                "problems": self.problems}


@dataclass
class KeyManagerCheck:
    backend: str | None  # "barbican", another backend's name, or None when unknown
    source: str  # where the answer comes from
    problems: list[str] = field(default_factory=list)


@dataclass
class CreatorCheck:
    allowed: bool | None
    user: str | None
    project: str | None
    roles: list[str]
    remedy: str | None
    problems: list[str] = field(default_factory=list)


@dataclass
class Report:
    types: list[TypeCheck]
    key_manager: KeyManagerCheck
    creator: CreatorCheck
    problems: list[str] = field(default_factory=list)  # not tied to one type

    def problem_count(self) -> int:
        return (len(self.problems) + sum(len(t.problems) for t in self.types)
                + len(self.key_manager.problems) + len(self.creator.problems))

    def as_dict(self) -> dict[str, Any]:
        return {"types": [t.as_row() for t in self.types], "key_manager": asdict(self.key_manager),
                "creator": asdict(self.creator), "problems": self.problems,
                "problem_count": self.problem_count()}


def check_types(records: list[cinder_api.TypeRecord], names: list[str]) -> tuple[list[TypeCheck], list[str]]:
    """Per-type findings; named types must exist and be encrypted."""
    by_name = {r.name: r for r in records}
    general: list[str] = []
    if names:
        chosen = []
        for name in names:
            record = by_name.get(name)
            if record is None:
                chosen.append(TypeCheck(name, None, None, ["no such volume type"]))
            else:
                chosen.append(_type_check(record))
        return chosen, general
    checks = [_type_check(r) for r in records if r.encryption]
    if not checks:
        general.append("no encrypted volume type exists; create one with "
                       f"'keytools volume-type create --template 256' ({TEMPLATE_NAME.format(bits=256)})")
    return checks, general


def _type_check(record: cinder_api.TypeRecord) -> TypeCheck:
    if not record.encryption:
        return TypeCheck(record.name, record.id, None, ["not encrypted (no encryption spec)"])
    _, problems = from_cinder(record.encryption)
    return TypeCheck(record.name, record.id, record.encryption, problems)


def key_manager_check_from_config(path: str) -> KeyManagerCheck:
    """[key_manager] backend (or its deprecated name api_class) from cinder.conf and its .d files."""
    conf = oslo_ini.parse_with_conf_d(path)
    setting = conf.setting("key_manager", "backend") or conf.setting("key_manager", "api_class")
    if setting is None:
        return KeyManagerCheck("barbican", f"{path}: [key_manager] backend not set (castellan's default)")
    where = f"{setting.path}:{setting.line} [key_manager] {setting.option} = {setting.value}"
    value = setting.value.strip()
    if value.lower() == "barbican" or value == BARBICAN_CLASS or value.endswith(".BarbicanKeyManager"):
        return KeyManagerCheck("barbican", where)
    problem = (f"the key manager is {value!r}, not Barbican ({where})"
               + (": every volume shares one fixed_key; migrate with 'keytools migrate'"
                  if "ConfKeyManager" in value else ""))
    return KeyManagerCheck(value, where, [problem])


def key_manager_check_from_api(cinder: Any, session: ks_session.Session) -> KeyManagerCheck:
    """Infer the key manager from the encrypted volumes the caller can see (see module docstring)."""
    hint = "no encrypted volume visible to infer it from; give --config-file cinder.conf"
    try:
        with cinder_api.calling("listing volumes"):
            volumes = cinder.volumes.list(search_opts={"all_tenants": 1}, limit=VOLUME_SCAN_LIMIT)
    except Forbidden:
        return KeyManagerCheck(None, "this user may not list volumes; give --config-file cinder.conf")
    encrypted = [v for v in volumes if getattr(v, "encrypted", False)]
    if not encrypted:
        return KeyManagerCheck(None, hint)
    key_ids = [getattr(v, "encryption_key_id", None) for v in encrypted]
    fixed = sum(1 for k in key_ids if not k)
    if fixed:
        return KeyManagerCheck("ConfKeyManager", f"API: {fixed} of {len(encrypted)} encrypted volumes hide "
                               "their key id (ConfKeyManager's all-zeros id)",
                               [f"{fixed} encrypted volumes use ConfKeyManager's fixed_key, not Barbican; "
                                "migrate them with 'keytools migrate'"])
    probed = [k for k in key_ids if k][:KEY_PROBES]
    missing = [k for k in probed if not _in_barbican(session, k)]
    source = f"API: {len(probed)} of {len(encrypted)} encrypted volumes' key ids looked up in Barbican"
    if missing:
        return KeyManagerCheck(None, source, [f"key ids not in this cloud's Barbican: {', '.join(missing)} "
                                              "(another key manager, or keys deleted)"])
    return KeyManagerCheck("barbican", source)


def _in_barbican(session: ks_session.Session, key_id: str) -> bool:
    """Barbican looks the secret up before policy: 404 = absent, 200/403 = present."""
    with translated("Barbican", f"looking up key {key_id}"):
        endpoint = keymanager.barbican_endpoint(session)
        resp = session.get(f"{endpoint}/v1/secrets/{key_id}", raise_exc=False,
                           headers={"Accept": "application/json"})
    return resp.status_code in (200, 403)


def creator_check(session: ks_session.Session) -> CreatorCheck:
    """Whether the caller's token may create the per-volume secret Cinder stores in Barbican."""
    try:
        result = rbac.check_create(session)
    except KeytoolsError as exc:
        return CreatorCheck(None, None, None, [], exc.hint, [f"cannot tell: {exc.message}"])
    problems = [] if result.allowed else [
        f"{result.user} in project {result.project} cannot create encrypted volumes: Barbican refuses "
        "to store their keys (missing role)"]
    return CreatorCheck(result.allowed, result.user, result.project, list(result.roles), result.remedy(),
                        problems)


def run(session: ks_session.Session, names: list[str], key_manager: KeyManagerCheck | None = None) -> Report:
    """Everything ``volume-type check`` reports. A non-admin caller cannot read encryption specs
    (Cinder policy): the type checks are then skipped with one problem saying so, and the rest
    (key manager, the caller's own right to create encrypted volumes) still runs. ``key_manager``:
    the answer from a cinder.conf, read before any API call; None infers it through the API."""
    km = key_manager
    cinder = cinder_api.client(session)
    try:
        records = cinder_api.list_types(cinder)
        types, general = check_types(records, names)
    except Forbidden as exc:
        types, general = [], [f"type checks skipped: {exc.message}"]
    if km is None:
        km = key_manager_check_from_api(cinder, session)
    return Report(types, km, creator_check(session), general)
