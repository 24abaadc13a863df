"""A clone with nothing beside it must pass: no test, helper or CI step reads outside the checkout."""

from __future__ import annotations

import re

from tests.helpers.paths import REPO, TEST_DATA

# Built from parts so this file does not match itself.
OUTSIDE = re.compile("|".join([r"\.\./" + "shared", "/" + "shared/data", "KEYTOOLS_" + "SHARED" + "_DATA", r"parents\[[3-9]\]"]))


def _sources():
    yield REPO / ".ci" / "run"
    yield REPO / "Makefile"
    for sub in ("tests", "benchmarks", "scripts"):
        yield from (p for p in (REPO / sub).rglob("*") if p.suffix in (".py", ".sh") and p.is_file())


def test_nothing_reads_outside_the_checkout():
    offenders = [
        f"{path.relative_to(REPO)}:{n}: {line.strip()}"
        for path in _sources()
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if OUTSIDE.search(line)
    ]
    assert offenders == []


def test_real_cinder_logs_are_in_the_repository():
    logs = TEST_DATA / "cinder-logs"
    assert (logs / "README.md").is_file() and (logs / "EXPECTED.json").is_file()
    assert len(list(logs.glob("*.log"))) >= 6
