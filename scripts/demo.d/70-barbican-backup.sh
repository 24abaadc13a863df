#!/usr/bin/env bash
# Barbican backup/restore demo: encrypted archive of KEK + database, a refused bad input, the drill.
source "$(dirname "$0")/lib.sh"
need_sandbox

CONF="$DEMO_STATE/barbican/.barbican/barbican.conf"
ARCHIVE="$DEMO_TMP/barbican-demo.ktbak"
export DEMO_BK_PASS="demo passphrase $(date +%s)-$RANDOM"
rm -f "$ARCHIVE"

echo "== store a secret to protect"
REF=$("$PY" - <<'EOF'
from keytools import auth, keymanager
client = keymanager.barbican_client(auth.session_from_cloud("sandbox-admin"))
print(client.secrets.create(name="demo-backup", payload="demo payload 42").store())
EOF
)
echo "   $REF"

echo "== keytools barbican backup (passphrase from an environment variable, never argv)"
"$KEYTOOLS" barbican backup --config "$CONF" --out "$ARCHIVE" --passphrase-env DEMO_BK_PASS --format json \
    2>/dev/null | "$PY" -c 'import json,sys; d=json.load(sys.stdin); print("   ", d["archive"], d["bytes"], "bytes,", d["db_dump"], d["counts"], d["kek_fingerprint"])'
ls -l "$ARCHIVE"

echo "== the KEK and the payload are not in the archive in clear"
KEK=$(crudini --get "$CONF" simple_crypto_plugin kek 2>/dev/null || sed -n 's/^kek *= *//p' "$CONF")
if grep -qF -e "$KEK" -e "demo payload 42" "$ARCHIVE"; then echo "   FOUND IN CLEAR"; exit 1; else echo "   not found (good)"; fi

echo "== inspect: the manifest is readable without the passphrase"
"$KEYTOOLS" barbican inspect "$ARCHIVE" 2>/dev/null | grep -E "created_at|db_engine|counts|kek_fingerprint"

echo "== a wrong passphrase is refused (exit 2), nothing changes"
printf 'not the right passphrase\n' > "$DEMO_TMP/wrong.pass"; chmod 600 "$DEMO_TMP/wrong.pass"
"$KEYTOOLS" barbican restore "$ARCHIVE" --config "$CONF" --passphrase-file "$DEMO_TMP/wrong.pass" || echo "   exit $?"

echo "== delete the secret, then restore the archive into the running Barbican"
"$PY" -c "from keytools import auth, keymanager; keymanager.barbican_client(auth.session_from_cloud('sandbox-admin')).secrets.delete('$REF')"
"$KEYTOOLS" barbican restore "$ARCHIVE" --config "$CONF" --passphrase-env DEMO_BK_PASS --force 2>/dev/null \
    | grep -E "kek |database_action"
"$PY" - "$REF" <<'EOF'
import sys
from keytools import auth, keymanager
client = keymanager.barbican_client(auth.session_from_cloud("sandbox-admin"))
print("   payload after restore:", client.secrets.get(sys.argv[1]).payload)
client.secrets.delete(sys.argv[1])
EOF

echo "== the restore drill: into a scratch Barbican on 127.0.0.1, production only read"
"$KEYTOOLS" barbican drill --config "$CONF" 2>/dev/null

echo "== the same from the archive alone (what you would do on another machine)"
"$KEYTOOLS" barbican drill --archive "$ARCHIVE" --passphrase-env DEMO_BK_PASS --sample 2 --seed 1 2>/dev/null \
    | tail -1

echo "== the old in-place drill (rewinds the live database: test clouds only)"
"$KEYTOOLS" --os-cloud sandbox-admin barbican drill --in-place --config "$CONF" --yes 2>/dev/null | tail -1

echo "== KEK rotation on a copy of this Barbican (two node configs, one database copy)"
ROT="$DEMO_TMP/kek-rotation"; rm -rf "$ROT"; mkdir -p "$ROT"
DB=$(sed -n 's#^connection *= *sqlite:///##p' "$CONF")
cp "$DB" "$ROT/barbican.db"
for n in node1 node2; do
    sed "s#^connection *=.*#connection = sqlite:///$ROT/barbican.db#" "$CONF" > "$ROT/$n.conf"; chmod 600 "$ROT/$n.conf"
done
"$KEYTOOLS" barbican kek status --config "$ROT/node1.conf" --config "$ROT/node2.conf" 2>/dev/null
"$KEYTOOLS" barbican kek rotate --config "$ROT/node1.conf" --config "$ROT/node2.conf" \
    --backup-out "$ROT/pre-rotation.ktbak" --passphrase-env DEMO_BK_PASS --until stage 2>/dev/null | tail -1
echo "   (restart Barbican on every node here; then the same command resumes)"
"$KEYTOOLS" barbican kek rotate --config "$ROT/node1.conf" --config "$ROT/node2.conf" \
    --backup-out "$ROT/pre-rotation.ktbak" --passphrase-env DEMO_BK_PASS --sample 3 2>/dev/null
