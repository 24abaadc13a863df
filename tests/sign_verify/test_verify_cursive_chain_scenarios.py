"""cursive's own certificate-validation scenarios (cursive/tests/unit/test_certificate_utils.py and
its data certificates: self-signed with and without CA extensions, signed, orphaned, a
grandparent -> parent -> child -> grandchild chain), run through cursive's verify_certificate
(what Nova does with trusted certificate ids) and keytools' chain validation at the dates cursive's
tests use and around them: every leaf against every trusted set of up to two certificates plus the
chains, same verdict required."""

from __future__ import annotations

import datetime
import itertools
import os
from unittest import mock

import pytest
from cryptography import x509
from cursive import certificate_utils
from cursive import exception as cursive_exception

from keytools import image_signature as sig
from keytools.errors import CertificateError
from verify import chain

DATA = os.path.join(os.path.dirname(certificate_utils.__file__), "tests", "unit", "data")
UTC = datetime.timezone.utc
WHEN = [datetime.datetime(2016, 1, 1, tzinfo=UTC), datetime.datetime(2017, 1, 1, tzinfo=UTC),
        datetime.datetime(2017, 10, 15, tzinfo=UTC), datetime.datetime(2018, 1, 1, tzinfo=UTC)]


def _certs() -> dict[str, x509.Certificate]:
    found = {}
    for name in sorted(os.listdir(DATA)):
        data = open(os.path.join(DATA, name), "rb").read()
        try:
            found[name] = sig.load_certificate(data)
        except ValueError:
            continue  # not_a_cert.txt
    return found


pytestmark = pytest.mark.skipif(not os.path.isdir(DATA), reason="cursive installed without its tests")


def _cursive_accepts(certs, leaf: str, trusted: tuple[str, ...], when) -> bool:
    with mock.patch("cursive.signature_utils.get_certificate", side_effect=lambda _c, uuid: certs[uuid]), \
            mock.patch("oslo_utils.timeutils.utcnow", return_value=when):
        try:
            certificate_utils.verify_certificate(None, leaf, list(trusted))
        except cursive_exception.SignatureVerificationError:
            return False
    return True


_VALIDITY = sig.validity_problem


def _keytools_accepts(certs, leaf: str, trusted: tuple[str, ...], when, monkeypatch) -> bool:
    monkeypatch.setattr(sig, "validity_problem", lambda cert, now=None: _VALIDITY(cert, when))
    try:
        chain.validate(certs[leaf], leaf, [(u, certs[u]) for u in trusted])
    except CertificateError:
        return False
    return True


def test_every_leaf_and_trusted_set_gets_cursives_verdict(monkeypatch):
    certs = _certs()
    assert len(certs) == 12
    names = list(certs)
    trusted_sets = [(), *itertools.combinations(names, 1), *itertools.combinations(names, 2),
                    ("grandparent_cert.pem", "parent_cert.pem"),
                    ("grandparent_cert.pem", "parent_cert.pem", "child_cert.pem"),
                    tuple(names)]
    accepted: dict[str, int] = {}
    mismatches = []
    for when in WHEN:
        for leaf in names:
            for trusted in trusted_sets:
                theirs = _cursive_accepts(certs, leaf, trusted, when)
                ours = _keytools_accepts(certs, leaf, trusted, when, monkeypatch)
                day = when.date().isoformat()
                accepted[day] = accepted.get(day, 0) + theirs
                if theirs != ours:
                    mismatches.append((day, leaf, trusted, theirs))
    assert not mismatches, mismatches[:10]
    # the matrix holds accepted chains on the dates cursive's tests use, none before any cert
    assert accepted["2016-01-01"] == 0 and accepted["2017-01-01"] > 10 and accepted["2017-10-15"] > 10
