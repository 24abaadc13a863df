"""Fixtures for the Swift tests: the sandbox's real Swift (one replica, keystone auth, keytools'
keymaster), Barbican secrets made to order, and a request counter in front of Barbican."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from keytools.keymanager import barbican_client  # noqa: E402
from keytools.sandbox import bootstrap  # noqa: E402
from tests.helpers.fault_proxy import FaultProxy  # noqa: E402


@pytest.fixture(scope="session")
def swift_sandbox(sandbox_with):
    """The run's sandbox with Swift added (memcached, 3 storage servers, the proxy)."""
    return sandbox_with("swift")


@pytest.fixture(scope="session")
def service_admin(swift_sandbox):
    """admin scoped to project service: owns the test root secrets, as in the sandbox."""
    return bootstrap.admin_session(swift_sandbox.config, project="service")


@pytest.fixture(scope="session")
def barbican(swift_sandbox, service_admin):
    return barbican_client(service_admin, endpoint=swift_sandbox.url("barbican"))


@pytest.fixture(scope="session")
def swift_user_id(swift_sandbox, service_admin) -> str:
    from keystoneclient.v3 import client as ks_client

    keystone = ks_client.Client(session=service_admin, interface="public")
    return next(u.id for u in keystone.users.list(name="swift") if u.name == "swift")


@pytest.fixture(scope="session")
def make_secret(barbican, swift_user_id):
    """``make_secret(payload, algorithm="aes", bits=256, secret_type="symmetric", acl=True)`` -> key id."""

    def make(payload: bytes | str, algorithm: str | None = "aes", bits: int | None = 256,
             secret_type: str = "symmetric", acl: bool = True, **extra: str) -> str:
        ref = barbican.secrets.create(name=f"test-{uuid.uuid4().hex[:8]}", payload=payload,
                                      algorithm=algorithm, bit_length=bits, secret_type=secret_type,
                                      **extra).store()
        if acl:
            barbican.acls.create(entity_ref=ref, users=[swift_user_id], project_access=True).submit()
        return ref.rstrip("/").rsplit("/", 1)[-1]

    return make


@pytest.fixture(scope="session")
def root_secret(swift_sandbox, barbican) -> tuple[str, bytes]:
    """The sandbox proxy's root secret: (key id, bytes)."""
    key_id = swift_sandbox.config.extra["swift_key_id"]
    payload = barbican.secrets.get(f"{swift_sandbox.url('barbican')}/v1/secrets/{key_id}").payload
    return key_id, payload


@pytest.fixture(scope="session")
def barbican_counter(swift_sandbox):
    """Every Barbican request of the proxies pointed at it goes through here and is counted."""
    forwarder = FaultProxy(swift_sandbox.url("barbican"))
    yield forwarder
    forwarder.close()


@pytest.fixture(scope="session")
def swift_workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("swift-proxies")


@pytest.fixture(scope="session")
def proxies():
    """Extra proxy processes; all stopped at the end of the run."""
    started = []
    yield started
    for proxy in started:
        proxy.stop()
