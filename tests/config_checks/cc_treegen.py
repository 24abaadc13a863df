"""Generate realistic puppet-generated config trees (controllers and computes) for audit tests.

``build(base, [NodeSpec("ctl-0", "controller"), NodeSpec("cmp-0", "compute", {"rbd"})])`` writes
<base>/<node>/var/lib/config-data/puppet-generated/... with the files TripleO renders, clean by
default; each name in ``problems`` injects one misconfiguration (see PROBLEMS). All secrets are
random per tree and listed in ``Tree.secrets`` so tests can assert they never appear in output.
"""

from __future__ import annotations

import base64
import os
import secrets as pysecrets
from dataclasses import dataclass, field
from pathlib import Path

PG = "var/lib/config-data/puppet-generated"
SAMPLE_KEK = "dGhpcnR5X3R3b19ieXRlX2tleWJsYWhibGFoYmxhaGg="

# problem name -> rule id it should trigger
PROBLEMS = {
    "fixed_key": "KT101",
    "fixed_key_keymgr": "KT101",
    "fixed_key_mismatch": "KT103",
    "conf_key_manager": "KT102",
    "removed_options": "KT104",
    "verify_ssl_off": "KT105",
    "endpoint_mismatch": "KT106",
    "auth_endpoint_missing": "KT107",
    "plain_http": "KT108",
    "no_signature_verification": "KT201",
    "rbd": "KT202",
    "swift_no_encryption": "KT301",
    "swift_bad_order": "KT302",
    "swift_disable_encryption": "KT303",
    "swift_inline_secret": "KT304",
    "swift_weak_secret": "KT305",
    "kek_missing": "KT401",
    "kek_sample": "KT402",
    "kek_world_readable": "KT403",
    "world_readable": "KT501",
}


@dataclass
class NodeSpec:
    name: str
    role: str = "controller"  # controller | compute
    problems: set[str] = field(default_factory=set)


@dataclass
class Tree:
    base: Path
    fixed_key: str
    secrets: list[str]
    files: list[Path] = field(default_factory=list)

    def node_root(self, node: str) -> Path:
        return self.base / node

    def pg(self, node: str) -> Path:
        return self.base / node / PG


def _write(tree: Tree, path: Path, text: str, mode: int = 0o640) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.chmod(path, mode)
    tree.files.append(path)
    return path


def _secret(tree: Tree, value: str | None = None) -> str:
    value = value or pysecrets.token_hex(12)
    tree.secrets.append(value)
    return value


def _authtoken(tree: Tree, user: str) -> str:
    return f"""[keystone_authtoken]
www_authenticate_uri=https://overcloud.example.com:5000
auth_url=https://overcloud.internalapi.example.com:5000
auth_type=password
username={user}
password={_secret(tree)}
user_domain_name=Default
project_name=service
project_domain_name=Default
interface=internal
"""


def _key_manager(tree: Tree, node: NodeSpec, service: str, fixed_key: str | None) -> str:
    p = node.problems
    backend = "cinder.keymgr.conf_key_mgr.ConfKeyManager" if ("conf_key_manager" in p and service == "cinder") \
        else "castellan.key_manager.barbican_key_manager.BarbicanKeyManager"
    text = f"\n[key_manager]\nbackend={backend}\n"
    if fixed_key and "fixed_key_keymgr" not in p:
        text += f"fixed_key={fixed_key}\n"
    endpoint = "https://overcloud.internalapi.example.com:9311"
    if "endpoint_mismatch" in p and service.startswith("nova"):
        endpoint = "https://barbican-old.example.com:9311"
    if "plain_http" in p:
        endpoint = "http://overcloud.internalapi.example.com:9311"
    text += f"\n[barbican]\nbarbican_endpoint={endpoint}\n"
    if "auth_endpoint_missing" not in p:
        text += "auth_endpoint=https://overcloud.example.com:5000/v3\n"
    text += "barbican_endpoint_type=internal\n"
    if "verify_ssl_off" in p:
        text += "verify_ssl=false\n"
    if fixed_key and "fixed_key_keymgr" in p:
        text += f"\n[keymgr]\nfixed_key={fixed_key}\n"
    if "removed_options" in p:
        text += ("\n[keymgr]\napi_class=castellan.key_manager.barbican_key_manager.BarbicanKeyManager\n"
                 "encryption_api_url=https://overcloud.internalapi.example.com:9311/v1\n")
    return text


def _fixed_key_for(tree: Tree, node: NodeSpec, service: str) -> str | None:
    p = node.problems
    if not ({"fixed_key", "fixed_key_keymgr", "fixed_key_mismatch"} & p):
        return None
    if "fixed_key_mismatch" in p and service.startswith("nova"):
        return _secret(tree, pysecrets.token_hex(32))
    return tree.fixed_key


def _cinder(tree: Tree, node: NodeSpec) -> None:
    db_pw = _secret(tree)
    text = f"""[DEFAULT]
enabled_backends=tripleo_ceph
host=hostgroup
storage_availability_zone=nova
transport_url=rabbit://guest:{_secret(tree)}@{node.name}.internalapi.example.com:5672/?ssl=0
debug=False

[database]
connection=mysql+pymysql://cinder:{db_pw}@overcloud.internalapi.example.com/cinder?read_default_group=tripleo

{_authtoken(tree, "cinder")}
[tripleo_ceph]
volume_backend_name=tripleo_ceph
volume_driver=cinder.volume.drivers.rbd.RBDDriver
rbd_pool=volumes
rbd_user=openstack
"""
    text += _key_manager(tree, node, "cinder", _fixed_key_for(tree, node, "cinder"))
    mode = 0o644 if "world_readable" in node.problems else 0o640
    _write(tree, tree.pg(node.name) / "cinder/etc/cinder/cinder.conf", text, mode)


def _nova(tree: Tree, node: NodeSpec, service: str) -> None:
    text = f"""[DEFAULT]
my_ip=192.0.2.{10 + len(tree.files) % 200}
host={node.name}.example.com
transport_url=rabbit://guest:{_secret(tree)}@{node.name}.internalapi.example.com:5672/?ssl=0
compute_driver=libvirt.LibvirtDriver

[api_database]
connection=mysql+pymysql://nova_api:{_secret(tree)}@overcloud.internalapi.example.com/nova_api

{_authtoken(tree, "nova")}
[glance]
verify_glance_signatures={"False" if "no_signature_verification" in node.problems else "True"}
enable_certificate_validation=True

[libvirt]
virt_type=kvm
images_type={"rbd" if "rbd" in node.problems else "qcow2"}
"""
    text += _key_manager(tree, node, service, _fixed_key_for(tree, node, service))
    _write(tree, tree.pg(node.name) / f"{service}/etc/nova/nova.conf", text)


def _glance(tree: Tree, node: NodeSpec) -> None:
    text = f"""[DEFAULT]
enabled_backends=default_backend:rbd
show_image_direct_url=True

[database]
connection=mysql+pymysql://glance:{_secret(tree)}@overcloud.internalapi.example.com/glance

{_authtoken(tree, "glance")}
[key_manager]
backend=barbican

[barbican]
barbican_endpoint={"http" if "plain_http" in node.problems else "https"}://overcloud.internalapi.example.com:9311
auth_endpoint=https://overcloud.example.com:5000/v3
barbican_endpoint_type=internal
"""
    if "verify_ssl_off" in node.problems:
        text += "verify_ssl=false\n"
    _write(tree, tree.pg(node.name) / "glance_api/etc/glance/glance-api.conf", text)


def _swift(tree: Tree, node: NodeSpec) -> None:
    p = node.problems
    tail = "kms_keymaster encryption proxy-logging proxy-server"
    if "swift_no_encryption" in p:
        tail = "proxy-logging proxy-server"
    if "swift_bad_order" in p:
        tail = "encryption kms_keymaster proxy-logging proxy-server"
    pipeline = ("catch_errors healthcheck proxy-logging cache ratelimit bulk tempurl formpost authtoken s3api "
                "s3token keystone staticweb copy container_quotas account_quotas slo dlo versioned_writes " + tail)
    text = f"""[DEFAULT]
bind_port=8080
bind_ip={node.name}.storage.example.com
workers=auto
user=swift
log_name=proxy-server

[pipeline:main]
pipeline={pipeline}

[app:proxy-server]
use=egg:swift#proxy
account_autocreate=true

[filter:catch_errors]
use=egg:swift#catch_errors

[filter:healthcheck]
use=egg:swift#healthcheck

[filter:proxy-logging]
use=egg:swift#proxy_logging

[filter:cache]
use=egg:swift#memcache
memcache_servers={node.name}.internalapi.example.com:11211

[filter:authtoken]
paste.filter_factory=keystonemiddleware.auth_token:filter_factory
auth_url=https://overcloud.internalapi.example.com:5000
password={_secret(tree)}
username=swift

[filter:keystone]
use=egg:swift#keystoneauth
operator_roles=admin, swiftoperator, ResellerAdmin
"""
    if "swift_inline_secret" in p or "swift_weak_secret" in p:
        root_secret = base64.b64encode(os.urandom(32)).decode()
        if "swift_weak_secret" in p:
            root_secret = base64.b64encode(os.urandom(16)).decode()
        _secret(tree, root_secret)
        text += f"\n[filter:kms_keymaster]\nuse=egg:swift#keymaster\nencryption_root_secret={root_secret}\n"
    else:
        text += "\n[filter:kms_keymaster]\nuse=egg:swift#kms_keymaster\nkeymaster_config_path=/etc/swift/keymaster.conf\n"
    text += "\n[filter:encryption]\nuse=egg:swift#encryption\n"
    if "swift_disable_encryption" in p:
        text += "disable_encryption=true\n"
    _write(tree, tree.pg(node.name) / "swift/etc/swift/proxy-server.conf", text)
    km = f"""[kms_keymaster]
key_id={pysecrets.token_hex(16)}
username=swift
password={_secret(tree)}
project_name=service
project_domain_id=default
user_domain_id=default
auth_endpoint=https://overcloud.internalapi.example.com:5000/v3
"""
    _write(tree, tree.pg(node.name) / "swift/etc/swift/keymaster.conf", km)


def _barbican(tree: Tree, node: NodeSpec) -> None:
    p = node.problems
    kek = SAMPLE_KEK if "kek_sample" in p else base64.urlsafe_b64encode(os.urandom(32)).decode()
    _secret(tree, kek)
    text = f"""[DEFAULT]
host_href=https://overcloud.example.com:9311
transport_url=rabbit://guest:{_secret(tree)}@{node.name}.internalapi.example.com:5672/?ssl=0
sql_connection=mysql+pymysql://barbican:{_secret(tree)}@overcloud.internalapi.example.com/barbican

{_authtoken(tree, "barbican")}
[secretstore]
enabled_secretstore_plugins=store_crypto

[crypto]
enabled_crypto_plugins=simple_crypto
"""
    if "kek_missing" not in p:
        text += f"\n[simple_crypto_plugin]\nkek={kek}\n"
    mode = 0o644 if "kek_world_readable" in p else 0o640
    _write(tree, tree.pg(node.name) / "barbican/etc/barbican/barbican.conf", text, mode)


def build(base: Path, nodes: list[NodeSpec], fixed_key: str | None = None) -> Tree:
    """Write one puppet-generated tree per node under ``base``."""
    tree = Tree(base, fixed_key or pysecrets.token_hex(32), [])
    tree.secrets.append(tree.fixed_key)
    for node in nodes:
        unknown = node.problems - set(PROBLEMS)
        if unknown:
            raise ValueError(f"unknown problems {unknown}")
        if node.role == "controller":
            _cinder(tree, node)
            _nova(tree, node, "nova")
            _nova(tree, node, "nova_metadata")
            _glance(tree, node)
            _swift(tree, node)
            _barbican(tree, node)
        else:
            _nova(tree, node, "nova_libvirt")
    return tree
