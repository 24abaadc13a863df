"""WSGI application factories the sandbox's gunicorn processes load (``module:factory()``).

Each runs inside the server process: it points the service at its config in the state dir and
resets ``sys.argv`` (these services parse the command line as oslo.config arguments).
"""

from __future__ import annotations

import fcntl
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

WsgiApp = Callable[..., Any]


def _state() -> Path:
    return Path(os.environ["KEYTOOLS_SANDBOX_DIR"])


def keystone() -> WsgiApp:
    os.environ["OS_KEYSTONE_CONFIG_DIR"] = str(_state() / "keystone")
    sys.argv = ["keystone"]
    from keystone.server import wsgi

    return wsgi.initialize_public_application()


def barbican() -> WsgiApp:
    # barbican reads ~/.barbican/barbican.conf at import time: HOME is the state's barbican dir.
    home = _state() / "barbican"
    os.environ["HOME"] = str(home)
    sys.argv = ["barbican-api"]
    from paste import deploy

    paste_ini = Path(sys.prefix) / "etc" / "barbican" / "barbican-api-paste.ini"
    # Several workers may start at once: one at a time creates the schema (db_auto_create).
    with open(home / "schema.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return deploy.loadapp(f"config:{paste_ini}", name="main")
