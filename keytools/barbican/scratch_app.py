"""WSGI factory of the drill's scratch Barbican (``gunicorn keytools.barbican.scratch_app:app()``).

Barbican's own API code (``barbican.api.app``) behind Barbican's own unauthenticated pipeline, with one
addition: every request must carry the drill's random token, so no other local process can read the
restored secrets during the drill. The factory refuses to serve unless Barbican loaded the scratch
database named by the drill: a stray barbican.conf.d must never point it at production.
"""

from __future__ import annotations

import hmac
import os
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

TOKEN_HEADER = "HTTP_X_KEYTOOLS_DRILL_TOKEN"
PASTE = """[composite:main]
use = egg:Paste#urlmap
/: barbican_version
/v1: barbican_api

[pipeline:barbican_version]
pipeline = request_id microversion versionapp

[pipeline:barbican_api]
pipeline = request_id unauthenticated-context microversion apiapp

[app:apiapp]
paste.app_factory = barbican.api.app:create_main_app

[app:versionapp]
paste.app_factory = barbican.api.app:create_version_app

[filter:unauthenticated-context]
paste.filter_factory = barbican.api.middleware.context:UnauthenticatedContextMiddleware.factory

[filter:microversion]
paste.filter_factory = barbican.api.middleware.microversion:MicroversionMiddleware.factory

[filter:request_id]
paste.filter_factory = oslo_middleware.request_id:RequestId.factory
"""


def app() -> Callable[..., Iterable[bytes]]:
    home = Path(os.environ["KEYTOOLS_SCRATCH_HOME"])
    token = os.environ.pop("KEYTOOLS_SCRATCH_TOKEN").encode()
    expected_db = os.environ["KEYTOOLS_SCRATCH_DB"]
    os.environ["HOME"] = str(home)  # barbican reads ~/.barbican/barbican.conf at import time
    sys.argv = ["barbican-api"]
    from barbican.common import config
    from paste import deploy

    inner = deploy.loadapp(f"config:{home / 'barbican-api-paste.ini'}", name="main")
    if config.CONF.database.connection != expected_db:
        raise SystemExit("keytools scratch Barbican: the loaded configuration names another database; refusing")

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        given = environ.get(TOKEN_HEADER, "").encode()
        if not hmac.compare_digest(given, token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"keytools drill: token required\n"]
        # Barbican's UnauthenticatedContextMiddleware reads req.request_id, which only its keystone
        # pipeline sets: give every request one (webob keeps ad-hoc request attributes here).
        environ.setdefault("webob.adhoc_attrs", {})["request_id"] = f"req-{uuid.uuid4()}"
        return inner(environ, start_response)

    return guarded
