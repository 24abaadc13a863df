"""Swift's key ids: the root secrets named in proxy configs (``--swift-proxy-config``, repeatable).

The keymaster filter of the proxy pipeline (Swift's ``kms_keymaster`` or keytools' keymaster, same
option names) lists its Barbican secrets as ``key_id`` / ``key_id_<secret id>``, in its own section
or in the separate ``keymaster_config_path`` file's ``[kms_keymaster]`` section. Read with Swift's
own ``readconf`` and ``load_multikey_opts``. The proxy reads them at start-up with the service
account the same options name (``username``/``user_id`` in ``project_name``/``project_id``): that is
the read path. Objects keep naming the secret they were written with, so every configured key is
referenced, not only the active one. (A small reader in the core: ``swift_middleware`` is a feature
package the core may not import.)
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from keytools.errors import ConfigError
from keytools.key_refs.model import READ_SERVICE, KeyRef, ReadPath

KEYMASTERS = ("egg:swift#kms_keymaster", "egg:keytools#keymaster", "swift_middleware.keymaster:filter_factory")
SECTION = "kms_keymaster"


def _readconf(path: str, section: str | None = None) -> dict:
    from swift.common.utils import readconf

    try:
        return readconf(path, section)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--swift-proxy-config {path}: cannot read: {' '.join(str(exc).split())}",
                          "Give the proxy-server.conf path") from None
    except Exception as exc:  # noqa: BLE001 - configparser's duplicate/interpolation errors
        raise ConfigError(f"--swift-proxy-config {path}: not a valid config file: {' '.join(str(exc).split())}",
                          "Fix the syntax") from None


def keymaster_options(path: str) -> list[dict[str, str]]:
    """The effective options of every Barbican keymaster filter in ``path``'s pipeline."""
    sections = _readconf(path)
    pipeline = (sections.get("pipeline:main") or {}).get("pipeline", "").split()
    if not pipeline:
        raise ConfigError(f"--swift-proxy-config {path}: no [pipeline:main] pipeline", "Is this a proxy-server.conf?")
    out = []
    for name in pipeline:
        conf = dict(sections.get(f"filter:{name}") or {})
        if (conf.get("use") or conf.get("paste.filter_factory") or "").strip() not in KEYMASTERS:
            continue
        if conf.get("keymaster_config_path"):
            conf.update(_readconf(conf["keymaster_config_path"], SECTION))
        out.append(conf)
    return out


def root_secret_ids(conf: dict[str, str], path: str) -> list[tuple[str, str]]:
    """``(option, Barbican id)`` of every ``key_id*`` option (Swift's parser refuses malformed names)."""
    from swift.common.utils import load_multikey_opts

    try:
        return [(opt, str(value)) for opt, _sid, value in load_multikey_opts(conf, "key_id", allow_none_key=True)
                if value]
    except ValueError as exc:
        raise ConfigError(f"--swift-proxy-config {path}: {exc}", "Name it key_id or key_id_<secret id>") from None


class SwiftKeySource:
    service = "swift"

    def __init__(self, proxy_configs: Sequence[str]) -> None:
        self.paths = list(proxy_configs)

    def describe(self) -> str:
        return ", ".join(self.paths)

    def dispose(self) -> None:
        return None

    def scan(self, only: frozenset[str] | None = None) -> Iterator[KeyRef]:
        found = []
        for path in self.paths:  # read every file before yielding: a bad one makes Swift NOT SEEN
            for conf in keymaster_options(path):
                user = conf.get("user_id") or conf.get("username")
                project = conf.get("project_id") or conf.get("project_name")
                read = ReadPath(READ_SERVICE, user, project, by_name=not conf.get("user_id"))
                found.extend(KeyRef("swift", "swift_root", f"{path}:{opt}", key_id, opt, path, project, user, read)
                             for opt, key_id in root_secret_ids(conf, path))
        yield from found
