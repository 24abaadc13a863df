"""Key-manager access for every feature: castellan's interface, on one reused session.

castellan's ``BarbicanKeyManager`` builds a new keystoneauth session (and authenticates again) on
every call when handed credentials, about 2 secrets/s. ``SessionBarbicanKeyManager`` changes only
that seam: it serves castellan's whole interface from a client built once on our session. Features
program against ``castellan.key_manager.key_manager.KeyManager`` so other castellan backends (Vault,
a test backend) plug in through ``key_manager_from_config``.
"""

from __future__ import annotations

from typing import Any

from barbicanclient import client as barbican_client_mod
from castellan.common.credentials import token as castellan_token
from castellan.key_manager import barbican_key_manager
from castellan.key_manager.key_manager import KeyManager
from keystoneauth1 import session as ks_session
from oslo_config import cfg

from keytools.errors import ConfigError

# castellan refuses a falsy context before it asks for a client; ours needs none.
SESSION_CONTEXT = castellan_token.Token(token="session")


def barbican_endpoint(session: ks_session.Session, interface: str = "public",
                      region: str | None = None) -> str:
    """The key-manager endpoint from the catalog (raises keystoneauth's EndpointNotFound)."""
    from keystoneauth1 import exceptions as ksa_exc

    url = session.get_endpoint(service_type="key-manager", interface=interface, region_name=region)
    if not url:
        raise ksa_exc.EndpointNotFound("key-manager")
    return url.rstrip("/")


def barbican_client(session: ks_session.Session, endpoint: str | None = None,
                    interface: str = "public", region: str | None = None) -> Any:
    """python-barbicanclient on ``session`` (as cinder does), endpoint from the catalog."""
    return barbican_client_mod.Client(
        session=session,
        endpoint=endpoint or barbican_endpoint(session, interface, region),
        version="v1",
    )


class SessionBarbicanKeyManager(barbican_key_manager.BarbicanKeyManager):
    """castellan's Barbican key manager whose client is built once from a keystoneauth session."""

    def __init__(self, session: ks_session.Session, endpoint: str | None = None,
                 configuration: cfg.ConfigOpts | None = None) -> None:
        super().__init__(configuration or cfg.ConfigOpts())
        self._session = session
        self._endpoint = endpoint
        self._client: Any = None

    def _get_barbican_client(self, context: Any) -> Any:  # noqa: ARG002 - the seam castellan calls
        if self._client is None:
            self._client = barbican_client(self._session, self._endpoint)
        return self._client

    @property
    def client(self) -> Any:
        """The underlying barbicanclient, for calls castellan does not expose (ACLs, orders)."""
        return self._get_barbican_client(SESSION_CONTEXT)


def key_manager_for_session(session: ks_session.Session, endpoint: str | None = None) -> SessionBarbicanKeyManager:
    return SessionBarbicanKeyManager(session, endpoint)


def key_manager_from_config(config_file: str) -> KeyManager:
    """Any castellan backend, configured as a service configures it (``[key_manager] backend``)."""
    from castellan import key_manager as castellan_km

    conf = cfg.ConfigOpts()
    try:
        conf(args=[], default_config_files=[config_file])
        return castellan_km.API(conf)
    except Exception as exc:
        raise ConfigError(f"{config_file}: cannot load the key manager: {exc}",
                          "Check [key_manager] backend") from None
