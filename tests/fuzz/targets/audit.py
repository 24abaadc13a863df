"""`keytools audit`: a tree of config files -> every format (text, json, sarif, junit) parses.

``data`` is records separated by 0x1e: the node's directory name (any bytes but '/' and NUL: a
name that is not UTF-8 too), then the contents of the /etc layout's files in order (cinder.conf,
nova.conf, glance-api.conf, proxy-server.conf, keymaster.conf, barbican.conf). The audit runs on
the tree per node (the library, every format) and through the CLI (text to stdout, or JUnit
with ``--output``, alternately); JSON and SARIF must parse strictly (and SARIF match the schema
subset), JUnit must be well-formed XML in valid UTF-8.
"""

from __future__ import annotations

import json
import os
import shutil
import xml.etree.ElementTree as ET  # noqa: S405 (the audit's own output)
from pathlib import Path

from config_checks import formats
from config_checks.audit import audit_roots
from config_checks.inputs import ETC_FILES
from config_checks.model import Severity
from keytools.errors import UsageError
from tests.fuzz import contract
from tests.helpers.paths import REPO

DEVSTACK = REPO / "tests" / "config_checks" / "fixtures" / "devstack" / "etc"
SCHEMA = REPO / "tests" / "config_checks" / "sarif-2.1.0-subset.schema.json"
PLANTED = "Fz-audit-secret-0815"  # a password in the seeds: the audit shows only its fingerprint


def _seed(node: bytes, edit: dict[str, bytes] | None = None) -> bytes:
    files = [(DEVSTACK / rel).read_bytes() if (DEVSTACK / rel).exists() else b"" for _, rel in ETC_FILES]
    for i, (service, _rel) in enumerate(ETC_FILES):
        files[i] = (edit or {}).get(service, files[i])
    return b"\x1e".join([node, *files])


SEEDS: list[bytes] = [
    _seed(b"ctl-0"),
    _seed(b"n\xff\xfe-\x01node", {"cinder": b"[key_manager]\nbackend = fixed_key\nfixed_key = "
                                            + PLANTED.encode() + b"\n[DEFAULT]\nx = \x01\x02\x7f\n"}),
    _seed(b"cmp-1", {"swift_keymaster": b"[kms_keymaster]\npassword = " + PLANTED.encode()
                     + b"\nauth_endpoint = http://\x0bkeystone/v3\n"}),
]


def _safe_name(raw: bytes) -> bytes:
    name = raw.replace(b"/", b"_").replace(b"\x00", b"_")[:64]
    return name if name.strip(b".") else b"node"


def _tree(data: bytes) -> tuple[bytes, bytes]:
    """(root, node directory) as bytes paths, freshly written from ``data``."""
    records = data.split(b"\x1e")
    base = os.fsencode(contract.workdir())
    root = os.path.join(base, b"tree-" + _safe_name(records[0]))
    for old in Path(contract.workdir()).glob("tree-*"):
        shutil.rmtree(old, ignore_errors=True)
    node = os.path.join(root, _safe_name(records[0]))
    for (_service, rel), content in zip(ETC_FILES, records[1:]):
        path = os.path.join(node, b"etc", os.fsencode(rel))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content)
    if len(records) < 2:
        os.makedirs(os.path.join(node, b"etc"), exist_ok=True)
    return root, node


def _parse(fmt: str, text: bytes) -> None:
    """The report in ``fmt`` parses as what it claims to be (AssertionError if not)."""
    try:
        assert text.decode("utf-8"), f"{fmt} output is empty"
    except UnicodeDecodeError as exc:
        raise AssertionError(f"the {fmt} report is not UTF-8: {exc}") from None
    if fmt in ("json", "sarif"):
        doc = contract.strict_json(text.decode("utf-8"))
        if fmt == "sarif":
            import jsonschema

            jsonschema.Draft4Validator(json.loads(SCHEMA.read_text())).validate(doc)
    elif fmt == "junit":
        try:
            ET.fromstring(text)
        except ET.ParseError as exc:
            raise AssertionError(f"JUnit output is not XML: {exc}") from None


def fuzz_one(data: bytes) -> None:
    root, node = _tree(data)
    secrets = (PLANTED,) if _planted_intact(data) else ()
    with contract.bounded():
        try:
            report = audit_roots([os.fsdecode(root)], per_node=True, threshold=Severity.INFO)
        except UsageError:
            report = None
    if report is not None:
        for fmt in sorted(formats.RENDERERS):
            text = formats.render(report, fmt)
            for secret in secrets:
                assert secret not in text, f"the {fmt} report shows a planted secret"
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError as exc:  # a lone surrogate: no file or stream can hold it
                raise AssertionError(f"the {fmt} report cannot be written as UTF-8: {exc}") from None
            _parse(fmt, data)
    if len(data) % 2:  # one CLI run per input, alternately: text to stdout, or JUnit to a file
        result = contract.run(["audit", "--severity", "info", os.fsdecode(node)], secrets=secrets)
        assert result.exit_code in (0, 1, 2)
        return
    out = os.path.join(contract.workdir(), "report")
    if os.path.exists(out):
        os.unlink(out)
    result = contract.run(["audit", "-f", "junit", "--per-node", "-o", out, os.fsdecode(root)], secrets=secrets)
    if result.exit_code in (0, 1, 2) and os.path.exists(out):
        with open(out, "rb") as handle:
            _parse("junit", handle.read())


def _planted_intact(data: bytes) -> bool:
    """The planted secret is still only the value of a secret option (a mutation may have renamed
    the option, and a value of an ordinary option may be shown)."""
    planted = PLANTED.encode()
    whole = [b"\nfixed_key = " + planted + b"\n", b"\npassword = " + planted + b"\n"]
    return data.count(planted) == sum(data.count(w) for w in whole) > 0
