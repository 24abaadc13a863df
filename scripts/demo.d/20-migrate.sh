#!/usr/bin/env bash
# Demo: the whole fixed_key -> Barbican procedure with keytools migrate, against the running sandbox:
# plan, a 403 stop without creator, run with --grant-creator, verify, status (with logs), finish.
source "$(dirname "$0")/lib.sh"
need_sandbox
WORK="$DEMO_TMP/migrate"
rm -rf "$WORK" && mkdir -p "$WORK"
DB="sqlite:///$WORK/cinder.sqlite"

echo "== a Cinder database made by cinder-manage db sync, with ConfKeyManager-era rows on two hosts"
"$PY" - "$DB" "$WORK" "$DEMO_STATE" <<'PYEOF'
import secrets, sys
from pathlib import Path
sys.path.insert(0, ".")
from keytools.cinder_db import sync_schema
from keytools.sandbox import configs
from keytools.sandbox.state import StateDir
from tests.helpers.db_seed import seed
db, work, state = sys.argv[1], Path(sys.argv[2]), StateDir(sys.argv[3])
sync_schema(db)
seed(db, volumes=4, snapshots_per_volume=1, host="ctl-0@lvm#lvm", backups=2, backup_host="ctl-0")
seed(db, volumes=2, host="ctl-1@lvm#lvm")
auth = configs.authtoken_section(state.load(), "cinder")
conf = work / "cinder.conf"
conf.write_text("[database]\nconnection = %s\n\n[key_manager]\nbackend = barbican\nfixed_key = %s\n\n"
                "[keystone_authtoken]\n%s\n" % (db, secrets.token_hex(32),
                                                "\n".join(f"{k} = {v}" for k, v in auth.items())))
conf.chmod(0o600)
PYEOF
CONF="$WORK/cinder.conf"
STATE=(--state-dir "$WORK/state")

echo "== keytools migrate plan: what would happen, nothing changes"
"$KEYTOOLS" migrate plan --config-file "$CONF" "${STATE[@]}"

echo "== keytools migrate run with cinder's own credentials (no creator role yet): stops before any change"
rc=0; "$KEYTOOLS" migrate run --config-file "$CONF" "${STATE[@]}" || rc=$?
echo "exit code: $rc (5 = forbidden)"

echo "== keytools migrate run --grant-creator: grant the role with admin credentials, then migrate"
"$KEYTOOLS" migrate run --config-file "$CONF" "${STATE[@]}" --concurrency 2 \
    --grant-creator --admin-cloud sandbox-admin 2> "$WORK/ctl-0-keytools.log"
grep -E "Granted|Starting|Migrating VolumeMigration|There are still|No volumes|No backups" "$WORK/ctl-0-keytools.log" | head -8

echo "== keytools migrate verify: every migrated secret exists, holds fixed_key, owner may read it"
"$KEYTOOLS" migrate verify --config-file "$CONF" "${STATE[@]}"

echo "== keytools migrate status: remaining rows + per-host summary from cinder's and our logs"
"$KEYTOOLS" migrate status --config-file "$CONF" --log "$WORK/ctl-0-keytools.log" \
    --log ctl-0=tests/data/cinder-logs/ctl-0-cinder-backup.log

echo "== keytools migrate finish --revoke-creator: all rows done, remove the temporary role"
"$KEYTOOLS" migrate finish --config-file "$CONF" "${STATE[@]}" --revoke-creator --admin-cloud sandbox-admin
echo "== the journal (0600) records ids and refs, never key bytes"
ls -l "$WORK/state"
