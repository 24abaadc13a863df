"""The fleet tests' trees, fleet and playbook runs (used by tests/fleet, the benchmark and the demo).

``NodeTrees`` writes one realistic TripleO tree per node (tests/config_checks/cc_treegen: every
node the same fixed_key unless told otherwise) and can put a host's directory back as it was
between tests, so one running fleet serves every test of a module.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tests.config_checks.cc_treegen import NodeSpec, Tree, build
from tests.helpers.netns_fleet import Fleet
from tests.helpers.paths import REPO

PG = "var/lib/config-data/puppet-generated"
BACKUPS = "keytools-backups"
RECAP = re.compile(r"^(\S+)\s+: ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def role(name: str) -> str:
    return "controller" if name.endswith("1") and not name.endswith("11") else "compute"


@dataclass
class NodeTrees:
    """One generated tree per node under ``base`` (``base/<node>/var/lib/...``)."""

    base: Path
    names: list[str]
    tree: Tree = field(init=False)
    odd: Tree | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.tree = build(self.base / "shared", [NodeSpec(n, role(n), {"fixed_key"}) for n in self.names])

    @property
    def secrets(self) -> list[str]:
        return self.tree.secrets + (self.odd.secrets if self.odd else [])

    def populate(self, name: str, target: Path) -> None:
        """Fill (or put back) a host's directory with its tree, and nothing else."""
        for child in list(target.iterdir()) if target.exists() else []:
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
        shutil.copytree(self.tree.base / name, target, dirs_exist_ok=True, symlinks=True)

    def give_other_fixed_key(self, name: str, target: Path) -> None:
        """``name`` gets a tree with another fixed_key (a node that does not agree)."""
        self.odd = build(self.base / f"odd-{name}", [NodeSpec(name, role(name), {"fixed_key"})])
        for child in list(target.iterdir()):
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        shutil.copytree(self.odd.base / name, target, dirs_exist_ok=True, symlinks=True)


def start_fleet(base: Path, count: int, **extra: str) -> tuple[Fleet, NodeTrees]:
    names = [f"node{i + 1}" for i in range(count)]
    trees = NodeTrees(base, names)
    fleet = Fleet(count, populate=trees.populate, names=names)
    fleet.start(extra_vars={"keytools_python": sys.executable, **extra})
    return fleet, trees


def recap(stdout: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP per host: ok, changed, unreachable, failed."""
    return {m.group(1): {"ok": int(m.group(2)), "changed": int(m.group(3)), "unreachable": int(m.group(4)),
                         "failed": int(m.group(5))} for m in RECAP.finditer(stdout)}


def conf_files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted((root / PG).rglob("*.conf"))}


def backups(root: Path) -> list[Path]:
    d = root / BACKUPS
    return sorted(d.glob("*.json")) if d.is_dir() else []


def ansible_env(tmp: Path) -> dict[str, str]:
    """Environment for ansible(-playbook) with ``ansible_connection=local``: the collection from the
    checkout, keytools from the checkout, Ansible's own state under ``tmp``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "OS_"))}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(REPO), ANSIBLE_LOCALHOST_WARNING="0", ANSIBLE_NOCOLOR="1",
               ANSIBLE_INVENTORY_UNPARSED_WARNING="0", ANSIBLE_HOME=str(tmp / "ansible-home"),
               ANSIBLE_LOCAL_TEMP=str(tmp / "ansible-tmp"), PYTHONPATH=str(REPO))
    return env


PACKAGES = ("keytools/", "migrate/", "sign/", "verify/", "swift_middleware/", "config_checks/")


def build_wheel(tmp: Path) -> Path | None:
    """keytools' wheel from the checkout's files (pip wheel with build isolation, as an operator
    would build it); None when no package index can be reached for the build backend."""
    import subprocess

    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], capture_output=True, text=True,
                            cwd=REPO, check=True).stdout.splitlines()
    src = tmp / "src"
    for rel in listed:
        if rel in ("pyproject.toml", "README.md") or rel.startswith(PACKAGES):
            target = src / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, target)
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp / "dist"), str(src)],
                         capture_output=True, text=True, timeout=600)
    wheels = sorted((tmp / "dist").glob("keytools-*.whl"))
    return wheels[0] if res.returncode == 0 and wheels else None
