"""glance-api in the sandbox: keystone auth, Barbican as key manager, a file store in the state dir.

glance-api from PyPI runs only under a WSGI server (the stdlib one breaks on glanceclient's chunked
uploads); gunicorn loads ``application()`` below, which points Glance at its config directory
(``OS_GLANCE_CONFIG_DIR``, read by ``glance.common.wsgi_app``) before importing it. With all four
``img_signature*`` properties set, Glance verifies the signature while the store writes the data,
fetching the certificate from Barbican with the uploading user's token.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from keytools.fileutil import atomic_write, private_dir
from keytools.sandbox import configs
from keytools.sandbox.services import ServiceSpec, run_checked
from keytools.sandbox.state import SandboxConfig, StateDir

PASTE_INI = Path(sys.prefix) / "etc" / "glance" / "glance-api-paste.ini"


def _home(state: StateDir) -> Path:
    return state.path("glance")


def config_file(state: StateDir) -> Path:
    return _home(state) / "glance-api.conf"


def write_config(state: StateDir, cfg: SandboxConfig) -> None:
    home = private_dir(_home(state))
    images = private_dir(home / "images")
    staging = private_dir(home / "staging")
    conf = {
        "DEFAULT": {
            "debug": "false",
            "use_stderr": "true",
            "node_staging_uri": f"file://{staging}",
            "enabled_import_methods": "[]",
            "image_size_cap": 4 * 1024**3,
        },
        "database": {"connection": configs.db_url(state, cfg, "glance")},
        "paste_deploy": {"flavor": "keystone", "config_file": PASTE_INI},
        "keystone_authtoken": configs.authtoken_section(cfg, "glance"),
        "glance_store": {"stores": "file", "default_store": "file", "filesystem_store_datadir": images},
        # Upload-time signature verification: castellan's Barbican backend, with the caller's token.
        "key_manager": {"backend": "barbican"},
        "barbican": {"auth_endpoint": configs.keystone_url(cfg), "barbican_endpoint_type": "public"},
        "oslo_concurrency": {"lock_path": private_dir(home / "locks")},
        "oslo_policy": {"enforce_new_defaults": "true" if cfg.rbac == "new" else "false"},
    }
    atomic_write(config_file(state), configs.ini_text(conf), mode=0o600)


def db_sync(state: StateDir, cfg: SandboxConfig) -> None:
    """``glance-manage db_sync`` (alembic, about 2 s on SQLite); idempotent."""
    manage = Path(sys.executable).parent / "glance-manage"
    argv = [str(manage)] if manage.exists() else [sys.executable, "-m", "glance.cmd.manage"]
    run_checked([*argv, "--config-file", str(config_file(state)), "db_sync"], "glance-manage db_sync",
                log_path=str(state.path("logs", "glance-manage.log")))


def application() -> Any:
    """gunicorn's app factory: glance reads $OS_GLANCE_CONFIG_DIR/glance-api.conf at import."""
    os.environ["OS_GLANCE_CONFIG_DIR"] = str(Path(os.environ["KEYTOOLS_SANDBOX_DIR"]) / "glance")
    sys.argv = ["glance-api"]
    from glance.wsgi import api

    return api.application


SPEC = ServiceSpec(
    name="glance",
    configure=write_config,
    initialise=db_sync,
    wsgi_app="keytools.sandbox.glance:application()",
    health_path="/healthcheck",
    catalog=("glance", "image"),
    needs=("glance",),
)
