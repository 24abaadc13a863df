#!/usr/bin/env bash
# Swift at-rest encryption with root secrets in Barbican (issue 7): keytools' keymaster in a real proxy.
source "$(dirname "$0")/lib.sh"
need_sandbox

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
"$KEYTOOLS" --os-cloud sandbox-admin swift new-key --proxy-conf "$PROXY_CONF" --acl-user swift -f json \
  > "$DEMO_TMP/new-key.json"
"$PY" -c 'import json,sys; print("\n".join(json.load(open(sys.argv[1]))["config_lines"]))' "$DEMO_TMP/new-key.json"
NEW_KEY=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["keys"][0]["key_id"])' "$DEMO_TMP/new-key.json")

echo "== ending the rotation (issue 16): a copy of the proxy config with both keys, the new one active"
ROT="$DEMO_TMP/rotated"; mkdir -p "$ROT"; chmod 700 "$ROT"
cp "$DEMO_STATE/swift/keymaster.conf" "$ROT/keymaster.conf"
printf 'key_id_2 = %s\nactive_root_secret_id = 2\n' "$NEW_KEY" >> "$ROT/keymaster.conf"
sed "s#^keymaster_config_path = .*#keymaster_config_path = $ROT/keymaster.conf#" "$PROXY_CONF" > "$ROT/proxy-server.conf"
chmod 600 "$ROT"/*.conf
ACCOUNT="AUTH_$("$(dirname "$PY")/openstack" --os-cloud sandbox-demo token issue -f value -c project_id)"
echo "   swift check warns: the old key_id is not active and key-usage never counted it"
"$KEYTOOLS" swift check "$ROT/proxy-server.conf" -f json | "$PY" -c \
  'import json,sys; [print("  ", c["check"], "->", c["message"]) for c in json.load(sys.stdin)["checks"] if c["check"].startswith("SWIFT007")]'
echo "== key-usage: which root secret each object of $ACCOUNT is encrypted under (read raw, nothing decrypted)"
"$KEYTOOLS" swift key-usage --proxy-config "$ROT/proxy-server.conf" --account "$ACCOUNT" --by-container
echo "== retire-key refuses while objects still use key_id (exit 6)"
"$KEYTOOLS" swift retire-key key_id --proxy-config "$ROT/proxy-server.conf" --account "$ACCOUNT" >/dev/null \
  || echo "(exit $?)"
echo "== reencrypt: dry run, then server-side copy of each object onto itself under key_id_2"
"$KEYTOOLS" swift reencrypt --proxy-config "$ROT/proxy-server.conf" --account "$ACCOUNT" --from-key-id key_id --dry-run
"$KEYTOOLS" swift reencrypt --proxy-config "$ROT/proxy-server.conf" --account "$ACCOUNT" --from-key-id key_id --rate-limit 50
"$KEYTOOLS" swift key-usage --proxy-config "$ROT/proxy-server.conf" --account "$ACCOUNT"
echo "   (a real rollout gives every proxy the rotated config, stage 1 and 2, before reencrypt; this demo"
echo "   rotates a copy of the config only: hello.txt now needs key_id_2, which the sandbox proxy lacks)"
echo "== retire-key now prints the key lines without key_id, and edits a copy of the file with --config"
"$KEYTOOLS" swift retire-key key_id --proxy-config "$ROT/proxy-server.conf" --account "$ACCOUNT"
"$KEYTOOLS" swift retire-key key_id --proxy-config "$ROT/proxy-server.conf" --account "$ACCOUNT" --config
grep '^key_id\|^active' "$ROT/keymaster.conf"; ls "$ROT" | grep '\.bak$'

echo "== a pipeline with encryption disabled is reported (exit 1)"
sed 's/^\[filter:encryption\]$/[filter:encryption]\ndisable_encryption = true/' "$PROXY_CONF" > "$DEMO_TMP/proxy-off.conf"
"$KEYTOOLS" swift check "$DEMO_TMP/proxy-off.conf" -f json | "$PY" -c \
  'import json,sys; [print(c["check"], "->", c["message"]) for c in json.load(sys.stdin)["checks"] if not c["ok"]]' \
  || true
"$KEYTOOLS" swift check "$DEMO_TMP/proxy-off.conf" >/dev/null 2>&1 || echo "(exit $?)"
