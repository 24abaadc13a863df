"""``keytools swift check``: is a proxy-server.conf's encryption set up right, and do its keys load?

Checks (stable ids): the pipeline ends ``<keymaster> encryption proxy-logging proxy-server``
(SWIFT001), the keymaster is keytools' (SWIFT002, a note when it is Swift's own), encryption is not
disabled (SWIFT003), the separate keymaster file is 0600 (SWIFT004), the keymaster options are
valid (SWIFT005), every configured key loads from Barbican as AES >= 256 bits raw (SWIFT006), and
(a warning, exit 0) old non-active keys that key-usage never counted (SWIFT007).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from keytools.errors import ConfigError, KeytoolsError, NotFound, ProblemsFound, UsageError
from swift_middleware import rootsecrets, settings, swiftconf, usagestate

OURS = ("egg:keytools#keymaster", "swift_middleware.keymaster:filter_factory")
SWIFT_KEYMASTERS = ("egg:swift#keymaster", "egg:swift#kms_keymaster")
ENCRYPTION = "egg:swift#encryption"
PROXY_LOGGING = "egg:swift#proxy_logging"
PROXY_APP = "egg:swift#proxy"


@dataclass
class Finding:
    check: str
    ok: bool
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "ok": self.ok, "message": self.message}


@dataclass
class CheckReport:
    path: str
    pipeline: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    keys: list[rootsecrets.LoadedKey] = field(default_factory=list)
    cause: KeytoolsError | None = None  # why keys could not be loaded, when that decides the exit code

    @property
    def ok(self) -> bool:
        return self.cause is None and all(f.ok for f in self.findings)

    def failure(self) -> KeytoolsError | None:
        """What the check fails with once the report is shown: why the keys could not be loaded
        (unreachable, credentials or access refused), else ProblemsFound; None when all is well."""
        if self.cause is not None:
            return self.cause
        if not self.ok:
            return ProblemsFound(f"{self.path}: {sum(not f.ok for f in self.findings)} check(s) failed")
        return None

    def add(self, check: str, ok: bool, message: str) -> None:
        self.findings.append(Finding(check, ok, message))

    def as_dict(self) -> dict[str, Any]:
        return {"proxy_conf": self.path, "ok": self.ok, "pipeline": self.pipeline,
                "checks": [f.as_dict() for f in self.findings],
                "keys": [k.as_dict() for k in self.keys]}


def read_proxy_conf(path: str) -> dict[str, dict[str, str]]:
    """All sections of a proxy-server.conf (or conf.d directory) as Swift reads them."""
    return swiftconf.read(path, hint="Give the proxy-server.conf path")


def entry_point(section: dict[str, str]) -> str:
    return (section.get("use") or section.get("paste.filter_factory")
            or section.get("paste.app_factory") or "").strip()


def filter_conf(path: str, sections: dict[str, dict[str, str]], name: str) -> dict[str, str]:
    """A filter's conf as paste.deploy hands it to the factory: [DEFAULT] + its own section."""
    conf = dict(sections.get(f"filter:{name}", {}))
    conf["__file__"] = path
    return conf


def pipeline_of(path: str, sections: dict[str, dict[str, str]]) -> list[str]:
    main = sections.get("pipeline:main")
    if not main or not main.get("pipeline"):
        raise ConfigError(f"{path}: no [pipeline:main] pipeline", "Is this a proxy-server.conf?")
    return main["pipeline"].split()


def _uses(sections: dict[str, dict[str, str]], name: str) -> str:
    section = sections.get(f"filter:{name}") or sections.get(f"app:{name}") or {}
    return entry_point(section)


def check_pipeline(report: CheckReport, sections: dict[str, dict[str, str]]) -> str | None:
    """Pipeline checks; returns the name of the keymaster filter when it is keytools'."""
    pipeline = report.pipeline
    uses = [_uses(sections, name) for name in pipeline]
    km_index = next((i for i, u in enumerate(uses) if u in OURS or u in SWIFT_KEYMASTERS), None)
    expected = "<keymaster> encryption proxy-logging proxy-server"
    tail = uses[-4:]
    ok = (len(uses) >= 4 and km_index == len(uses) - 4 and tail[1] == ENCRYPTION
          and tail[2] == PROXY_LOGGING and tail[3] == PROXY_APP)
    report.add("SWIFT001 pipeline order", ok,
               f"ends with {' '.join(pipeline[-4:])}" if ok else
               f"the pipeline must end with '{expected}', it ends with '{' '.join(pipeline[-4:])}'")
    if km_index is None:
        report.add("SWIFT002 keymaster", False, "no keymaster in the pipeline: add a "
                   "[filter:keymaster] with use = egg:keytools#keymaster before encryption")
        return None
    name = pipeline[km_index]
    if uses[km_index] not in OURS:
        report.add("SWIFT002 keymaster", False,
                   f"[filter:{name}] uses {uses[km_index]}; switch to use = egg:keytools#keymaster "
                   "(kms_keymaster options work unchanged; an inline encryption_root_secret moves to "
                   "Barbican with 'keytools swift new-key --migrate-from-inline')")
        return None
    report.add("SWIFT002 keymaster", True, f"[filter:{name}] uses {uses[km_index]}")
    enc = next((pipeline[i] for i, u in enumerate(uses) if u == ENCRYPTION), None)
    if enc is None:
        report.add("SWIFT003 encryption", False, "no encryption filter (use = egg:swift#encryption)")
    else:
        disabled = str(sections.get(f"filter:{enc}", {}).get("disable_encryption", "false")).lower()
        off = disabled in ("1", "true", "yes", "on", "t", "y")
        report.add("SWIFT003 encryption", not off,
                   f"[filter:{enc}] disable_encryption = {disabled}: new objects are stored in plain "
                   "text; remove the option" if off else f"[filter:{enc}] encrypts new objects")
    return name


def check(path: str, attempts: int = 0) -> CheckReport:
    """Run every check; key loading uses the keymaster's own credentials, with no retries by default."""
    sections = read_proxy_conf(path)
    report = CheckReport(path, pipeline_of(path, sections))
    name = check_pipeline(report, sections)
    if name is None:
        return report
    conf = filter_conf(path, sections, name)
    loose = settings.loose_permissions(conf)
    if conf.get("keymaster_config_path"):
        report.add("SWIFT004 keymaster file", loose is None,
                   loose or f"{conf['keymaster_config_path']} is private (credentials stay out of "
                   "proxy-server.conf)")
    try:
        km_settings = settings.parse(conf)
    except ConfigError as exc:
        report.add("SWIFT005 keymaster options", False, exc.one_line())
        return report
    report.add("SWIFT005 keymaster options", True,
               f"{len(km_settings.keys)} key id(s), active: "
               f"{km_settings.key(km_settings.active_secret_id).option}, startup = {km_settings.startup}")
    stale = usagestate.stale_key_warnings(conf, [k.secret_id for k in km_settings.keys],
                                          km_settings.active_secret_id)
    if len(km_settings.keys) > 1:
        # A warning, not a failure: old keys are normal during a rotation, forgotten ones are not.
        report.add("SWIFT007 old root secrets", True, "WARNING: " + "; ".join(stale) if stale else
                   "every non-active root secret was counted by key-usage")
    try:
        loaded = rootsecrets.fetch_with_retries(km_settings, _Quiet(), attempts=attempts)
    except KeytoolsError as exc:
        # A refused or missing secret, a bad option: a failed check. Anything else (unreachable,
        # credentials or read access refused) is the cause the command fails with.
        report.cause = None if isinstance(exc, (UsageError, NotFound)) else exc
        report.add("SWIFT006 root secrets", False, exc.one_line())
        return report
    report.keys = list(loaded.keys)
    report.add("SWIFT006 root secrets", True, f"{len(loaded.keys)} root secret(s) loaded from Barbican")
    return report


class _Quiet:
    def warning(self, *args: Any) -> None:
        pass
