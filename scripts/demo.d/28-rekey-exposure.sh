#!/usr/bin/env bash
# Demo: what fixed_key still opens after a migration (fixed-key exposure), and re-keying the volumes
# (migrate rekey) on real LUKS1/LUKS2 headers in image files, then the exposure again.
source "$(dirname "$0")/lib.sh"
need_sandbox
command -v cryptsetup >/dev/null || { echo "cryptsetup not installed: step skipped"; exit 0; }
WORK="$DEMO_TMP/rekey"
rm -rf "$WORK" && mkdir -p "$WORK/devs"
DB="sqlite:///$WORK/cinder.sqlite"

echo "== a Cinder database (cinder-manage db sync): 4 volumes with a snapshot each, 2 backups, all on the"
echo "   all-zeros id; each volume's LUKS header (2 LUKS1, 2 LUKS2) made with the hex of fixed_key"
"$PY" - "$DB" "$WORK" "$DEMO_STATE" <<'PYEOF'
import secrets, subprocess, sys
from pathlib import Path
sys.path.insert(0, ".")
from keytools.cinder_db import sync_schema
from keytools.sandbox import configs
from keytools.sandbox.state import StateDir
from tests.helpers.db_seed import seed
from tests.migrate.luks_helpers import encrypted_type, luks_format, update
db, work, state = sys.argv[1], Path(sys.argv[2]), StateDir(sys.argv[3])
sync_schema(db)
rows = seed(db, volumes=4, snapshots_per_volume=1, backups=2)
key = secrets.token_hex(32)
t256, t512 = encrypted_type(db, 256), encrypted_type(db, 512)
for i, vid in enumerate(rows.volumes):
    update(db, "volumes", vid, volume_type_id=t512 if i % 2 else t256)
    luks_format(work / "devs" / f"volume-{vid}", key.encode(), "luks1" if i < 2 else "luks2")
auth = configs.authtoken_section(state.load(), "cinder")
conf = work / "cinder.conf"
conf.write_text("[database]\nconnection = %s\n\n[key_manager]\nbackend = barbican\nfixed_key = %s\n\n"
                "[keystone_authtoken]\n%s\n" % (db, key, "\n".join(f"{k} = {v}" for k, v in auth.items())))
conf.chmod(0o600)
PYEOF
CONF="$WORK/cinder.conf"
STATE=(--state-dir "$WORK/state")
LUKS=(--luks "$WORK/devs/volume-{id}")
FAST=(--pbkdf pbkdf2 --pbkdf-force-iterations 1000)  # demo only: production keeps cryptsetup's argon2id

echo "== keytools migrate run: every row gets its own secret... holding fixed_key's bytes"
"$KEYTOOLS" migrate run --config-file "$CONF" "${STATE[@]}" --concurrency 2 \
    --grant-creator --admin-cloud sandbox-admin 2>/dev/null | grep -E "volumes migrated|backups migrated"

echo "== keytools fixed-key exposure: what fixed_key still opens (exit 1 while anything does)"
rc=0; "$KEYTOOLS" fixed-key exposure --config-file "$CONF" --ignore-service nova,glance || rc=$?
echo "exit code: $rc"

echo "== keytools migrate rekey --dry-run: which volumes, which headers, free keyslots"
"$KEYTOOLS" migrate rekey --config-file "$CONF" "${STATE[@]}" "${LUKS[@]}" --dry-run 2>/dev/null

echo "== keytools migrate rekey --reencrypt-data: new key per volume, old keyslots out (LUKS2: new volume key)"
"$KEYTOOLS" migrate rekey --config-file "$CONF" "${STATE[@]}" "${LUKS[@]}" "${FAST[@]}" --reencrypt-data 2>/dev/null

echo "== fixed_key opens no volume header any more"
"$PY" - "$CONF" "$WORK/devs" <<'PYEOF'
import subprocess, sys
from pathlib import Path
sys.path.insert(0, ".")
from keytools.fixed_key import from_config
key = from_config(sys.argv[1]).hex().encode()
for dev in sorted(Path(sys.argv[2]).iterdir()):
    rc = subprocess.run(["cryptsetup", "open", "--test-passphrase", "--key-file", "-", str(dev)], input=key,
                        capture_output=True).returncode
    print(f"{dev.name}: fixed_key {'OPENS' if rc == 0 else 'does not open'}")
PYEOF

echo "== keytools fixed-key exposure again: only the snapshots and backups (old header copies) are left"
rc=0; "$KEYTOOLS" fixed-key exposure --config-file "$CONF" --ignore-service nova,glance || rc=$?
echo "exit code: $rc (1 until those are deleted or re-made)"

"$KEYTOOLS" migrate finish --config-file "$CONF" "${STATE[@]}" --revoke-creator --admin-cloud sandbox-admin \
    | grep -E "Role|Next" || true
