"""``sandbox up --with hsm``: Barbican with two secret stores on a private SoftHSM2 token.

The token lives in the state dir (``hsm/tokens``, found through ``hsm/softhsm2.conf``, which
Barbican's process and ``barbican-manage`` get as ``SOFTHSM2_CONF``). Barbican keeps both stores:
``software`` (simple_crypto, the existing secrets) and ``pkcs11`` (p11_crypto, the global default,
so new secrets land in the HSM). The PIN is a generated sandbox password: it is written only into
the 0600 barbican.conf and sandbox.json, and reaches ``softhsm2-util`` through a pseudo-terminal,
never argv or a log.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from keytools.errors import ServiceUnavailable, UsageError
from keytools.fileutil import atomic_write, private_dir
from keytools.sandbox.state import SandboxConfig, StateDir
from keytools.tools import find_tool

FEATURE = "hsm"
TOKEN_LABEL = "barbican"
MKEK_LABEL = "keytools_sandbox_mkek"
HMAC_LABEL = "keytools_sandbox_hmac"
LIBRARY_CANDIDATES = ("/usr/lib/softhsm/libsofthsm2.so",
                      "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
                      "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
                      "/usr/local/lib/softhsm/libsofthsm2.so")
P11_PLUGIN = "barbican.plugin.crypto.p11_crypto.P11CryptoPlugin"
SIMPLE_PLUGIN = "barbican.plugin.crypto.simple_crypto.SimpleCryptoPlugin"

# SoftHSM 2.6's needs, NOT production advice: Barbican's defaults (CKM_AES_CBC_PAD key wrap with a
# generated IV, an AES HMAC key) are what real HSMs take; SoftHSM answers them with
# CKR_MECHANISM_INVALID, CKR_ARGUMENTS_BAD and CKR_KEY_TYPE_INCONSISTENT.
SOFTHSM_SETTINGS = {
    "key_wrap_mechanism": "CKM_AES_KEY_WRAP_PAD",
    "key_wrap_generate_iv": "False",
    "hmac_key_type": "CKK_GENERIC_SECRET",
    "hmac_keygen_mechanism": "CKM_GENERIC_SECRET_KEY_GEN",
}


def enabled(cfg: SandboxConfig) -> bool:
    return FEATURE in cfg.services


def library_path() -> str:
    for path in LIBRARY_CANDIDATES:
        if os.path.exists(path):
            return path
    raise UsageError("SoftHSM2's PKCS#11 library (libsofthsm2.so) is not installed",
                     "Install it: scripts/install-system-deps.sh (Debian package softhsm2)")


def conf_path(state: StateDir) -> Path:
    return state.path("hsm", "softhsm2.conf")


def env(state: StateDir, cfg: SandboxConfig) -> dict[str, str]:
    """What Barbican's process (and barbican-manage) must inherit to find the private token."""
    return {"SOFTHSM2_CONF": str(conf_path(state))} if enabled(cfg) else {}


def barbican_sections(cfg: SandboxConfig) -> dict[str, dict[str, object]]:
    """barbican.conf sections for two stores, pkcs11 the global default (``#`` keys are comments).
    With multiple stores Barbican takes the crypto plugins from the stores, not from [crypto]."""
    p11: dict[str, object] = {
        "library_path": library_path(),
        "token_labels": TOKEN_LABEL,
        "login": cfg.passwords["hsm_pin"],
        "mkek_label": MKEK_LABEL,
        "hmac_label": HMAC_LABEL,
        "# SoftHSM 2.6 needs the four settings below; they are SoftHSM's, not production advice": "",
        "# (real HSMs take Barbican's defaults: CKM_AES_CBC_PAD with an IV, CKK_AES HMAC keys)": "",
    }
    p11.update(SOFTHSM_SETTINGS)
    return {
        "secretstore": {"enabled_secretstore_plugins": "store_crypto",
                        "enable_multiple_secret_stores": "True",
                        "stores_lookup_suffix": "software, pkcs11"},
        "secretstore:software": {"secret_store_plugin": "store_crypto",
                                 "crypto_plugin": "simple_crypto"},
        "secretstore:pkcs11": {"secret_store_plugin": "store_crypto",
                               "crypto_plugin": "p11_crypto",
                               "global_default": "True"},
        "p11_crypto_plugin": p11,
    }


def _softhsm_util(state: StateDir, args: list[str], answers: str = "") -> str:
    """softhsm2-util with ``answers`` typed on a pseudo-terminal (it reads PINs from a terminal
    only); output is returned, never logged (it echoes ``****``, not the PIN)."""
    tool = find_tool("softhsm2-util", "Install it: scripts/install-system-deps.sh (Debian package softhsm2)")
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen([tool, *args], stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                env={**os.environ, "SOFTHSM2_CONF": str(conf_path(state))})
        os.close(slave)
        slave = -1
        if answers:
            os.write(master, answers.encode())
        out, _ = proc.communicate(timeout=60)
    finally:
        if slave >= 0:
            os.close(slave)
        os.close(master)
    text = out.decode(errors="replace")
    if proc.returncode != 0:
        raise ServiceUnavailable(f"softhsm2-util {args[0]} failed (exit {proc.returncode}): "
                                 f"{' | '.join(text.strip().splitlines()[-2:])[:300]}",
                                 f"See {conf_path(state)}")
    return text


def token_present(state: StateDir, label: str = TOKEN_LABEL) -> bool:
    out = _softhsm_util(state, ["--show-slots"])
    return any(line.split(":", 1)[0].strip() == "Label" and line.split(":", 1)[1].strip() == label
               for line in out.splitlines() if ":" in line)


def ensure_token(state: StateDir, cfg: SandboxConfig) -> None:
    """The private token dir, its softhsm2.conf (0600) and an initialised token (idempotent)."""
    import secrets

    home = private_dir(state.path("hsm"))
    tokens = private_dir(home / "tokens")
    atomic_write(conf_path(state), f"# SoftHSM2 of the keytools sandbox: a private token directory\n"
                                   f"directories.tokendir = {tokens}\nobjectstore.backend = file\n"
                                   "log.level = ERROR\nslots.removable = false\n", mode=0o600)
    cfg.passwords.setdefault("hsm_pin", secrets.token_hex(8))
    cfg.passwords.setdefault("hsm_so_pin", secrets.token_hex(8))
    if not token_present(state):
        so, pin = cfg.passwords["hsm_so_pin"], cfg.passwords["hsm_pin"]
        _softhsm_util(state, ["--init-token", "--free", "--label", TOKEN_LABEL], f"{so}\n{so}\n{pin}\n{pin}\n")


def barbican_manage_env(state: StateDir, cfg: SandboxConfig) -> dict[str, str]:
    """barbican-manage reads ~/.barbican/barbican.conf (PIN and labels from it, never argv)."""
    return {"HOME": str(state.path("barbican")), **env(state, cfg)}


def ensure_master_keys(state: StateDir, cfg: SandboxConfig) -> None:
    """``barbican-manage hsm gen_mkek`` / ``gen_hmac`` unless ``check_mkek``/``check_hmac`` find them."""
    from keytools.sandbox.services import run_checked

    manage = find_tool("barbican-manage", "Install Barbican: pip install 'keytools[sandbox]'")
    log = str(state.path("logs", "barbican-manage.log"))
    run_env = barbican_manage_env(state, cfg)
    for check, generate in (("check_mkek", "gen_mkek"), ("check_hmac", "gen_hmac")):
        probe = subprocess.run([manage, "hsm", check], capture_output=True, text=True, cwd=state.root,
                               env={**os.environ, **run_env})
        if probe.returncode == 0:
            continue
        run_checked([manage, "hsm", generate], f"barbican-manage hsm {generate}", env=run_env, log_path=log)


def initialise(state: StateDir, cfg: SandboxConfig) -> None:
    """Token and master keys before Barbican starts (barbican.conf must already be written)."""
    if not enabled(cfg):
        return
    ensure_token(state, cfg)
    ensure_master_keys(state, cfg)

