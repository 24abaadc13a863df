#!/usr/bin/env bash
# Demo: the whole retirement over the three services that handed out ConfKeyManager's id:
# inventory (Cinder, Nova cells, Glance images) -> migrate all three -> verify, with --luks proof
# that each volume's key opens its LUKS header -> inventory clean -> retire.
source "$(dirname "$0")/lib.sh"
need_sandbox
WORK="$DEMO_TMP/fixed-key-all"
rm -rf "$WORK" && mkdir -p "$WORK/devs"
"$KEYTOOLS" sandbox up --state-dir "$DEMO_STATE" --with glance >/dev/null

echo "== Cinder (cinder-manage), Nova (nova-manage, two cells), Glance images in two projects, LUKS headers"
"$PY" - "$WORK" "$DEMO_STATE" <<'PYEOF' 2> >(grep -v -i eventlet >&2)
import subprocess, shutil, sys
from pathlib import Path
sys.path.insert(0, ".")
from keytools.cinder_db import sync_schema
from keytools.sandbox import bootstrap
from keytools.sandbox.state import StateDir
from tests.helpers.db_seed import nova_two_cells, seed, seed_instances
w, state = Path(sys.argv[1]), StateDir(sys.argv[2])
db = f"sqlite:///{w}/cinder.sqlite"
sync_schema(db)
vols = seed(db, volumes=3, snapshots_per_volume=1, backups=1).volumes
key = nova_two_cells(w)
seed_instances(f"sqlite:///{w}/cell1.sqlite", 2, host="cmp-1")
seed_instances(f"sqlite:///{w}/cell2.sqlite", 1, host="cmp-2")
cfg = state.load()
for project, names in (("demo", ("upload-of-vol-a", "upload-of-vol-b")), ("service", ("golden-encrypted",))):
    s = bootstrap.admin_session(cfg, project)
    base = s.get_endpoint(service_type="image", interface="public").rstrip("/")
    for name in names:
        s.post(f"{base}/v2/images", json={"name": name, "disk_format": "raw", "container_format": "bare",
               "cinder_encryption_key_id": "00000000-0000-0000-0000-000000000000",
               "cinder_encryption_key_deletion_policy": "on_image_deletion"})
if shutil.which("cryptsetup"):  # each volume's device, LUKS-formatted with hex(fixed_key) as os-brick does
    for n, vid in enumerate(vols):
        dev = w / "devs" / f"volume-{vid}"
        with open(dev, "wb") as f:
            f.truncate(18 * 1024 * 1024)
        subprocess.run(["cryptsetup", "luksFormat", "-q", "--type", "luks2" if n else "luks1", "--pbkdf",
                        "pbkdf2", "--pbkdf-force-iterations", "1000", "--key-file", "-", str(dev)],
                       input=key.encode(), check=True, capture_output=True)
PYEOF
SRC=(--db-url "sqlite:///$WORK/cinder.sqlite"
     --nova-config-file "$WORK/nodes/ctl-0/var/lib/config-data/puppet-generated/nova/etc/nova/nova.conf"
     --glance-cloud sandbox-admin)
MIG=(--os-cloud sandbox-demo migrate)
KEY=(--fixed-key-file "$WORK/fixed_key.hex" --state-dir "$WORK/state")

echo "== keytools fixed-key inventory: Cinder, Nova (every cell) and Glance (every project, as admin)"
rc=0; "$KEYTOOLS" fixed-key inventory "${SRC[@]}" || rc=$?
echo "exit code: $rc (1 = references remain)"

echo "== keytools migrate plan: the Glance part says who will be able to read each image's key"
"$KEYTOOLS" "${MIG[@]}" plan --service glance --glance-cloud sandbox-admin "${KEY[@]}" | grep -E "^- would|Glance:"

echo "== keytools migrate run: all three services, one journal each"
"$KEYTOOLS" "${MIG[@]}" run "${SRC[@]}" "${KEY[@]}" --admin-cloud sandbox-admin --concurrency 2 2> "$WORK/migrate.log"
grep -E "Migrating image|No volumes|No instances|No images" "$WORK/migrate.log" | head -5

echo "== keytools migrate verify --luks: secrets hold fixed_key, ACLs name the readers, keys open the headers"
if command -v cryptsetup >/dev/null; then
    "$KEYTOOLS" "${MIG[@]}" verify "${SRC[@]}" "${KEY[@]}" --luks "$WORK/devs/volume-{id}"
else
    echo "(cryptsetup not installed: scripts/install-system-deps.sh; verifying without --luks)"
    "$KEYTOOLS" "${MIG[@]}" verify "${SRC[@]}" "${KEY[@]}"
fi

echo "== keytools fixed-key inventory: nothing left anywhere, every service seen"
"$KEYTOOLS" fixed-key inventory "${SRC[@]}"

echo "== keytools fixed-key retire: now allowed; fixed_key backed up (0600) and removed"
"$KEYTOOLS" fixed-key retire --per-node "$WORK/nodes" --backup-dir "$WORK/backup" "${SRC[@]}"
grep -c fixed_key "$WORK/nodes/ctl-0/var/lib/config-data/puppet-generated/nova/etc/nova/nova.conf" || true
