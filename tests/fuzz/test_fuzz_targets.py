"""Every fuzz target under a small hypothesis budget, every saved reproducer replayed, and one
regression test per class of hostile input issue 21 found (each failed before its fix).

`make fuzz` runs the same targets coverage-guided for as long as asked (tests/fuzz/run.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz import targets

REPRODUCERS = Path(__file__).parent / "reproducers"
EXAMPLES = 25  # per target: the suite's share; make fuzz runs thousands


@pytest.mark.parametrize("name", targets.names())
def test_target_seeds_keep_the_contract(name):
    module = targets.load(name)
    for seed in module.SEEDS:
        module.fuzz_one(seed)


@pytest.mark.parametrize("name", targets.names())
def test_target_keeps_the_contract_on_mutated_seeds(name):
    module = targets.load(name)

    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def one(data):
        seed = data.draw(st.sampled_from(module.SEEDS))
        if seed:
            at = data.draw(st.integers(0, len(seed) - 1))
            chunk = data.draw(st.binary(max_size=64))
            cut = data.draw(st.integers(0, 64))
            seed = seed[:at] + chunk + seed[at + cut:]
        module.fuzz_one(seed)

    one()


def _reproducers() -> list[Path]:
    return sorted(p for p in REPRODUCERS.glob("*/*") if p.is_file() and p.parent.name in targets.names())


@pytest.mark.parametrize("path", _reproducers(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_reproducer_keeps_the_contract(path):
    targets.load(path.parent.name).fuzz_one(path.read_bytes())


# Regression tests: one per class of hostile input (issue 21). Each exited 70 before its fix.

_CINDER = "2026-11-23 12:45:36.200 23845 INFO cinder.keymgr.migration [None req-bd47ab3b-dbdd-45a7-9425-5e4f613f0933 - - - - - -] "


@pytest.mark.parametrize("line", [
    b'{"event": ["start"], "message": "x"}',  # an "event" that is a list (TypeError: unhashable)
    b'{"event": {"a": 1}, "message": "x"}',
    b'{"event": "no-such-event", "pid": [1], "timestamp": {"a": 1}, "message": "x"}',
    b'{"event": "start", "message": "Starting", "pid": ' + b"[" * 5000 + b"]" * 5000 + b"}",  # RecursionError
    b'{"event": "start", "pid": NaN, "message": "x"}',
    (_CINDER + "There are still " + "9" * 5000 + " volume(s) using the ConfKeyManager's encryption_key_id").encode(),
    b"{" + b'"a":' * 100 + b"1" + b"}" * 100,
])
def test_migrate_status_hostile_log_lines(line):
    from tests.fuzz.targets import migrate_status

    migrate_status.fuzz_one(line + b"\n")


def test_migrate_status_a_count_no_database_holds_is_unknown(tmp_path):
    from migrate import logparse

    log = tmp_path / "ctl-0-cinder-volume.log"
    log.write_text(_CINDER + "Starting migration of ConfKeyManager keys.\n" + _CINDER + "There are still "
                   + "9" * 5000 + " volume(s) using the ConfKeyManager's encryption_key_id\n")
    last = logparse.parse_file(str(log))["last"]
    assert last["started"] and last["volumes_remaining"] is None
