"""The sandbox's state directory: one JSON file (0600) records ports, passwords and what runs.

Layout::

    sandbox.json      ports, db mode, rbac mode, generated passwords (0600)
    clouds.yaml       one cloud per user, for --os-cloud (0600)
    keystone/         keystone.conf, keystone.db, fernet-keys/, credential-keys/
    barbican/         HOME of the barbican process: .barbican/barbican.conf (holds the KEK)
    mariadb/          data dir and socket when --db mariadb
    hsm/              --with hsm: softhsm2.conf and the private SoftHSM2 token dir (tokens/)
    logs/             one log file per server
    run/              one pid file per server process
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from keytools.errors import ConfigError
from keytools.fileutil import atomic_write, private_dir

STATE_FILE = "sandbox.json"


def default_state_dir() -> Path:
    return Path(platformdirs.user_data_dir("keytools")) / "sandbox"


@dataclass
class SandboxConfig:
    """What ``up`` decided once; later ``up`` runs reuse it so URLs and passwords stay stable."""

    ports: dict[str, int] = field(default_factory=dict)
    passwords: dict[str, str] = field(default_factory=dict)
    db: str = "sqlite"
    rbac: str = "legacy"
    barbican_workers: int = 1
    services: list[str] = field(default_factory=lambda: ["keystone", "barbican"])
    initialized: list[str] = field(default_factory=list)  # setup steps completed (resumable)
    extra: dict[str, Any] = field(default_factory=dict)


class StateDir:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).expanduser().resolve()

    def path(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    def ensure(self) -> None:
        private_dir(self.root)
        for sub in ("logs", "run"):
            private_dir(self.path(sub))

    @property
    def config_file(self) -> Path:
        return self.path(STATE_FILE)

    def exists(self) -> bool:
        return self.config_file.exists()

    def load(self) -> SandboxConfig:
        try:
            raw = json.loads(self.config_file.read_text())
        except FileNotFoundError:
            return SandboxConfig()
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{self.config_file}: unreadable sandbox state ({exc})",
                              f"Run 'keytools sandbox down --purge --state-dir {self.root}' "
                              "and 'sandbox up' again") from None
        known = {k: v for k, v in raw.items() if k in SandboxConfig.__dataclass_fields__}
        return SandboxConfig(**known)

    def save(self, config: SandboxConfig) -> None:
        self.ensure()
        atomic_write(self.config_file, json.dumps(asdict(config), indent=2) + "\n", mode=0o600)

    @property
    def clouds_yaml(self) -> Path:
        return self.path("clouds.yaml")
