"""``keytools cert create|store|list`` and ``keytools sign``: click wiring only, no crypto here."""

from __future__ import annotations

import os
import shlex

import click

from keytools import context, output, progress
from keytools import image_signature as sig
from sign import cert_store as stored_certs
from sign import certs, keys
from sign.api import SignResult, sign_image
from sign.upload import ImageOptions

SIGN_FORMATS = ("text", "json", "glance-args")


@click.group("cert")
def cert() -> None:
    """Signing certificates for Glance images: create, store in Barbican, list.

    \b
    Publisher's flow:
      keytools cert create --out ~/signing
      keytools --os-cloud mycloud cert store ~/signing/signing_cert.pem
      keytools --os-cloud mycloud sign image.qcow2 --key ~/signing/signing_key.pem \\
          --cert-uuid UUID --upload --disk-format qcow2
    """


@cert.command("create")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), metavar="DIR",
              help="Directory for signing_key.pem (0600) and signing_cert.pem (or signing_cert.csr).")
@click.option("--key-type", type=click.Choice(["rsa", "ec"]), default="rsa", show_default=True,
              help="RSA (signs as RSA-PSS) or ECDSA (ECC_SECP384R1 / ECC_SECP521R1).")
@click.option("--bits", type=int, default=3072, show_default=True, help="RSA key size: 2048, 3072 or 4096.")
@click.option("--curve", type=click.Choice(sorted(keys.CURVES)), default="secp384r1", show_default=True,
              help="ECDSA curve; the only ones Glance and Nova accept.")
@click.option("--days", type=int, default=365, show_default=True, help="Validity of the self-signed certificate.")
@click.option("--cn", "common_name", metavar="NAME", help="Subject common name [Glance image signing (HOST)].")
@click.option("--org", "organization", metavar="NAME", help="Subject organisation.")
@click.option("--csr", "want_csr", is_flag=True,
              help="Write a certificate signing request for a real CA instead of a self-signed certificate.")
@click.option("--allow-weak-key", is_flag=True, help="Accept RSA keys below 2048 bits (legacy tests only).")
@click.option("--force", is_flag=True, help="Replace an existing key and certificate in DIR.")
@output.format_option
def cert_create(out_dir: str, key_type: str, bits: int, curve: str, days: int, common_name: str | None,
                organization: str | None, want_csr: bool, allow_weak_key: bool, force: bool,
                output_format: str) -> None:
    """Create a private key and a self-signed signing certificate (or a CSR).

    The self-signed certificate is a CA (basicConstraints CA:TRUE, keyUsage keyCertSign and
    digitalSignature): Nova's certificate validation accepts it when its own Barbican id is in
    the trusted certificate ids. The key is never overwritten without --force.
    """
    created = certs.create(out_dir, key_type, bits, curve, days, common_name, organization, want_csr,
                           allow_weak_key, force)
    output.emit(created.as_dict(), output_format)


@cert.command("store")
@click.argument("cert_file", metavar="CERT", type=click.Path(dir_okay=False))
@click.option("--name", metavar="NAME", help="Secret name [image-signing-cert-<fingerprint>].")
@click.option("--allow-weak-key", is_flag=True, help="Accept a certificate whose RSA key has under 2048 bits.")
@output.format_option
@context.pass_run
def cert_store(run: context.RunContext, cert_file: str, name: str | None, allow_weak_key: bool,
               output_format: str) -> None:
    """Store CERT in Barbican as a certificate secret and print its UUID.

    Stored as documented (secret type certificate, algorithm RSA for RSA keys, payload
    application/octet-stream, base64 of the PEM), which is what Glance and Nova read through
    castellan. Expired or not-yet-valid certificates and weak keys are refused. Storing the same
    certificate again prints the existing UUID.
    """
    certificate = certs.read_certificate(cert_file)
    stored = stored_certs.store(run.session(), certificate, name, allow_weak_key, where=f"certificate {cert_file}")
    if output_format == "json":
        output.emit({**stored.as_dict(), "created": stored.created}, "json")
    else:
        click.echo(stored.uuid)
        click.echo(f"{'stored' if stored.created else 'already stored'}: {stored.subject}, "
                   f"expires {stored.not_after}", err=True)


@cert.command("list")
@output.format_option
@context.pass_run
def cert_list(run: context.RunContext, output_format: str) -> None:
    """List the certificate secrets you can read, with subject, fingerprint and expiry."""
    rows = [c.as_dict() for c in stored_certs.list_stored(run.session())]
    output.emit(rows, output_format, ["uuid", "subject", "sha256_fingerprint", "not_after", "key", "status"])


@click.command("sign")
@click.argument("image", type=click.Path(dir_okay=False))
@click.option("--key", "key_file", required=True, type=click.Path(dir_okay=False), metavar="KEY",
              help="PEM private key (RSA >= 2048 bits, or ECDSA P-384/P-521).")
@click.option("--key-password-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="File holding the password of an encrypted KEY.")
@click.option("--cert-uuid", required=True, metavar="UUID",
              help="Barbican id of the signing certificate (from 'keytools cert store').")
@click.option("--cert", "cert_file", type=click.Path(dir_okay=False), metavar="FILE",
              help="The certificate file: must be the one stored under --cert-uuid.")
@click.option("--offline", is_flag=True,
              help="Do not contact Barbican; check the key against --cert FILE only.")
@click.option("--hash-method", type=click.Choice(list(sig.HASH_METHODS)), default=sig.DEFAULT_HASH_METHOD,
              show_default=True, help="img_signature_hash_method.")
@click.option("--allow-weak-key", is_flag=True, help="Accept an RSA key below 2048 bits (legacy only).")
@click.option("--signature-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Also write the raw signature (as 'openssl dgst -sign -out' does).")
@click.option("--format", "-f", "output_format", type=click.Choice(SIGN_FORMATS), default="text",
              show_default=True,
              help="text: name=value lines; json; glance-args: --property options for 'openstack image create'.")
@click.option("--upload", is_flag=True, help="Create the Glance image with the properties and upload IMAGE.")
@click.option("--name", metavar="NAME", help="Image name for --upload [file name].")
@click.option("--disk-format", default="raw", show_default=True, help="Disk format for --upload.")
@click.option("--container-format", default="bare", show_default=True, help="Container format for --upload.")
@click.option("--visibility", type=click.Choice(["private", "shared", "community", "public"]),
              default="private", show_default=True, help="Visibility for --upload.")
@context.pass_run
def sign(run: context.RunContext, image: str, key_file: str, key_password_file: str | None, cert_uuid: str,
         cert_file: str | None, offline: bool, hash_method: str, allow_weak_key: bool,
         signature_file: str | None, output_format: str, upload: bool, name: str | None, disk_format: str,
         container_format: str, visibility: str) -> None:
    """Sign IMAGE for Glance and print the four img_signature* properties.

    Reads IMAGE once, in constant memory, and signs its digest: RSA keys with RSA-PSS (MGF1 over
    the same hash, maximum salt length: what 'openssl dgst -sigopt rsa_padding_mode:pss' writes
    and Glance and Nova verify), ECDSA keys as ECC_SECP384R1 / ECC_SECP521R1.

    Before signing it checks that the key matches the certificate stored in Barbican under
    --cert-uuid (and --cert FILE, if given), that the certificate is in date and allows signing,
    and that IMAGE is a readable, non-empty file. The Barbican check runs while IMAGE is hashed;
    if it fails the hash stops and nothing is printed or written.

    With --upload the image is created in Glance with the properties and its data uploaded;
    Glance verifies the signature itself and refuses a mismatch (the queued image is deleted).

    \b
    Exit codes: 0 signed (and uploaded); 1 Glance rejected the upload; 2 bad input (key, file,
    option); 3 certificate problem (mismatch, expired, not in Barbican); 4 Barbican or Glance
    unreachable; 5 not allowed.
    """
    options = ImageOptions(name or os.path.basename(image), disk_format, container_format, visibility)
    result = sign_image(image, key_file, cert_uuid, session=None if offline else run.session,
                        key_password_file=key_password_file, cert_file=cert_file, hash_method=hash_method,
                        allow_weak_key=allow_weak_key, signature_file=signature_file,
                        upload=options if upload else None, progress=progress.for_file)
    _print(result, output_format)


def _print(result: SignResult, output_format: str) -> None:
    if output_format == "json":
        output.emit(result.as_dict(), "json")
        return
    if output_format == "glance-args":
        click.echo(" ".join(f"--property {shlex.quote(f'{k}={v}')}" for k, v in result.properties.items()))
    else:
        for k, v in result.properties.items():
            click.echo(f"{k}={v}")
    image = result.uploaded
    if image:
        click.echo(f"uploaded: image {image.id} ({image.status}, {image.size} bytes); "
                   "Glance verified the signature", err=output_format == "glance-args")
