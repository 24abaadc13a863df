"""Image signature verification: nova must verify when glance-api stores certificates in Barbican."""

from __future__ import annotations

from collections.abc import Iterator

from config_checks import secrets
from config_checks.inputs import AuditInput
from config_checks.model import Finding, Severity, rule
from config_checks.rules.common import is_barbican, is_true


def _glance_on_barbican(audit: AuditInput) -> list[str]:
    return [c.node for c in audit.configs("glance_api")
            if (b := c.get("key_manager", "backend")) is not None and is_barbican(b)]


@rule("KT201", "glance-signature-verification-off", Severity.MEDIUM,
      "nova-compute does not verify image signatures although glance-api uses Barbican",
      """Set [glance] verify_glance_signatures = true in nova.conf on every compute node
      (TripleO: VerifyGlanceSignatures: true) so that signed images are checked at boot.""")
def verification_off(audit: AuditInput) -> Iterator[Finding]:
    glance_nodes = _glance_on_barbican(audit)
    if not glance_nodes:
        return
    for cfg in audit.configs("nova", "nova_libvirt", "nova_compute"):
        if not cfg.is_compute:
            continue
        s = cfg.setting("glance", "verify_glance_signatures")
        if s is None or not is_true(s.value):
            loc = cfg.loc(s) if s else cfg.loc(section="glance", option="verify_glance_signatures")
            yield verification_off.finding(
                loc, f"{cfg.service}: signatures not verified (glance-api on {glance_nodes[0]} uses Barbican)",
                actual=secrets.show(s) if s else "unset (false)", expected="true")


@rule("KT202", "rbd-cow-no-signature-verification", Severity.MEDIUM,
      "Signature verification is on, but RBD copy-on-write images skip it",
      """With Ceph/RBD copy-on-write for images and instances nova never downloads the image, so
      signatures cannot be verified: use a non-COW image backend on the computes that must verify,
      or accept (and document) that these images are not verified.""")
def rbd_cow(audit: AuditInput) -> Iterator[Finding]:
    for cfg in audit.configs("nova", "nova_libvirt", "nova_compute"):
        verify = cfg.get("glance", "verify_glance_signatures")
        s = cfg.setting("libvirt", "images_type")
        if s is not None and s.value.strip().lower() == "rbd" and is_true(verify):
            yield rbd_cow.finding(cfg.loc(s), f"{cfg.service}: [libvirt] images_type = rbd with "
                                  "verify_glance_signatures = true", actual="rbd", expected="a non-COW images_type "
                                  "(e.g. qcow2) where signatures must be verified")
