"""``keytools volume-type create|check|list``: thin click wiring over manage.py and check.py."""

from __future__ import annotations

import functools

import click

from keytools import output
from keytools.context import RunContext, pass_run
from keytools.errors import ProblemsFound, UsageError
from keytools.volume_types import check as check_mod
from keytools.volume_types import cinder_api, manage, spec


@click.group("volume-type")
def volume_type() -> None:
    """Encrypted (LUKS) Cinder volume types, created and checked through the Cinder API.

    Managing types needs Cinder's admin role; creating encrypted volumes of a type needs the
    creator role (legacy Barbican policy) or member (today's defaults) in the user's project.
    """


@volume_type.command("create")
@click.argument("name", required=False)
@click.option("--template", type=click.Choice(["256", "512"]), default=None,
              help="The documented LuksEncryptor-Template-256 (or -512): luks, aes-xts-plain64, "
                   "front-end, key size 256 (512). NAME defaults to the template's name.")
@click.option("--provider", default=spec.LUKS, show_default=True,
              help="luks or plain; legacy class names (nova.volume.encryptors.luks.LuksEncryptor, ...) "
                   "are mapped to these.")
@click.option("--cipher", default=spec.DEFAULT_CIPHER, show_default=True,
              help="dm-crypt cipher specification cipher-chainmode-ivmode.")
@click.option("--key-size", type=int, default=spec.DEFAULT_KEY_SIZE, show_default=True,
              help="Key size in bits; aes-xts needs 256 or 512 (XTS splits the key in two).")
@click.option("--control-location", default=spec.DEFAULT_CONTROL_LOCATION, show_default=True,
              help="front-end: Nova encrypts on the compute host; back-end: the storage does.")
@click.option("--description", default=None, help="The type's description.")
@click.option("--private", is_flag=True, help="Create a private type (visible to --project only).")
@click.option("--project", default=None, metavar="PROJECT",
              help="With --private: project (name or id) given access to the type.")
@click.option("--update", is_flag=True,
              help="Change an existing type with another definition (refused while volumes use it).")
@output.format_option
@pass_run
def create(run: RunContext, name: str | None, template: str | None, provider: str, cipher: str,
           key_size: int, control_location: str, description: str | None, private: bool,
           project: str | None, update: bool, output_format: str) -> None:
    """Create an encrypted volume type and its encryption spec, idempotently.

    Every option is validated before Cinder is called. An existing identical type is reported as
    unchanged (exit 0); one with another definition is a conflict (exit 1) unless --update is
    given; Cinder refuses to change the encryption of a type volumes use (exit 6). A rerun after an
    interruption completes the type.

    \b
    Examples:
      keytools --os-cloud admin volume-type create --template 256
      keytools --os-cloud admin volume-type create LUKS-512 --key-size 512
    """
    if template:
        template_name, wanted = spec.template(int(template))
        given = click.get_current_context()
        overridden = [p for p in ("provider", "cipher", "key_size", "control_location")
                      if given.get_parameter_source(p) is not click.core.ParameterSource.DEFAULT]
        if overridden:
            raise UsageError(f"--template fixes the spec; drop --{overridden[0].replace('_', '-')}",
                             "Use either --template or the spec options")
        name = name or template_name
    else:
        wanted = spec.build(provider, cipher, key_size, control_location)
    if not name:
        raise UsageError("NAME is missing", "Give a name, or use --template 256")
    if project and not private:
        raise UsageError("--project only applies to a private type", "Add --private")
    session = run.session()
    project_id = cinder_api.project_id(session, project) if project else None
    request = manage.Request(name, wanted, description, not private, project_id)
    outcome = manage.ensure(cinder_api.client(session), request, update=update)
    output.emit(outcome.as_row(), output_format)


@volume_type.command("list")
@click.option("--encrypted", is_flag=True, help="Only types with an encryption spec.")
@output.format_option
@pass_run
def list_types(run: RunContext, encrypted: bool, output_format: str) -> None:
    """List volume types with their encryption spec columns."""
    records = cinder_api.list_types(cinder_api.client(run.session()))
    rows = []
    for record in records:
        if encrypted and not record.encryption:
            continue
        enc = record.encryption or {}
        rows.append({"name": record.name, "id": record.id, "public": record.is_public,
                     "encrypted": bool(record.encryption), "provider": enc.get("provider"),
                     "cipher": enc.get("cipher"), "key_size": enc.get("key_size"),
                     "control_location": enc.get("control_location")})
    output.emit(rows, output_format, columns=["name", "id", "public", "encrypted", "provider", "cipher",
                                              "key_size", "control_location"])


@volume_type.command("check")
@click.argument("names", nargs=-1, metavar="[NAME]...")
@click.option("--config-file", type=click.Path(dir_okay=False), default=None, metavar="CINDER_CONF",
              help="Read the key manager from this cinder.conf (and cinder.conf.d/) instead of "
                   "inferring it through the API.")
@output.format_option
@pass_run
def check(run: RunContext, names: tuple[str, ...], config_file: str | None, output_format: str) -> None:
    """Check encrypted volume types, the key manager and the caller's right to use them.

    For every encrypted type (or each NAME): its spec and whether dm-crypt would accept it and it
    is safe; whether Cinder's key manager is Barbican; whether the calling user may create the
    Barbican secret each encrypted volume needs. Exit 1 when anything is wrong.
    """
    key_manager = check_mod.key_manager_check_from_config(config_file) if config_file else None
    report = check_mod.run(run.session(), list(names), key_manager)
    render = functools.partial(_render_check, report, output_format)
    count = report.problem_count()
    if count:  # the root shows the report, then the one-line error
        raise ProblemsFound(f"volume-type check found {count} problem{'s' if count != 1 else ''}", report=render)
    render()


def _render_check(report: check_mod.Report, output_format: str) -> None:
    if output_format == "json":
        output.emit(report.as_dict(), "json")
    else:
        if report.types:
            output.emit([t.as_row() for t in report.types], "table",
                        columns=["name", "provider", "cipher", "key_size", "control_location", "sane",
                                 "problems"])
        else:
            click.echo("volume types: none checked")
        km = report.key_manager
        click.echo(f"key manager: {km.backend or 'unknown'} ({km.source})")
        cr = report.creator
        verdict = "unknown" if cr.allowed is None else "yes" if cr.allowed else "no"
        click.echo(f"can create encrypted volumes: {verdict} (user {cr.user or '?'}, project "
                   f"{cr.project or '?'}, roles {', '.join(cr.roles) or '-'})"
                   + (f"; remedy: {cr.remedy}" if cr.remedy else ""))
        for problem in report.problems + km.problems + cr.problems:
            click.echo(f"problem: {problem}")
