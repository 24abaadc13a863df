"""Real-world config files from the installed upstream packages, collected into an /etc-style tree.

oslo-config-generator renders cinder.conf, nova.conf and barbican.conf from the installed code (every
option with its help, commented out, as the packages' own sample files); glance-api.conf and the
paste/rootwrap files are the ones glance, nova and barbican install under ``<venv>/etc``. With
``uncomment=True`` every ``#option = default`` line is switched on, as operators do with samples.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ETC = Path(sys.prefix) / "etc"
NAMESPACES = {
    "cinder/cinder.conf": ["cinder", "castellan.config", "keystonemiddleware.auth_token"],
    "nova/nova.conf": ["nova.conf", "castellan.config", "keystonemiddleware.auth_token"],
    "barbican/barbican.conf": ["barbican.common.config", "barbican.plugin.crypto", "barbican.plugin.crypto.simple",
                               "barbican.plugin.secret_store", "keystonemiddleware.auth_token"],
}
# cinder's option list imports every backup driver; the Google one needs a client library that is
# not installed. Options are all we want, so absent driver libraries are stubbed while generating.
_GEN = r"""
import importlib.abc, importlib.machinery, sys
from unittest import mock
ABSENT = ("googleapiclient", "google_auth_httplib2", "httplib2", "oauth2client")
class Stub(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        return importlib.machinery.ModuleSpec(name, self, is_package=True) if name.split(".")[0] in ABSENT else None
    def create_module(self, spec):
        m = mock.MagicMock(name=spec.name); m.__path__ = []; m.__spec__ = spec; return m
    def exec_module(self, module):
        pass
sys.meta_path.append(Stub())
from oslo_config import generator
sys.exit(generator.main(sys.argv[1:]))
"""
_OPTION = re.compile(r"^#([A-Za-z_][\w.-]*) = (.*)$")
# installed sample files copied as they are: (source under <venv>/etc, place in the tree)
INSTALLED = {
    "glance/glance-api.conf": "glance/glance-api.conf",
    "glance/glance-api-paste.ini": "glance/glance-api.conf.d/90-paste.conf",
    "nova/api-paste.ini": "nova/nova.conf.d/90-paste.conf",
    "nova/rootwrap.conf": "nova/nova.conf.d/91-rootwrap.conf",
    "cinder/rootwrap.conf": "cinder/cinder.conf.d/91-rootwrap.conf",
    "barbican/barbican-api-paste.ini": "barbican/barbican.conf.d/90-paste.conf",
}


def generate(rel: str, out: Path) -> None:
    args = [a for ns in NAMESPACES[rel] for a in ("--namespace", ns)]
    out.parent.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([sys.executable, "-c", _GEN, *args, "--output-file", str(out)],
                          capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 or not out.exists() or out.stat().st_size < 1000:
        raise RuntimeError(f"oslo-config-generator for {rel} failed: {proc.stderr[-2000:]}")


def uncomment(text: str) -> str:
    """Switch every sample default on (``<None>`` means unset: those stay commented)."""
    return "\n".join(f"{m.group(1)} = {m.group(2)}" if (m := _OPTION.match(line)) and m.group(2) != "<None>"
                     else line for line in text.splitlines()) + "\n"


def uncomment_tree(root: Path) -> None:
    for f in root.rglob("*.conf"):
        f.write_text(uncomment(f.read_text(encoding="utf-8")), encoding="utf-8")


def build(base: Path, uncommented: bool = False) -> Path:
    """``base/samples/etc/...``; returns the node root. Files missing from the install are skipped."""
    etc = base / "samples" / "etc"
    for rel in NAMESPACES:
        generate(rel, etc / rel)
    for src, rel in INSTALLED.items():
        if (ETC / src).exists():
            (etc / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ETC / src, etc / rel)
    if uncommented:
        uncomment_tree(etc)
    for f in etc.rglob("*"):
        if f.is_file():
            f.chmod(0o640)
    return base / "samples"
