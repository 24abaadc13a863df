#!/usr/bin/env bash
# Glance image signing: the publisher's flow against the sandbox's real glance-api.
source "$(dirname "$0")/lib.sh"
need_sandbox
KT=("$KEYTOOLS" --os-cloud sandbox-demo)
W="$DEMO_TMP/sign-verify"
mkdir -p "$W"

echo "== start glance-api in the sandbox (keystone auth, Barbican key manager, file store)"
"$KEYTOOLS" sandbox up --state-dir "$DEMO_STATE" --with glance >/dev/null

echo "== keytools cert create: RSA 3072 key (0600) + self-signed signing certificate"
"$KEYTOOLS" cert create --out "$W/pki" --days 30 --cn "demo publisher" --force -f json

echo "== keytools cert store: certificate secret in Barbican (prints its UUID)"
CERT_UUID=$("${KT[@]}" cert store "$W/pki/signing_cert.pem")
echo "$CERT_UUID"
"${KT[@]}" cert list

echo "== keytools sign --upload: stream-sign a 32 MiB image, create it in Glance (Glance verifies)"
head -c $((32 * 1024 * 1024)) /dev/urandom > "$W/demo.raw"
OUT=$("${KT[@]}" sign "$W/demo.raw" --key "$W/pki/signing_key.pem" --cert-uuid "$CERT_UUID" \
      --upload --name keytools-demo-signed -f json)
echo "$OUT"
IMAGE_ID=$(printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["image"]["id"])')

echo "== keytools verify --image-id: download streaming, verify, and check trust like Nova"
"${KT[@]}" verify --image-id "$IMAGE_ID" --trusted-cert "$CERT_UUID"

echo "== tampered copy: keytools verify says INVALID (exit 1)"
printf '%s' "$OUT" | "$PY" -c 'import json,sys; print(json.dumps(json.load(sys.stdin)["properties"]))' > "$W/props.json"
"$PY" - "$W/demo.raw" "$W/tampered.raw" <<'PY'
import sys
data = bytearray(open(sys.argv[1], "rb").read())
data[4096] ^= 0x01  # flip one bit
open(sys.argv[2], "wb").write(data)
PY
set +e
"${KT[@]}" verify "$W/tampered.raw" --properties "$W/props.json"
rc=$?
set -e
echo "exit code: $rc"
[ "$rc" -eq 1 ]

echo "== tampered upload with the openstack CLI and keytools' --format glance-args: glance-api answers HTTP 400"
ARGS=$("${KT[@]}" sign "$W/demo.raw" --key "$W/pki/signing_key.pem" --cert-uuid "$CERT_UUID" -f glance-args)
OPENSTACK="$(dirname "$KEYTOOLS")/openstack"
set +e
eval "\"$OPENSTACK\"" --os-cloud sandbox-demo image create --file "\"$W/tampered.raw\"" --disk-format raw \
    --container-format bare "$ARGS" keytools-demo-tampered
rc=$?
set -e
echo "exit code: $rc (Glance refused the data: Signature verification failed)"
[ "$rc" -ne 0 ]
