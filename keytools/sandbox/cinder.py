"""A real cinder-api (Cinder from PyPI) in the sandbox: Keystone auth, Barbican as key manager.

Only the API runs: no scheduler or volume service. With ``transport_url = fake://`` a volume
create is accepted, its key is created in Barbican with the user's token (for an encrypted type),
and the volume stays ``creating`` because nothing consumes the RPC cast. That is enough for volume
types, their encryption specs and "type in use" checks, without faking a backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from keytools.fileutil import atomic_write, private_dir
from keytools.sandbox import configs
from keytools.sandbox.services import ServiceSpec
from keytools.sandbox.state import SandboxConfig, StateDir

CONF_NAME = "cinder.conf"


def api_paste_ini() -> Path:
    """The api-paste.ini the cinder wheel installs under ``<prefix>/etc/cinder``."""
    return Path(sys.prefix) / "etc" / "cinder" / "api-paste.ini"


def write_cinder(state: StateDir, cfg: SandboxConfig) -> None:
    home = private_dir(state.path("cinder"))
    conf = {
        "DEFAULT": {
            "auth_strategy": "keystone",
            "transport_url": "fake://",
            "api_paste_config": api_paste_ini(),
            "state_path": home,
            "my_ip": configs.LOOPBACK,
            "osapi_volume_listen": configs.LOOPBACK,
            "debug": "false",
            "use_stderr": "true",
            # No cinder-volume registers an availability zone: fall back to the default one
            # instead of refusing every volume create.
            "allow_availability_zone_fallback": "true",
        },
        "database": {"connection": configs.db_url(state, cfg, "cinder")},
        "keystone_authtoken": configs.authtoken_section(cfg, "cinder"),
        "key_manager": {"backend": "barbican"},
        # castellan authenticates to Barbican with the user's token against this Keystone.
        "barbican": {"auth_endpoint": configs.keystone_url(cfg), "barbican_endpoint_type": "public"},
        "oslo_concurrency": {"lock_path": home / "lock"},
        "coordination": {"backend_url": f"file://{home / 'coordination'}"},
    }
    atomic_write(home / CONF_NAME, configs.ini_text(conf), mode=0o600)


def _initialise(state: StateDir, cfg: SandboxConfig) -> None:
    from keytools.cinder_db import sync_schema

    sync_schema(configs.db_url(state, cfg, "cinder"))


def app():  # noqa: ANN201 - a WSGI callable
    """gunicorn factory: cinder's own WSGI initialisation, pointed at the state dir's config."""
    conf = Path(os.environ["KEYTOOLS_SANDBOX_DIR"]) / "cinder" / CONF_NAME
    sys.argv = ["cinder-api", "--config-file", str(conf)]
    from cinder.wsgi import wsgi

    return wsgi.initialize_application()


SPEC = ServiceSpec(
    name="cinder",
    configure=write_cinder,
    initialise=_initialise,
    wsgi_app="keytools.sandbox.cinder:app()",
    health_path="/",
    catalog=("cinderv3", "volumev3"),
    # Keystone fills in the project id in each token's catalog, as in a real deployment.
    catalog_path="/v3/%(project_id)s",
    needs=("cinder",),
)
