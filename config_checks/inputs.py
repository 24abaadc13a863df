"""Find and parse the services' config files in TripleO trees, plain /etc trees, or one tree per node.

The service files live at fixed places (TripleO keeps the real files under
/var/lib/config-data/puppet-generated/<service>/etc/...). A file that cannot be read becomes an
``unreadable`` entry (reported by rule KT001, exit 2), never an exception: one bad file on one node
must not hide the findings of the others.
"""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from config_checks import secrets
from config_checks.base import Location
from keytools import oslo_ini
from keytools.errors import UsageError
from keytools.fileutil import MAX_CONFIG, open_user_file
from keytools.oslo_ini import OsloConfig, Setting

PUPPET_GENERATED = "var/lib/config-data/puppet-generated"
DEFAULT_ROOT = "/" + PUPPET_GENERATED

# service label -> file relative to the tree, per layout. Order is the report order.
TRIPLEO_FILES: tuple[tuple[str, str], ...] = (
    ("cinder", "cinder/etc/cinder/cinder.conf"),
    ("nova", "nova/etc/nova/nova.conf"),
    ("nova_libvirt", "nova_libvirt/etc/nova/nova.conf"),
    ("nova_compute", "nova_compute/etc/nova/nova.conf"),
    ("nova_metadata", "nova_metadata/etc/nova/nova.conf"),
    ("glance_api", "glance_api/etc/glance/glance-api.conf"),
    ("swift_proxy", "swift/etc/swift/proxy-server.conf"),
    ("swift_keymaster", "swift/etc/swift/keymaster.conf"),
    ("barbican", "barbican/etc/barbican/barbican.conf"),
)
ETC_FILES: tuple[tuple[str, str], ...] = (
    ("cinder", "cinder/cinder.conf"),
    ("nova", "nova/nova.conf"),
    ("glance_api", "glance/glance-api.conf"),
    ("swift_proxy", "swift/proxy-server.conf"),
    ("swift_keymaster", "swift/keymaster.conf"),
    ("barbican", "barbican/barbican.conf"),
)
LAYOUTS = {"tripleo": TRIPLEO_FILES, "etc": ETC_FILES}

NOVA_SERVICES = ("nova", "nova_libvirt", "nova_compute", "nova_metadata")
KEY_MANAGER_CONSUMERS = ("cinder", *NOVA_SERVICES, "glance_api")
_SKIP_IN_NODE_NAME = {"puppet-generated", "config-data", "lib", "var", "etc", ""}


@dataclass
class ServiceConfig:
    """One service's effective configuration on one node (main file plus its .conf.d files)."""

    node: str
    service: str
    layout: str
    path: Path
    tree: Path
    conf: OsloConfig | None = None
    files: list[Path] = field(default_factory=list)
    unreadable: list[tuple[Path, str]] = field(default_factory=list)
    # file -> ["[section] option", ...] holding a secret (filled while loading, for the permission rules)
    secret_options: dict[str, list[str]] = field(default_factory=dict)

    def rel(self, path: str | os.PathLike[str]) -> str:
        text, prefix = str(path), str(self.tree) + os.sep
        return text[len(prefix):] if text.startswith(prefix) else text

    def loc(self, setting: Setting | None = None, *, path: str | os.PathLike[str] | None = None,
            line: int | None = None, section: str | None = None, option: str | None = None) -> Location:
        if setting is not None:
            return Location(self.node, setting.path, self.rel(setting.path), setting.line,
                            setting.section, setting.option)
        p = str(path or self.path)
        return Location(self.node, p, self.rel(p), line, section, option)

    def get(self, section: str, option: str, default: str | None = None) -> str | None:
        return self.conf.get(section, option, default) if self.conf else default

    def setting(self, section: str, option: str) -> Setting | None:
        return self.conf.setting(section, option) if self.conf else None

    @property
    def is_compute(self) -> bool:
        """nova-compute reads this file (it verifies image signatures and uses libvirt)."""
        if self.service in ("nova_libvirt", "nova_compute"):
            return True
        return self.service == "nova" and self.layout == "etc" and self.conf is not None and (
            self.conf.has_section("libvirt") or self.conf.get("DEFAULT", "compute_driver") is not None)


@dataclass
class Node:
    name: str
    root: Path
    tree: Path
    layout: str
    configs: list[ServiceConfig] = field(default_factory=list)


@dataclass
class AuditInput:
    nodes: list[Node]
    stats: dict[str, os.stat_result] = field(default_factory=dict)

    def configs(self, *services: str) -> Iterator[ServiceConfig]:
        for node in self.nodes:
            for cfg in node.configs:
                if not services or cfg.service in services:
                    yield cfg

    @property
    def files_checked(self) -> int:
        return sum(len(c.files) + len(c.unreadable) for c in self.configs())


def detect_tree(root: Path) -> tuple[Path, str] | None:
    """The config tree under ``root`` and its layout, or None when no known file is there."""
    for tree, layout in ((root / PUPPET_GENERATED, "tripleo"), (root, "tripleo"),
                         (root / "etc", "etc"), (root, "etc")):
        if any(os.path.lexists(tree / rel) for _, rel in LAYOUTS[layout]):
            return tree, layout
    return None


def node_name(root: Path) -> str:
    """``/collected/ctl-0/var/lib/config-data/puppet-generated`` -> ``ctl-0``; this host for
    the default root."""
    parts = Path(os.path.abspath(root)).parts
    for part in reversed(parts):
        if part not in _SKIP_IN_NODE_NAME and part != "/":
            return part
    return socket.gethostname()


def read_config(path: Path) -> tuple[OsloConfig | None, os.stat_result | None, str | None]:
    """Parse one file; returns (config, stat, None) or (None, stat|None, reason it is unreadable)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None, None, "broken symlink" if os.path.islink(path) else "no such file"
    except OSError as exc:
        return None, None, f"cannot stat ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return None, st, "not a regular file"
    try:  # never blocks (a FIFO swapped in after the stat), never reads more than a config holds
        with open_user_file(path, "", None, path_first=True) as handle:
            data = handle.read(MAX_CONFIG + 1)
    except UsageError as exc:
        return None, st, exc.message.replace(f"{path}: ", "").replace(f"{path} ", "")
    except OSError as exc:
        return None, st, f"cannot read ({exc.strerror})"
    if len(data) > MAX_CONFIG:
        return None, st, "larger than 4 MiB, more than a config file holds"
    if b"\x00" in data:
        return None, st, "binary data, not a text config file"
    return oslo_ini.parse_text(oslo_ini.decode(data), str(path)), st, None


def load_service(node: str, service: str, layout: str, tree: Path, path: Path,
                 stats: dict[str, os.stat_result]) -> ServiceConfig:
    """Main file then ``<file>.d/*.conf`` in name order (later files win, as with --config-dir)."""
    cfg = ServiceConfig(node, service, layout, path, tree)
    conf_d = Path(f"{path}.d")
    try:
        extra = sorted(conf_d.glob("*.conf")) if conf_d.is_dir() else []
    except OSError as exc:
        extra = []
        cfg.unreadable.append((conf_d, f"cannot list ({exc.strerror})"))
    for file in (path, *extra):
        conf, st, reason = read_config(file)
        if st is not None:
            stats[str(file)] = st
        if conf is None:
            cfg.unreadable.append((file, reason or "unreadable"))
            continue
        cfg.files.append(file)
        for (section, option), settings in conf.multi.items():
            for s in settings:
                if s.value and secrets.holds_secret(option, s.value):
                    names = cfg.secret_options.setdefault(s.path, [])
                    if f"[{section}] {option}" not in names:
                        names.append(f"[{section}] {option}")
        if cfg.conf is None:
            cfg.conf = conf
        else:
            cfg.conf.merge(conf)
    return cfg


def _node_dirs(root: Path) -> list[Path]:
    try:
        return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError as exc:
        raise UsageError(f"{root}: cannot list ({exc.strerror})", "Run the audit as a user who can read the tree") \
            from None


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError as exc:
        raise UsageError(f"{path}: cannot access ({exc.strerror})", "Run the audit as a user who can read the tree") \
            from None


def discover(roots: Sequence[str | os.PathLike[str]], per_node: bool = False, node: str | None = None) -> AuditInput:
    """Build the audit input for ``roots``; UsageError (exit 2) when a root holds nothing to audit.
    ``node`` names a single tree's node (Ansible passes inventory_hostname) instead of its path."""
    audit = AuditInput(nodes=[])
    seen: set[str] = set()
    for given in roots:
        root = Path(given)
        if not _is_dir(root):
            raise UsageError(f"{root}: not a directory",
                             "Give a TripleO config tree (/var/lib/config-data/puppet-generated), an /etc "
                             "tree, or a directory with one tree per node and --per-node")
        candidates = [(p.name, p) for p in _node_dirs(root)] if per_node else [(node or node_name(root), root)]
        found = False
        for name, node_root in candidates:
            detected = detect_tree(node_root)
            if detected is None:
                continue
            found = True
            tree, layout = detected
            if name in seen:
                name = str(node_root)
            seen.add(name)
            found_node = Node(name, node_root, tree, layout)
            for service, rel in LAYOUTS[layout]:
                path = tree / rel
                if os.path.lexists(path):
                    found_node.configs.append(load_service(name, service, layout, tree, path, audit.stats))
            audit.nodes.append(found_node)
        if not found:
            hint = ("Use --per-node when the directory holds one tree per node"
                    if not per_node and any(detect_tree(p) for p in _node_dirs(root))
                    else "Point at /var/lib/config-data/puppet-generated, /etc, or a copy of them")
            raise UsageError(f"{root}: no OpenStack service config files found", hint)
    return audit
