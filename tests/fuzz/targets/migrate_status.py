"""`keytools migrate status LOG`: cinder's and keytools' own log lines (text and JSON) from any node."""

from __future__ import annotations

from tests.fuzz import contract
from tests.helpers.paths import TEST_DATA

_LOGS = sorted((TEST_DATA / "cinder-logs").glob("*.log"))
_JSON = (b'{"timestamp": "2026-11-23 12:45:36.200", "pid": 23845, "level": "INFO", "event": "start", '
         b'"message": "Starting migration of ConfKeyManager keys."}\n'
         b'{"timestamp": "2026-11-23 12:45:37.000", "pid": 23845, "request_id": "req-1", "event": "migrated", '
         b'"message": "Migrated volume 7f11ee19-d49d-4a71-a615-dc020b7ef25e to Barbican secret x"}\n'
         b'{"timestamp": "2026-11-23 12:45:38.000", "pid": 23845, "event": "status_volumes_remaining", '
         b'"message": "There are still 3 volume(s) using the ConfKeyManager\'s encryption_key_id"}\n')
SEEDS: list[bytes] = [p.read_bytes() for p in _LOGS] + [_JSON]


def fuzz_one(data: bytes) -> None:
    log = contract.write("ctl-0-cinder-volume.log", data)
    contract.run(["migrate", "status", "-f", "json", log], json_output=True)
    contract.run(["migrate", "status", log])
