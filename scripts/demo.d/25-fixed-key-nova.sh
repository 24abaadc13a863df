#!/usr/bin/env bash
# Demo: retiring fixed_key needs every service: inventory (Cinder + Nova cells) -> migrate both ->
# verify -> retire, which refuses while Nova was not looked at and records an explicit --ignore-service.
source "$(dirname "$0")/lib.sh"
need_sandbox
WORK="$DEMO_TMP/fixed-key-nova"
rm -rf "$WORK" && mkdir -p "$WORK"

echo "== Cinder (cinder-manage db sync) and Nova (nova-manage: api_db sync, map_cell0, create_cell x2, db sync)"
"$PY" - "$WORK" <<'PYEOF' 2> >(grep -v -i eventlet >&2)
import sys
from pathlib import Path
sys.path.insert(0, ".")
from keytools.cinder_db import sync_schema
from tests.helpers.db_seed import nova_two_cells, seed, seed_instances
w = Path(sys.argv[1])
sync_schema(f"sqlite:///{w}/cinder.sqlite")
seed(f"sqlite:///{w}/cinder.sqlite", volumes=2, snapshots_per_volume=1, backups=1)
nova_two_cells(w)
seed_instances(f"sqlite:///{w}/cell1.sqlite", 3, host="cmp-1")
seed_instances(f"sqlite:///{w}/cell2.sqlite", 2, host="cmp-2")
seed_instances(f"sqlite:///{w}/cell2.sqlite", 1, key_id=None)
PYEOF
SRC=(--db-url "sqlite:///$WORK/cinder.sqlite" --nova-config-file "$WORK/nodes/ctl-0/var/lib/config-data/puppet-generated/nova/etc/nova/nova.conf")
STATE=(--state-dir "$WORK/state")

echo "== keytools fixed-key inventory: every all-zeros key id, per service, cell/host and project"
rc=0; "$KEYTOOLS" fixed-key inventory "${SRC[@]}" || rc=$?
echo "exit code: $rc (1 = references remain / a service not seen)"

echo "== keytools fixed-key retire before migrating, without a Nova database: refused, naming what remains and what it could not see"
rc=0; "$KEYTOOLS" fixed-key retire --per-node "$WORK/nodes" --backup-dir "$WORK/backup" \
    --db-url "sqlite:///$WORK/cinder.sqlite" --ignore-service glance || rc=$?
echo "exit code: $rc (6 = refused)"

echo "== keytools migrate run: Cinder and Nova in one run (each its own journal, CAS per row; Nova keys readable"
echo "   by the instance's user, its project's members and the admins: --acl project, Nova's default)"
"$KEYTOOLS" --os-cloud sandbox-demo migrate run "${SRC[@]}" --fixed-key-file "$WORK/fixed_key.hex" "${STATE[@]}" \
    --admin-cloud sandbox-admin --concurrency 2 2> "$WORK/migrate.log"
grep -E "Migrating instance|No instances|No volumes" "$WORK/migrate.log" | head -4

echo "== keytools migrate verify: both services"
"$KEYTOOLS" --os-cloud sandbox-demo migrate verify "${SRC[@]}" --fixed-key-file "$WORK/fixed_key.hex" "${STATE[@]}"

echo "== keytools fixed-key retire: Cinder and Nova clean; Glance ignored explicitly (recorded in the backup)"
"$KEYTOOLS" fixed-key retire --per-node "$WORK/nodes" --backup-dir "$WORK/backup" "${SRC[@]}" --ignore-service glance
grep -h '"ignored_services"' -A 2 "$WORK"/backup/*.json | head -3
