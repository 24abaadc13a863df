"""Keystone sessions built the way the ``openstack`` CLI builds them.

Sources, in the order operators expect: ``--os-cloud`` (clouds.yaml, ``OS_CLIENT_CONFIG_FILE``),
``OS_*`` environment variables, or a service's own oslo config section (cinder.conf
``[keystone_authtoken]``) so a tool can act with exactly the service's credentials.
One session is built per run and reused: every call through it shares one token.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from typing import TYPE_CHECKING

from keytools import oslo_ini, redaction
from keytools.errors import ConfigError

if TYPE_CHECKING:  # keystoneauth (and osprofiler behind it) costs ~0.4 s: import only when used
    from keystoneauth1 import session as ks_session

# Options of a keystoneauth password plugin as they appear in [keystone_authtoken] and friends.
_PASSWORD_OPTIONS = ("auth_url", "username", "password", "user_id", "project_name", "project_id",
                     "user_domain_name", "user_domain_id", "project_domain_name",
                     "project_domain_id", "system_scope")
_APP_CRED_OPTIONS = ("auth_url", "application_credential_id", "application_credential_secret",
                     "application_credential_name", "username", "user_domain_name", "user_id")


@dataclass(frozen=True)
class AuthSource:
    """Where credentials come from; exactly one of the fields is used (cloud/env first)."""

    cloud: str | None = None
    config_file: str | None = None
    config_section: str = "keystone_authtoken"
    insecure: bool = False

    def describe(self) -> str:
        if self.config_file:
            return f"{self.config_file} [{self.config_section}]"
        if self.cloud:
            return f"cloud '{self.cloud}'"
        return "OS_* environment"


def session_from_cloud(cloud: str | None = None) -> ks_session.Session:
    """A session for ``cloud`` from clouds.yaml, or from ``OS_*`` variables when ``cloud`` is None."""
    import openstack.config
    from openstack import exceptions as sdk_exc

    if cloud is None and not any(k.startswith("OS_AUTH") or k == "OS_CLOUD" for k in os.environ):
        raise ConfigError("no credentials given",
                          "Use --os-cloud NAME (clouds.yaml), OS_* environment variables, "
                          "or --auth-config-file with a [keystone_authtoken] section")
    try:
        region = openstack.config.OpenStackConfig().get_one(cloud=cloud)
    except (sdk_exc.ConfigException, KeyError) as exc:
        where = os.environ.get("OS_CLIENT_CONFIG_FILE", "clouds.yaml")
        raise ConfigError(f"cloud {cloud!r} not usable from {where}: {exc}",
                          "Check the name with 'openstack --os-cloud NAME token issue' "
                          "or set OS_CLIENT_CONFIG_FILE") from None
    password = region.auth.get("password") if region.auth else None
    redaction.register_secret(password)
    redaction.register_secret(region.auth.get("application_credential_secret") if region.auth else None)
    return region.get_session()


def session_from_oslo_config(path: str, section: str = "keystone_authtoken",
                             insecure: bool = False) -> ks_session.Session:
    """A session from a service config section, e.g. cinder.conf ``[keystone_authtoken]``."""
    conf = oslo_ini.parse_file(path)
    if not conf.has_section(section):
        raise ConfigError(f"{path}: no [{section}] section with service credentials",
                          f"Add auth_url, username, password and project_name to [{section}]")
    options = conf.sections[oslo_ini.normalize_section(section)]
    values = {k: s.value for k, s in options.items()}
    auth_type = values.get("auth_type") or values.get("auth_plugin") or "password"
    if not values.get("auth_url"):
        raise ConfigError(f"{path}: [{section}] auth_url is not set", "Set it to the Keystone URL")
    if auth_type == "v3applicationcredential":
        wanted = _APP_CRED_OPTIONS
        redaction.register_secret(values.get("application_credential_secret"))
    elif auth_type in ("password", "v3password"):
        wanted = _PASSWORD_OPTIONS
        redaction.register_secret(values.get("password"))
    else:
        raise ConfigError(f"{path}: [{section}] auth_type {auth_type!r} is not supported",
                          "Use auth_type = password or v3applicationcredential")
    kwargs = {k: values[k] for k in wanted if values.get(k)}
    from keystoneauth1 import loading
    from keystoneauth1 import session as ks_session

    try:
        plugin = loading.get_plugin_loader(auth_type).load_from_options(**kwargs)
    except Exception as exc:  # keystoneauth's MissingRequiredOptions and friends
        raise ConfigError(f"{path}: [{section}] incomplete credentials: {exc}",
                          "Set username, password, project_name and the domain names") from None
    verify: bool | str = not insecure
    cafile = values.get("cafile")
    if cafile and not insecure:
        verify = cafile
    return ks_session.Session(auth=plugin, verify=verify)


def make_session(source: AuthSource) -> ks_session.Session:
    if source.config_file and not source.cloud:
        return session_from_oslo_config(source.config_file, source.config_section, source.insecure)
    return session_from_cloud(source.cloud)
