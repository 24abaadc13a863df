#!/usr/bin/env bash
# Barbican PKCS#11 demo: a second sandbox whose Barbican has a software and a pkcs11 store (a private
# SoftHSM2 token), secrets on simple_crypto in three projects, then moved into the HSM in place.
# Its own state dir: the main sandbox keeps its single simple_crypto store for the other steps.
source "$(dirname "$0")/lib.sh"
if ! command -v softhsm2-util >/dev/null 2>&1; then
  echo "== skipped: softhsm2 is not installed (scripts/install-system-deps.sh)"; exit 0
fi
HSM_STATE="$DEMO_TMP/hsm-sandbox"
trap '"$KEYTOOLS" sandbox down --purge --state-dir "$HSM_STATE" >/dev/null 2>&1 || true' EXIT

echo "== keytools sandbox up --with hsm (software + pkcs11 stores, pkcs11 the global default)"
"$KEYTOOLS" sandbox up --with hsm --state-dir "$HSM_STATE" >/dev/null 2>&1
eval "$("$KEYTOOLS" sandbox env --state-dir "$HSM_STATE")"
echo "   SOFTHSM2_CONF=$SOFTHSM2_CONF"
CONF="$HSM_STATE/barbican/.barbican/barbican.conf"

echo "== secrets, an ordered key, an ACL, consumers and a container on simple_crypto (3 projects)"
"$PY" - "$HSM_STATE" <<'PYEOF'
import json, sys
from keytools.sandbox.state import StateDir
from tests.conftest import Sandbox
from tests.barbican_backup import store_helpers as h
sb = Sandbox(StateDir(sys.argv[1]))
seeded = h.seed(sb, per_project=3)
with open(sys.argv[1] + "/demo-seeded.json", "w") as out:
    json.dump(seeded.secrets, out)
print("   ", len(seeded.all_ids()), "secrets; one more soft-deleted")
PYEOF

echo "== keytools barbican store status"
"$KEYTOOLS" barbican store status --config "$CONF" --os-cloud sandbox-admin 2>/dev/null

echo "== a wrong PIN is refused once, never retried (exit 5)"
sed 's/^login = .*/login = 00000000/' "$CONF" > "$DEMO_TMP/wrong-pin.conf"
chmod 600 "$DEMO_TMP/wrong-pin.conf"
"$KEYTOOLS" barbican store migrate --to pkcs11 --config "$DEMO_TMP/wrong-pin.conf" || echo "   exit $?"
rm -f "$DEMO_TMP/wrong-pin.conf"

echo "== migrate --dry-run, then the move (one transaction per secret, read back through p11 alone)"
"$KEYTOOLS" barbican store migrate --to pkcs11 --config "$CONF" --dry-run 2>/dev/null
"$KEYTOOLS" barbican store migrate --to pkcs11 --config "$CONF" --os-cloud sandbox-admin 2> >(grep -v " INFO keytools.barbican.store " >&2)

echo "== the same ids, the same payloads, through the API"
"$PY" - "$HSM_STATE" <<'PYEOF'
import json, sys
from keytools.sandbox.state import StateDir
from tests.conftest import Sandbox
from tests.barbican_backup import store_helpers as h
sb = Sandbox(StateDir(sys.argv[1]))
seeded = h.Seeded(secrets=json.load(open(sys.argv[1] + "/demo-seeded.json")))
expected = {i: fp for by in seeded.secrets.values() for i, fp in by.items()}
after = h.read_all(sb, seeded)
plugins = set(h.plugin_of(sb, seeded.all_ids()).values())
print("   ", len(after), "secrets read back; fingerprints equal:", after == expected, "; plugins:", plugins)
assert after == expected and plugins == {"P11CryptoPlugin"}
PYEOF
"$KEYTOOLS" barbican store status --config "$CONF" 2>/dev/null
