"""The per-run state every command shares: auth source, one lazily built session, output flags."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from keytools import auth

if TYPE_CHECKING:
    from keystoneauth1 import session as ks_session


@dataclass
class RunContext:
    auth_source: auth.AuthSource = field(default_factory=auth.AuthSource)
    debug: bool = False
    log_format: str = "text"
    _session: ks_session.Session | None = None

    def set_auth_source(self, source: auth.AuthSource) -> None:
        """Use ``source`` from now on (a global option given after the subcommand overrides)."""
        if source != self.auth_source:
            self.auth_source = source
            self._session = None

    def session(self, source: auth.AuthSource | None = None) -> ks_session.Session:
        """The run's keystoneauth session (built once); ``source`` overrides the global one."""
        if source is not None and source != self.auth_source:
            return auth.make_session(source)
        if self._session is None:
            self._session = auth.make_session(self.auth_source)
        return self._session


def current() -> RunContext:
    """The RunContext of the running command (a default one outside the CLI, e.g. in tests)."""
    ctx = click.get_current_context(silent=True)
    obj: Any = ctx.find_object(RunContext) if ctx else None
    return obj or RunContext()


pass_run = click.make_pass_decorator(RunContext, ensure=True)
