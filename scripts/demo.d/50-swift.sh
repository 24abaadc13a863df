#!/usr/bin/env bash
# Swift at-rest encryption with root secrets in Barbican (issue 7): keytools' keymaster in a real proxy.
set -euo pipefail

echo "== a one-replica Swift joins the sandbox: memcached, account/container/object servers, and a"
echo "   proxy whose pipeline ends 'keymaster encryption proxy-logging proxy-server' (keytools' keymaster)"
"$KEYTOOLS" sandbox up --state-dir "$DEMO_STATE" --with swift -f json >/dev/null
PROXY_CONF="$DEMO_STATE/swift/proxy-server.conf"
grep '^pipeline' "$PROXY_CONF"
echo "   the keymaster's own file (0600, kms_keymaster option names; password elided):"
grep -v '^password' "$DEMO_STATE/swift/keymaster.conf"

echo "== check the proxy's pipeline and load its root secret with the keymaster's credentials"
"$KEYTOOLS" swift check "$PROXY_CONF"

echo "== the proxy logged the key id and a fingerprint, loaded once, never the key"
grep 'loaded root secret' "$DEMO_STATE/logs/swift.log" | tail -1

echo "== demo stores an object through the documented openstack CLI and reads it back"
printf 'PLAINTEXT-DEMO-MARKER: swift at-rest encryption\n' > "$DEMO_TMP/hello.txt"
OS="$(dirname "$PY")/openstack --os-cloud sandbox-demo"
(cd "$DEMO_TMP" && $OS container create demo-encrypted -f value -c container && \
  $OS object create demo-encrypted hello.txt -f value -c object && \
  $OS object save demo-encrypted hello.txt --file -)

echo "== on disk the object server holds ciphertext: the marker is nowhere under the devices dir"
if grep -rq 'PLAINTEXT-DEMO-MARKER' "$DEMO_STATE/swift/devices"; then
  echo "plaintext found on disk!"; exit 1
else
  echo "no plaintext on disk"
fi

echo "== rotation step 1: order a new 256-bit AES key (readable by the swift user) and print the lines"
"$KEYTOOLS" --os-cloud sandbox-admin swift new-key --proxy-conf "$PROXY_CONF" --acl-user swift

echo "== a pipeline with encryption disabled is reported (exit 1)"
sed 's/^\[filter:encryption\]$/[filter:encryption]\ndisable_encryption = true/' "$PROXY_CONF" > "$DEMO_TMP/proxy-off.conf"
"$KEYTOOLS" swift check "$DEMO_TMP/proxy-off.conf" -f json | "$PY" -c \
  'import json,sys; [print(c["check"], "->", c["message"]) for c in json.load(sys.stdin)["checks"] if not c["ok"]]' \
  || true
"$KEYTOOLS" swift check "$DEMO_TMP/proxy-off.conf" >/dev/null 2>&1 || echo "(exit $?)"
