#!/usr/bin/env bash
# LUKS volume types (issue 8): the documented LuksEncryptor-Template-256 through a real cinder-api.
source "$(dirname "$0")/lib.sh"
need_sandbox

echo "== cinder-api joins the sandbox (Keystone auth, Barbican as key manager, no volume backend)"
"$KEYTOOLS" sandbox up --state-dir "$DEMO_STATE" --with cinder >/dev/null

echo "== create the documented template type as admin (luks, aes-xts-plain64, 256, front-end)"
"$KEYTOOLS" --os-cloud sandbox-admin volume-type create --template 256

echo "== rerun: idempotent, reported as unchanged (exit 0)"
"$KEYTOOLS" --os-cloud sandbox-admin volume-type create --template 256 -f json | "$PY" -c \
  'import json,sys; r=json.load(sys.stdin); print(r["name"], "->", r["action"])'

echo "== validation before any API call: aes-xts with a 128-bit key (exit 2)"
"$KEYTOOLS" --os-cloud sandbox-admin volume-type create LUKS-bad --key-size 128 || echo "(exit $?)"

echo "== same name, another spec: a conflict (exit 1) unless --update"
"$KEYTOOLS" --os-cloud sandbox-admin volume-type create LuksEncryptor-Template-256 --key-size 512 || echo "(exit $?)"

echo "== demo (creator) creates an encrypted volume: Cinder stores its key in Barbican as demo"
"$PY" - <<'PYEOF'
from keytools import auth
from keytools.volume_types import cinder_api
cinder = cinder_api.client(auth.session_from_cloud("sandbox-demo"))
vol = cinder.volumes.create(1, volume_type="LuksEncryptor-Template-256", name="demo-luks-volume")
vol = cinder.volumes.get(vol.id)
print(f"volume {vol.id}: encrypted={vol.encrypted} key id={vol.encryption_key_id} status={vol.status}")
PYEOF

echo "== encrypted types, with their spec columns"
"$KEYTOOLS" --os-cloud sandbox-admin volume-type list --encrypted

echo "== check: specs sane, key manager is Barbican, admin may create encrypted volumes"
"$KEYTOOLS" --os-cloud sandbox-admin volume-type check LuksEncryptor-Template-256

echo "== the type is now in use: Cinder refuses to change its encryption (exit 6)"
"$KEYTOOLS" --os-cloud sandbox-admin volume-type create LuksEncryptor-Template-256 --key-size 512 --update \
  || echo "(exit $?)"
