#!/usr/bin/env bash
# Demo: the keytools.openstack Ansible collection retires fixed_key across a real fleet on this
# machine: 5 network namespaces, each with its own sshd and its own config tree at the same path,
# driven by ansible-core over SSH. The inventory gate reads a real Cinder schema; Nova and Glance
# are ignored explicitly (and recorded in every backup). The fleet is removed at the end.
# Needs root, ip, unshare and /usr/sbin/sshd (scripts/install-system-deps.sh); no sandbox.
source "$(dirname "$0")/lib.sh"
WORK="$DEMO_TMP/fleet"
rm -rf "$WORK" && mkdir -p "$WORK"

"$PY" - "$WORK" <<'PYEOF'
import re, subprocess, sys
from pathlib import Path
sys.path.insert(0, ".")
from keytools.cinder_db import sync_schema
from tests.fleet.fleet_helpers import backups, recap, start_fleet
from tests.helpers.netns_fleet import missing_tools

work = Path(sys.argv[1])
if missing_tools():
    print(f"skipped: a netns fleet needs {', '.join(missing_tools())}")
    sys.exit(0)
db = f"sqlite:///{work}/cinder.sqlite"
sync_schema(db)  # cinder-manage db sync: a Cinder with nothing left on the all-zeros key id
fleet, trees = start_fleet(work / "trees", 5, keytools_inventory=repr({"db_url": db}),
                           keytools_ignore_services="['nova','glance']")
try:
    print(f"== fleet: {', '.join(f'{h.name} {h.address} ({h.netns})' for h in fleet.hosts)}")
    book = "keytools.openstack.fixed_key_retire"

    def show(run, pattern):
        for line in run.stdout.splitlines():
            if re.search(pattern, line):
                print("   ", line.strip())

    print("== preview: ansible-playbook keytools.openstack.fixed_key_retire --check --diff")
    run = fleet.ansible(book, "--check", "--diff")
    show(run, r"^[-+]fixed_key|^\s+\"would change|WARNING: not checked")
    assert run.returncode == 0, run.stdout[-2000:]
    print("== retire: batches of 1, 10 %, 25 %; then the post-audit")
    run = fleet.ansible(book)
    assert run.returncode == 0, run.stdout[-2000:]
    show(run, r"^PLAY \[|^\s+\"changed:")
    for name, counts in recap(run.stdout).items():
        print(f"    {name}: changed={counts['changed']} failed={counts['failed']}")
    for h in fleet.hosts:
        print(f"    {h.name}: backups {[b.name for b in backups(h.root)]}")
    print("== rerun: nothing left to do")
    run = fleet.ansible(book)
    assert run.returncode == 0 and all(c["changed"] == 0 for c in recap(run.stdout).values())
    print("    changed=0 on every node")
    for value in trees.secrets:
        assert value not in run.stdout
finally:
    fleet.stop()
    print(f"== fleet removed: leftovers {fleet.leftovers()}")
PYEOF
