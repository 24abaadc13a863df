#!/usr/bin/env bash
# Demo: keytools audit + fixed-key show/retire/restore on a generated puppet-generated tree.
# Needs no cloud; uses a real Cinder schema (cinder-manage db sync) for the all-zeros check.
source "$(dirname "$0")/lib.sh"
WORK="$DEMO_TMP/config-checks"
rm -rf "$WORK" && mkdir -p "$WORK"

echo "== generate three nodes' /var/lib/config-data/puppet-generated trees (fixed_key still set, a few mistakes)"
"$PY" - "$WORK/nodes" <<'PYEOF'
import sys
from pathlib import Path
sys.path.insert(0, ".")
from tests.config_checks.cc_treegen import NodeSpec, build
build(Path(sys.argv[1]), [NodeSpec("ctl-0", "controller", {"fixed_key", "verify_ssl_off", "swift_bad_order"}),
                          NodeSpec("cmp-0", "compute", {"fixed_key", "rbd"}),
                          NodeSpec("cmp-1", "compute", {"fixed_key"})])
PYEOF
find "$WORK/nodes" -name '*.conf' -print0 | sort -z | xargs -0 sha256sum > "$WORK/before.sha256"

echo "== keytools audit --per-node (text report; exit 1 = findings)"
rc=0; "$KEYTOOLS" audit --per-node "$WORK/nodes" --severity high || rc=$?
echo "exit code: $rc"

echo "== the same as SARIF for a code-scanning dashboard"
rc=0; "$KEYTOOLS" audit --per-node "$WORK/nodes" --format sarif -o "$WORK/audit.sarif" || rc=$?
"$PY" -c "import json,sys; d=json.load(open(sys.argv[1])); print(len(d['runs'][0]['results']), 'SARIF results')" "$WORK/audit.sarif"

echo "== keytools fixed-key show: where fixed_key is set, compared by hash (never printed)"
"$KEYTOOLS" fixed-key show --per-node "$WORK/nodes"

echo "== a Cinder database with one volume still on the all-zeros key id"
DB="sqlite:///$WORK/cinder.sqlite"
"$PY" - "$DB" <<'PYEOF'
import sys, uuid
import sqlalchemy as sa
from keytools import cinder_db
cinder_db.sync_schema(sys.argv[1])
with sa.create_engine(sys.argv[1]).begin() as c:
    c.execute(sa.text("INSERT INTO volumes (id, volume_type_id, encryption_key_id, deleted) VALUES (:i, :t, :k, 0)"),
              {"i": str(uuid.uuid4()), "t": str(uuid.uuid4()), "k": cinder_db.FIXED_KEY_ID})
PYEOF

echo "== fixed-key retire refuses while that row exists (exit 6)"
rc=0; "$KEYTOOLS" fixed-key retire --per-node "$WORK/nodes" --backup-dir "$WORK/backup" --db-url "$DB" --ignore-service nova,glance || rc=$?
echo "exit code: $rc"

echo "== (migration done: the row now points at a Barbican secret)"
"$PY" - "$DB" <<'PYEOF'
import sys, uuid
import sqlalchemy as sa
with sa.create_engine(sys.argv[1]).begin() as c:
    c.execute(sa.text("UPDATE volumes SET encryption_key_id = :k"), {"k": str(uuid.uuid4())})
PYEOF

echo "== fixed-key retire --dry-run shows the diff, values masked"
"$KEYTOOLS" fixed-key retire --per-node "$WORK/nodes" --db-url "$DB" --ignore-service nova,glance --dry-run > "$WORK/dry-run.diff"
head -12 "$WORK/dry-run.diff"; tail -1 "$WORK/dry-run.diff"

echo "== fixed-key retire: 0600 backup of each value, crudini --del, atomic swap"
"$KEYTOOLS" fixed-key retire --per-node "$WORK/nodes" --backup-dir "$WORK/backup" --db-url "$DB" --ignore-service nova,glance
ls -l "$WORK/backup"
"$KEYTOOLS" audit --per-node "$WORK/nodes" --rule fixed-key-present && echo "audit: no fixed_key left"

echo "== fixed-key restore puts the files back byte for byte"
"$KEYTOOLS" fixed-key restore --backup-dir "$WORK/backup"
sha256sum --quiet -c "$WORK/before.sha256" && echo "all files byte-identical to before retire"
