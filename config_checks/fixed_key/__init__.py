"""Show, retire and restore ConfKeyManager's fixed_key across config trees.

Retiring follows the documented procedure: values must match everywhere, no Cinder row may still
use the all-zeros key id, a 0600 backup of each value is written first, then the option is deleted
with crudini (the documented tool, so every other byte of the file stays as it was) on a private
copy, checked, and swapped in atomically with the file's owner and mode. A rerun after a crash
converges: files already retired have nothing left to do.

One module per job: ``placements`` (where it is set), ``showing`` (``show``), ``crudini`` (edits
on a private copy and their check), ``plan`` (every edit, nothing written), ``refusals`` (what
blocks a retire), ``backup``, ``retiring`` (``retire``) and ``restoring`` (``restore``). The entry
points are re-exported here.
"""

from __future__ import annotations

from config_checks.fixed_key.placements import OPTION, Placement, distinct_digests, placements
from config_checks.fixed_key.plan import FileChange, plan_retire
from config_checks.fixed_key.refusals import check_cinder_db, check_inventory, refusal
from config_checks.fixed_key.restoring import Restored, restore
from config_checks.fixed_key.retiring import RetireResult, require_backup_dir, retire
from config_checks.fixed_key.showing import ShowResult, show, show_failure

__all__ = ["OPTION", "FileChange", "Placement", "Restored", "RetireResult", "ShowResult", "check_cinder_db",
           "check_inventory", "distinct_digests", "placements", "plan_retire", "refusal", "require_backup_dir",
           "restore", "retire", "show", "show_failure"]
