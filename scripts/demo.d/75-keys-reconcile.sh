#!/usr/bin/env bash
# Demo: every key accounted for. Volume keys made through castellan as Cinder makes them (orders),
# one volume deleted the way Cinder deletes it (key deleted, order left), one key deleted by hand
# under a live volume, one key nothing uses; then keys reconcile, a quarantine and its release.
source "$(dirname "$0")/lib.sh"
need_sandbox
WORK="$DEMO_TMP/keys-reconcile"
rm -rf "$WORK" && mkdir -p "$WORK"
"$KEYTOOLS" sandbox up --state-dir "$DEMO_STATE" >/dev/null

echo "== castellan volume keys (project demo), Cinder rows (cinder-manage schema), a Swift proxy config"
"$PY" - "$WORK" "$DEMO_STATE" <<'PYEOF' 2> >(grep -v -i -E "eventlet|order deletion|temporary order" >&2)
import sys
from pathlib import Path
sys.path.insert(0, ".")
from castellan import key_manager, options
from oslo_config import cfg
from oslo_context import context
from keytools import auth
from keytools.cinder_db import sync_schema
from keytools.sandbox import configs
from keytools.sandbox.state import StateDir
from tests.helpers.db_seed import seed
w, state = Path(sys.argv[1]), StateDir(sys.argv[2])
conf = state.load()
db = f"sqlite:///{w}/cinder.sqlite"
sync_schema(db)
import os
os.environ["OS_CLIENT_CONFIG_FILE"] = str(state.clouds_yaml)
s = auth.session_from_cloud("sandbox-demo")
c = cfg.ConfigOpts()
options.set_defaults(c, backend="barbican", auth_endpoint=configs.keystone_url(conf))
km = key_manager.API(c)
ctx = context.RequestContext(auth_token=s.get_token(), project_id=s.get_project_id(), user_id=s.get_user_id())
live, gone, lost, unused = (km.create_key(ctx, algorithm="aes", length=256) for _ in range(4))
seed(db, volumes=1, key_id=live, user_id=s.get_user_id(), project_id=s.get_project_id())
seed(db, volumes=1, key_id=gone, user_id=s.get_user_id(), project_id=s.get_project_id(), deleted=True)
km.delete(ctx, gone)                      # Cinder's delete: the key goes, castellan's order stays
seed(db, volumes=1, key_id=lost, user_id=s.get_user_id(), project_id=s.get_project_id())
km.delete(ctx, lost)                      # deleted by hand under a live volume
(w / "project").write_text(s.get_project_id())
(w / "barbican-url").write_text(configs.db_url(state, conf, "barbican"))
PYEOF
ARGS=(--barbican-db-url "$(cat "$WORK/barbican-url")" --db-url "sqlite:///$WORK/cinder.sqlite"
      --project "$(cat "$WORK/project")" --min-age 0)

echo "== keytools keys reconcile without Nova, Glance, Swift: they are NOT SEEN, so nothing is an orphan"
rc=0; "$KEYTOOLS" keys reconcile "${ARGS[@]}" || rc=$?
echo "exit code: $rc (1 = dangling references)"

echo "== the same, ignoring the services this demo cloud does not run (recorded in the report)"
rc=0; "$KEYTOOLS" keys reconcile "${ARGS[@]}" --ignore-service nova,glance,swift || rc=$?
echo "exit code: $rc"

echo "== keytools keys cleanup: dry run, then quarantine, then release"
"$KEYTOOLS" --os-cloud sandbox-admin keys cleanup "${ARGS[@]}" --ignore-service nova,glance,swift \
    --journal "$WORK/journal.jsonl"
echo "== --apply: the orphan's read ACL becomes 'nobody', it is tagged keytools-quarantine; then release it"
"$KEYTOOLS" --os-cloud sandbox-admin keys cleanup "${ARGS[@]}" --ignore-service nova,glance,swift \
    --journal "$WORK/journal.jsonl" --apply
"$KEYTOOLS" --os-cloud sandbox-admin keys release --barbican-db-url "$(cat "$WORK/barbican-url")" \
    --journal "$WORK/journal.jsonl" --apply
echo "(keys cleanup --phase delete refuses while a service is ignored: every service must be seen)"
