# Sourced (not run) by every scripts/demo.d/NN-*.sh step: strict mode, the checkout as working
# directory (the steps' python snippets import keytools and tests.helpers from it), and the
# variables scripts/demo.py passes, with defaults for running one step by hand.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
KEYTOOLS=${KEYTOOLS:-$PWD/.venv/bin/keytools}
PY=${PY:-$PWD/.venv/bin/python}
DEMO_TMP=${DEMO_TMP:-$(mktemp -d)}

# A step that talks to the running sandbox calls this first: its state dir is $DEMO_STATE.
need_sandbox() {
  : "${DEMO_STATE:?set DEMO_STATE to the sandbox state dir}"
}
