"""The KEK rotation playbook across 3 Barbican nodes of a real netns fleet, on a copy of the
sandbox Barbican's database (secrets in two projects), with Barbican's own barbican-manage for
the rewrap. Each node has its own barbican.conf at the same path; the restart handler is a
command that records each restart on the node."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
from cryptography.fernet import Fernet

from keytools.barbican import barbican_conf as bconf
from keytools.barbican import kek
from tests.barbican_backup.barbican_backup_helpers import barbican_conf, conf_copy, store_secrets
from tests.fleet.fleet_helpers import recap
from tests.helpers.netns_fleet import Fleet, missing_tools

pytestmark = pytest.mark.skipif(bool(missing_tools()), reason=f"netns fleet needs: {', '.join(missing_tools())}")

CONF = "barbican/barbican.conf"


def test_kek_rotation_across_barbican_nodes(sandbox, tmp_path):
    store_secrets(sandbox.session("admin"), "fleet-kek-admin")
    store_secrets(sandbox.session("demo"), "fleet-kek-demo")
    db = tmp_path / "barbican.db"
    shutil.copy(sandbox.state.path("barbican", "barbican.db"), db)
    source = barbican_conf(sandbox)

    def populate(_name, root):
        (root / "barbican").mkdir()
        conf_copy(source, root / CONF, connection=f"sqlite:///{db}")

    fleet = Fleet(3, populate=populate).start()
    try:
        old = list(bconf.load(fleet.hosts[0].root / CONF).keks)
        new = Fernet.generate_key().decode()
        extra = json.dumps({"keytools_python": sys.executable, "keytools_barbican_nodes": "nodes",
                            "keytools_new_kek": new, "keytools_barbican_config": str(fleet.mount / CONF),
                            "keytools_barbican_restart_command": f"sh -c 'echo restart >> {fleet.mount}/restarts.log'"})
        run = fleet.ansible("keytools.openstack.barbican_kek_rotate", "-e", extra)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
        for h in fleet.hosts:
            assert list(bconf.load(h.root / CONF).keks) == [new], h.name
            assert (h.root / "restarts.log").read_text().count("restart") == 2  # after stage, after retire
        check = kek.check_project_keks(f"sqlite:///{db}", [new])
        assert check.total >= 2 and check.failed == []
        for value in (new, *old):
            assert value not in run.stdout and value not in run.stderr
        again = fleet.ansible("keytools.openstack.barbican_kek_rotate", "-e", extra)
        assert again.returncode == 0, again.stdout[-2000:]
        assert all(c["changed"] == 0 for c in recap(again.stdout).values())
    finally:
        fleet.stop()
    assert fleet.leftovers() == []
