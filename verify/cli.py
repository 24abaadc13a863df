"""``keytools verify``: click wiring only; the verdict goes to stdout, the one-line error to stderr."""

from __future__ import annotations

import functools
from typing import Any

import click

from keytools import context, output, progress
from keytools import image_signature as sig
from keytools.errors import KeytoolsError, UsageError
from verify import verifier
from verify.api import VerifyResult, verify_image


UPSTREAM_LABELS = {"glance": "glance (upload, ignores certificate dates)",
                   "nova": "nova (verify_glance_signatures, no certificate validation)",
                   "nova_certificate_validation": "nova (with certificate validation)"}
@click.command("verify")
@click.argument("image", required=False, type=click.Path(dir_okay=False))
@click.option("--image-id", metavar="ID",
              help="Verify a Glance image: properties from Glance, data downloaded and verified as it streams.")
@click.option("--properties", "properties_json", metavar="JSON|FILE|-",
              help="The four img_signature* properties as a JSON object (or a file, '-' for stdin); "
                   "'keytools sign -f json' and 'openstack image show -f json' output work as is.")
@click.option("--signature", metavar="B64", help="img_signature (base64).")
@click.option("--key-type", metavar="TYPE", help=f"img_signature_key_type: {', '.join(sig.VERIFY_KEY_TYPES)}.")
@click.option("--hash-method", metavar="HASH", help=f"img_signature_hash_method: {', '.join(sig.HASH_METHODS)}.")
@click.option("--cert-uuid", metavar="UUID", help="img_signature_certificate_uuid (Barbican secret id).")
@click.option("--cert", "cert_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Use this certificate file instead of fetching the certificate from Barbican.")
@click.option("--trusted-cert", "trusted", multiple=True, metavar="UUID",
              help="Trusted certificate id, as Nova's trusted certificate ids: the signing certificate "
                   "must chain to one of them (repeatable).")
@click.option("--format", "-f", "output_format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="Verdict line plus details, or one JSON object.")
@context.pass_run
def verify(run: context.RunContext, image: str | None, image_id: str | None, properties_json: str | None,
           signature: str | None, key_type: str | None, hash_method: str | None, cert_uuid: str | None,
           cert_file: str | None, trusted: tuple[str, ...], output_format: str) -> None:
    """Verify the Glance signature of IMAGE (a file) or of a Glance image (--image-id).

    Accepts what Glance and Nova (cursive) accept: key types RSA-PSS, DSA, ECC_SECP384R1,
    ECC_SECP521R1; hash methods SHA-224, SHA-256, SHA-384, SHA-512; RSA-PSS with MGF1 and any
    salt length up to the maximum. The certificate is checked like Nova does: within its dates,
    and with --trusted-cert chained to a trusted certificate. A certificate outside its dates
    exits 3 after the signature itself has been checked: the report says whether it verifies
    and what Glance and Nova (without and with certificate validation) would each do.

    \b
    Exit codes:
      0  valid signature
      1  invalid signature (tampered data, wrong certificate)
      2  usage error or missing/malformed property, unreadable or empty image
      3  certificate problem (expired, not yet valid, untrusted, not found)
      4  key manager (Barbican), Keystone or Glance unreachable
    """
    try:
        props = _properties(image, image_id, properties_json, signature, key_type, hash_method, cert_uuid)
        result = verify_image(props, image=image, image_id=image_id, cert_file=cert_file, trusted=trusted,
                              session=run.session, progress=progress.for_file)
    except KeytoolsError as exc:  # the root renders the report, then the one-line error
        raise exc.with_report(functools.partial(_render, VerifyResult.failed(str(image_id or image), exc),
                                                output_format))
    _render(result, output_format)


def _properties(image: str | None, image_id: str | None, properties_json: str | None, signature: str | None,
                key_type: str | None, hash_method: str | None, cert_uuid: str | None) -> dict[str, Any]:
    flags = {sig.SIGNATURE: signature, sig.KEY_TYPE: key_type, sig.HASH_METHOD: hash_method,
             sig.CERT_UUID: cert_uuid}
    given = {k: v for k, v in flags.items() if v is not None}
    if properties_json:
        props = verifier.properties_from_json(properties_json)
        props.update(given)
        return props
    if image and not image_id and not given:
        raise UsageError("no signature properties given",
                         "Pass --properties JSON, or --signature, --key-type, --hash-method and --cert-uuid")
    return given


def _render(result: VerifyResult, output_format: str) -> None:
    if output_format == "json":
        output.emit(result.as_dict(), "json")
        return
    upstream = result.upstream
    if result.verdict == "error" and not upstream:
        return  # the one-line error on stderr says it all
    # A certificate outside its dates: refused, but the signature was checked and is reported.
    click.echo(f"{'CERTIFICATE REFUSED' if upstream else result.verdict.upper()}: {result.message}")
    if result.signature_valid is not None:
        click.echo(f"  signature_valid: {'yes' if result.signature_valid else 'no'}")
    for key, label in UPSTREAM_LABELS.items():
        if upstream and key in upstream:
            click.echo(f"  {label}: {upstream[key]}")
    for key in ("size", "hash_method", "key_type", "certificate_uuid", "certificate_subject",
                "certificate_sha256_fingerprint", "certificate_not_after", "trusted_chain", "digest"):
        value = getattr(result, key)
        if value is not None:
            click.echo(f"  {key}: {' -> '.join(value) if isinstance(value, list) else value}")
    for note in result.notes or []:
        click.echo(f"  note: {note}")
