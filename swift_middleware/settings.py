"""The keymaster's configuration: Swift's ``kms_keymaster`` option names, read once and validated.

An operator switches from ``kms_keymaster`` by changing one ``use =`` line, so the options keep
their upstream names (``auth_endpoint``, ``username``, ``key_id``/``key_id_<n>``,
``active_root_secret_id``, ``barbican_endpoint``, ``barbican_region_name``,
``keymaster_config_path`` for a separate file whose section is ``[kms_keymaster]``). Additions:
application credentials, ``barbican_region`` (alias), ``cafile``/``insecure``, ``barbican_timeout``
and the start-up policy (``startup = strict|lazy``, ``startup_retries``, ``startup_backoff``).
"""

from __future__ import annotations

import hashlib
import math
import os
import stat
import urllib.parse
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field

from keytools.errors import ConfigError
from swift_middleware import swiftconf

CONF_SECTION = "kms_keymaster"  # the section of keymaster_config_path, as kms_keymaster reads it

PASSWORD_OPTIONS = ("username", "password", "user_id", "project_name", "project_id",
                    "user_domain_name", "user_domain_id", "project_domain_name", "project_domain_id",
                    "domain_id", "domain_name", "trust_id")
APP_CRED_OPTIONS = ("application_credential_id", "application_credential_secret",
                    "application_credential_name")
BARBICAN_OPTIONS = ("barbican_endpoint", "barbican_region_name", "barbican_region",
                    "barbican_endpoint_type", "barbican_timeout", "cafile", "insecure")
STARTUP_OPTIONS = ("startup", "startup_retries", "startup_backoff", "startup_backoff_max")
# Options that must not sit in the filter section when keymaster_config_path is set (as upstream).
KEYMASTER_OPTS = ("auth_endpoint", *PASSWORD_OPTIONS, *APP_CRED_OPTIONS, "reauthenticate",
                  "api_class", "key_id*", *BARBICAN_OPTIONS, "active_root_secret_id")
# Credentials masked in every log line and error (rootsecrets.make_session registers them).
SECRET_OPTIONS = ("password", "application_credential_secret")

STARTUP_MODES = ("strict", "lazy")
MAX_RETRIES = 1000  # start-up attempts; beyond this a proxy would never start nor refuse
MAX_SECONDS = 3600.0  # barbican_timeout and the start-up backoff
META_VERSIONS = ("1", "2", "3")  # BaseKeyMaster's meta_version_to_write


@dataclass(frozen=True)
class KeyRef:
    """One configured root secret: Swift's secret id (None for plain ``key_id``) and its UUID."""

    secret_id: str | None
    option: str
    key_id: str


@dataclass(frozen=True)
class KeymasterSettings:
    where: str  # the file (and section) the options came from, for messages
    auth_url: str
    auth_type: str  # "password" or "v3applicationcredential"
    auth_options: dict[str, str] = field(repr=False)
    keys: tuple[KeyRef, ...]
    active_secret_id: str | None
    barbican_endpoint: str | None = None
    barbican_region: str | None = None
    barbican_interface: str = "public"
    verify: bool | str = True
    timeout: float = 10.0
    startup: str = "strict"
    startup_retries: int = 4
    startup_backoff: float = 1.0
    startup_backoff_max: float = 30.0

    def cache_key(self) -> str:
        """Identifies the credentials and keys: equal settings share one load per process."""
        material = repr((self.auth_url, self.auth_type, sorted(self.auth_options.items()), self.keys,
                         self.barbican_endpoint, self.barbican_region, self.barbican_interface,
                         self.verify))
        return hashlib.sha256(material.encode()).hexdigest()

    def key(self, secret_id: str | None) -> KeyRef:
        return next(k for k in self.keys if k.secret_id == secret_id)


def _num(conf: Mapping[str, str], name: str, default: float, where: str, minimum: float,
         maximum: float, integer: bool = False) -> float:
    """A finite number in [minimum, maximum] (NaN, inf and 1e999 refused: they would crash or hang
    the start-up loop); ``integer`` refuses fractions."""
    raw = conf.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not minimum <= value <= maximum or (integer and not value.is_integer()):
        kind = "a whole number" if integer else "a number"
        raise ConfigError(f"{where}: {name} = {shown(raw)} is not a number >= {minimum:g} ({kind} "
                          f"up to {maximum:g})", f"Set {name} to {kind} from {minimum:g} to {maximum:g}")
    return value


def shown(value: object, quote: str = "") -> str:
    """A non-secret option's value for a message: its first line, at most 40 characters.

    Only the first line: an indented line below an option continues its value, so a password
    line indented by mistake would otherwise be quoted in the error."""
    lines = str(value).split("\n")
    first = lines[0] if len(lines[0]) <= 40 else lines[0][:40] + "..."
    return quote + first + quote + (f" (+{len(lines) - 1} continuation line(s))" if len(lines) > 1 else "")


def _url(where: str, option: str, value: str | None) -> None:
    """An http(s) URL on one line (a continuation line would carry the next option into errors)."""
    if not value:
        return
    try:
        parts = urllib.parse.urlsplit(value) if value.isprintable() and " " not in value else None
        ok = parts is not None and parts.scheme in ("http", "https") and bool(parts.hostname) \
            and (parts.port is None or parts.port > 0)
    except ValueError:  # a bad IPv6 literal or port
        ok = False
    if not ok:
        raise ConfigError(f"{where}: {option} = {shown(value)} is not an http(s) URL",
                          "Set it to a URL such as http://keystone:5000/v3")


def _true(value: str | None) -> bool:
    return str(value or "").strip().lower() in ("1", "true", "yes", "on", "t", "y")


def effective_conf(conf: Mapping[str, str]) -> tuple[dict[str, str], str]:
    """The keymaster options and where they come from: the filter section, or the separate
    ``keymaster_config_path`` file (its ``[kms_keymaster]`` section), exactly as upstream.

    Start-up policy options may stay in the filter section in both cases.
    """
    path = conf.get("keymaster_config_path")
    here = conf.get("__file__", "proxy-server.conf")
    if not path:
        return dict(conf), f"{here} keymaster filter"
    clashes = sorted(opt for opt in conf for km in KEYMASTER_OPTS
                     if (km.endswith("*") and opt.startswith(km[:-1])) or opt == km)
    if clashes:
        raise ConfigError(f"{here}: keymaster_config_path is set, but there are other config options "
                          f"specified: {', '.join(clashes)}", f"Move them into [{CONF_SECTION}] of {path}")
    swiftconf.check_path(path, f"{here}: keymaster_config_path")
    file_conf = swiftconf.read(path, CONF_SECTION, what="keymaster_config_path",
                               hint=f"Create it (mode 0600) with a [{CONF_SECTION}] section")
    merged = {k: v for k, v in conf.items() if k in STARTUP_OPTIONS}
    merged.update(file_conf)
    return merged, f"{path} [{CONF_SECTION}]"


def loose_permissions(conf: Mapping[str, str]) -> str | None:
    """A warning when the separate keymaster file is readable by group or others (it holds a password)."""
    path = conf.get("keymaster_config_path")
    if not path:
        return None
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):  # missing, or no path at all (a NUL byte): parse() says which
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        return f"{path} has mode {stat.S_IMODE(mode):04o}; it holds credentials: chmod 0600 it"
    return None


def key_options(conf: Mapping[str, str], where: str) -> list[tuple[str, str | None, str]]:
    """``(option, secret id, value)`` of every ``key_id``/``key_id_<id>``, parsed by Swift's own
    ``load_multikey_opts``: a malformed name (``key_id1``, ``key_id_``, ``key_idx``) refuses to
    start with Swift's message instead of being ignored (objects written under it would not read)."""
    from swift.common.utils import load_multikey_opts

    try:
        return [(opt, secret_id, str(value))
                for opt, secret_id, value in load_multikey_opts(conf, "key_id", allow_none_key=True)]
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}", "Name it key_id or key_id_<secret id>, e.g. key_id_2 "
                          "(the secret id is stored with every object it encrypts)") from None


def _key_refs(conf: Mapping[str, str], where: str) -> tuple[KeyRef, ...]:
    refs = []
    for option, secret_id, raw in key_options(conf, where):
        value = raw.strip()
        if not value:
            continue
        try:
            uuid.UUID(value)
        except ValueError:
            quote = "'"
            raise ConfigError(f"{where}: {option} = {shown(value, quote)} is not a Barbican secret id (a UUID)",
                              "Use the last part of the secret href from 'openstack secret list'") from None
        refs.append(KeyRef(secret_id, option, value))
    if not refs:
        raise ConfigError(f"{where}: no key_id is set", "Set key_id to the UUID of the root secret in "
                          "Barbican (create one with 'keytools swift new-key')")
    return tuple(refs)


def _check_active(keys: tuple[KeyRef, ...], active: str | None, where: str) -> None:
    """Swift's rule and message: the active secret id must be one that is configured."""
    if active in {k.secret_id for k in keys}:
        return
    missing = f"key_id_{active}" if active else "key_id"
    ids = ", ".join(k.secret_id for k in keys if k.secret_id)
    raise ConfigError(f"{where}: No secret loaded for active_root_secret_id {active}: there is no "
                      f"{missing}", f"Add {missing} = <uuid> or set active_root_secret_id to one "
                      f"of: {ids}" if ids else f"Add {missing} = <uuid>")


def parse(conf: Mapping[str, str]) -> KeymasterSettings:
    """Validate the keymaster configuration loudly; raises ConfigError naming file and option."""
    values, where = effective_conf(conf)
    keys = _key_refs(values, where)
    active = values.get("active_root_secret_id") or None
    _check_active(keys, active, where)
    meta_version = values.get("meta_version_to_write")
    if meta_version not in (None, "", *META_VERSIONS):
        raise ConfigError(f"{where}: meta_version_to_write = {shown(meta_version)}: Unknown/unsupported "
                          "metadata version", f"Use one of {', '.join(META_VERSIONS)} (Swift's "
                          "default is 2), or remove the option")
    api_class = (values.get("api_class") or "").strip()
    if api_class and "barbican" not in api_class.lower():
        raise ConfigError(f"{where}: api_class = {shown(api_class)}: this keymaster reads Barbican only",
                          "Remove api_class, or keep Swift's kms_keymaster for other key managers")
    auth_url = values.get("auth_endpoint") or values.get("auth_url")
    if not auth_url:
        raise ConfigError(f"{where}: auth_endpoint is not set", "Set it to the Keystone URL, e.g. "
                          "http://keystone:5000/v3")
    _url(where, "auth_endpoint", auth_url)
    _url(where, "barbican_endpoint", values.get("barbican_endpoint"))
    if values.get("application_credential_id") or values.get("application_credential_name"):
        auth_type = "v3applicationcredential"
        wanted = (*APP_CRED_OPTIONS, "username", "user_id", "user_domain_name", "user_domain_id")
        if not values.get("application_credential_secret"):
            raise ConfigError(f"{where}: application_credential_secret is not set",
                              "Set it with the application credential's id")
    else:
        auth_type = "password"
        wanted = PASSWORD_OPTIONS
        if not values.get("password") or not (values.get("username") or values.get("user_id")):
            raise ConfigError(f"{where}: username and password (or application_credential_id and "
                              "application_credential_secret) must be set",
                              "Use the Swift service user's credentials")
    auth_options = {k: str(values[k]) for k in wanted if values.get(k)}
    startup = (values.get("startup") or "strict").strip().lower()
    if startup not in STARTUP_MODES:
        raise ConfigError(f"{where}: startup = {shown(values.get('startup'))} is not one of "
                          f"{', '.join(STARTUP_MODES)}", "Use strict (refuse to start without keys) or "
                          "lazy (start, answer 503 until the keys are loaded)")
    verify: bool | str = not _true(values.get("insecure"))
    if verify and values.get("cafile"):
        verify = swiftconf.check_path(values["cafile"], f"{where}: cafile")
    return KeymasterSettings(
        where=where,
        auth_url=auth_url,
        auth_type=auth_type,
        auth_options=auth_options,
        keys=keys,
        active_secret_id=active,
        barbican_endpoint=values.get("barbican_endpoint") or None,
        barbican_region=values.get("barbican_region_name") or values.get("barbican_region") or None,
        barbican_interface=values.get("barbican_endpoint_type") or "public",
        verify=verify,
        timeout=_num(values, "barbican_timeout", 10.0, where, 0.1, MAX_SECONDS),
        startup=startup,
        startup_retries=int(_num(values, "startup_retries", 4, where, 0, MAX_RETRIES, integer=True)),
        startup_backoff=_num(values, "startup_backoff", 1.0, where, 0, MAX_SECONDS),
        startup_backoff_max=_num(values, "startup_backoff_max", 30.0, where, 0, MAX_SECONDS),
    )
