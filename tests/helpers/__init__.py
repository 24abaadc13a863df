"""Test code shared by more than one test area (and the benchmarks): the keytools CLI runners,
the HTTP fault proxy, the kill -9 helpers and the Cinder seed data. Area-specific helpers stay
next to their tests (tests/<area>/*_helpers.py)."""
