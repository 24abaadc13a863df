"""Root-secret rotation that ends: key-usage, reencrypt, retire-key against the sandbox's real Swift.

Three extra proxies share the sandbox's storage servers: A (only key A), AB (A and B, B active:
the config given to keytools) and B (only key B: proves nothing needs A any more). The workload
(rotation_helpers) is written once through A and once through AB.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import time

import pytest
import requests
from rotation_helpers import VERSIONING, snapshot, write_workload
from swift_helpers import ProxyProcess, our_keymaster

from keytools.sandbox import configs, processes
from keytools.sandbox import swift as sandbox_swift
from swift_middleware import internal, reencrypt, usage
from tests.helpers.cli import keytools_argv
from tests.helpers.kill import kill_when, spawn

ACCOUNT = "AUTH_rotation"
KILL_ACCOUNT = "AUTH_rotkill"


@pytest.fixture(scope="module")
def rot(swift_sandbox, make_secret, swift_workdir, proxies):
    state, cfg = swift_sandbox.state, swift_sandbox.config
    key_a, key_b = make_secret(os.urandom(32)), make_secret(os.urandom(32))
    made = {}
    for name, options in {"A": {"key_id": key_a},
                          "AB": {"key_id": key_a, "key_id_2": key_b, "active_root_secret_id": "2"},
                          "BA": {"key_id": key_a, "key_id_2": key_b},
                          "B": {"key_id_2": key_b, "active_root_secret_id": "2"}}.items():
        proxy = ProxyProcess(state, cfg, swift_workdir / "rot", f"rot-{name}",
                             our_keymaster(cfg, swift_sandbox.url("barbican"), **options),
                             overrides=VERSIONING)
        proxies.append(proxy)
        made[name] = proxy
    for proxy in made.values():
        proxy.wait_ready()
    loads = [write_workload(made["A"].url, ACCOUNT, "a"), write_workload(made["AB"].url, ACCOUNT, "b", sizes=(0, 5000))]
    made["before"] = snapshot(made["AB"].url, ACCOUNT)
    made["loads"] = loads
    made["state"] = swift_workdir / "rot" / "state"
    return made


def _json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _usage(kt, rot, conf=None, account=ACCOUNT):
    return _json(kt("swift", "key-usage", "--proxy-config", str(conf or rot["AB"].conf), "--account", account,
                    "--state-dir", str(rot["state"]), "-f", "json"))


def _tag_bytes(url: str, tag: str) -> int:
    base = f"{url}/v1/{ACCOUNT}"
    total = 0
    for c in requests.get(base, params={"format": "json"}).json():
        if c["name"].startswith(f"{tag}-"):
            total += sum(o["bytes"] for o in requests.get(f"{base}/{c['name']}", params={"format": "json"}).json())
    return total


def test_key_usage_counts_exactly_per_key_container_and_account(kt, rot):
    doc = _usage(kt, rot)
    keys = {k["option"]: k for k in doc["keys"]}
    # per tag: plain 2n+4, segments 5, versioned 1 + 2 archived, history 3 versions + 1 delete
    # marker; unencrypted: size-0 and the delete marker (0 bytes, no user meta; the DLO manifest
    # is 0 bytes too but has user metadata)
    assert keys["key_id"]["objects"] == 26 - 2 and keys["key_id_2"]["objects"] == 20 - 2
    assert keys["key_id"]["bytes"] == _tag_bytes(rot["B"].url, "a")
    assert keys["key_id_2"]["bytes"] == _tag_bytes(rot["B"].url, "b")
    assert keys["key_id"]["containers"] == keys["key_id_2"]["containers"] == 5
    assert keys["key_id"]["accounts"] == 1 and keys["key_id_2"]["active"] is True
    assert doc["unencrypted"] == {"objects": 4, "bytes": 0}
    plain = next(c for c in doc["containers"] if c["container"] == "a-plain")
    assert plain["objects"] == 14 and plain["unencrypted"] == 1 and plain["by_secret_id"][""]["objects"] == 13
    assert (rot["state"] / "keytools-key-usage.json").stat().st_mode & 0o777 == 0o600
    table = kt("swift", "key-usage", "--proxy-config", str(rot["AB"].conf), "--account", ACCOUNT,
               "--state-dir", str(rot["state"]), "--by-container")
    assert table.exit_code == 0 and "(unencrypted)" in table.stdout and f"{ACCOUNT}/a-plain" in table.stdout
    assert "Scanning objects" not in table.output  # no progress bar without a TTY


def test_key_usage_resumes_after_a_kill_from_the_partial_state(kt, rot):
    partial = rot["state"] / "keytools-key-usage.partial.json"
    full = _usage(kt, rot)
    setup = internal.load_proxy(str(rot["AB"].conf))

    class Killed(Exception):
        pass

    def killed_after_4(_n):  # dies at the first object after 4 containers were recorded
        if partial.exists() and len(json.loads(partial.read_text())["containers"]) >= 4:
            raise Killed

    with pytest.raises(Killed):
        usage.scan(setup, [ACCOUNT], rot["state"], advance=killed_after_4)
    recorded = json.loads(partial.read_text())["containers"]
    assert len(recorded) == 4 and all(c["state"].startswith("sha256:") for c in recorded.values())
    resumed = _usage(kt, rot)
    assert resumed["resumed_containers"] == 4 and resumed["keys"] == full["keys"]
    assert not partial.exists()
    # The partial is a shortcut, not the truth: a container written to since it was counted is
    # counted again (here a new object under key_id in a-plain, one of the containers counted;
    # not a versioned one, where the delete below would archive a copy).
    with pytest.raises(Killed):
        usage.scan(setup, [ACCOUNT], rot["state"], advance=killed_after_4)
    assert f"{ACCOUNT}/a-plain" in json.loads(partial.read_text())["containers"]
    first = "a-plain"
    requests.put(f"{rot['A'].url}/v1/{ACCOUNT}/{first}/late", data=b"x").raise_for_status()
    try:
        again = _usage(kt, rot)
        assert again["resumed_containers"] == 3
        keys = {k["option"]: k["objects"] for k in again["keys"]}
        assert keys["key_id"] == {k["option"]: k["objects"] for k in full["keys"]}["key_id"] + 1
    finally:
        requests.delete(f"{rot['A'].url}/v1/{ACCOUNT}/{first}/late").raise_for_status()
    # A partial from an older version (no digests) proves nothing: everything is counted again.
    partial.write_text(json.dumps({"proxy_conf": str(rot["AB"].conf), "accounts": [ACCOUNT],
                                   "containers": {f"{c['account']}/{c['container']}": c
                                                  for c in full["containers"][:4]}}))
    assert _usage(kt, rot)["resumed_containers"] == 0


def test_concurrent_user_write_is_never_overwritten(rot):
    setup = internal.load_proxy(str(rot["AB"].conf))
    raw, enc = internal.make_client(setup, False), internal.make_client(setup, True)
    url = f"{rot['A'].url}/v1/{ACCOUNT}/a-plain/race"
    requests.put(url, data=b"old under A").raise_for_status()
    (seen,) = [s for s in usage.iter_container(raw, setup, ACCOUNT, "a-plain", 2) if s.name == "race"]
    requests.put(f"{rot['AB'].url}/v1/{ACCOUNT}/a-plain/race", data=b"newer, by a user").raise_for_status()
    outcome, _ts = reencrypt.rewrite(enc, seen)
    assert outcome == "changed_concurrently"
    assert requests.get(f"{rot['B'].url}/v1/{ACCOUNT}/a-plain/race").content == b"newer, by a user"
    requests.delete(f"{rot['B'].url}/v1/{ACCOUNT}/a-plain/race").raise_for_status()


def test_bad_input_one_line_each(kt, rot, swift_sandbox, tmp_path):
    conf = str(rot["AB"].conf)
    r = kt("swift", "reencrypt", "--proxy-config", conf, "--account", ACCOUNT, "--from-key-id", "key_id_9")
    assert r.exit_code == 2 and "no root secret 'key_id_9' is configured" in r.stderr
    r = kt("swift", "reencrypt", "--proxy-config", conf, "--account", ACCOUNT, "--from-key-id", "2")
    assert r.exit_code == 2 and "key_id_2 is the active root secret" in r.stderr
    plain = tmp_path / "plain.conf"
    sections = sandbox_swift.proxy_sections(swift_sandbox.state, swift_sandbox.config, 1,
                                            "catch_errors proxy-logging proxy-server")
    plain.write_text(configs.ini_text(sections))
    r = kt("swift", "key-usage", "--proxy-config", str(plain), "--account", ACCOUNT)
    assert r.exit_code == 2 and "has no encryption filter" in r.stderr
    # Swift unreachable: the proxy's rings point at a port nobody listens on
    home = tmp_path / "swift"
    home.mkdir()
    (home / "swift.conf").write_text((sandbox_swift.swift_dir(swift_sandbox.state) / "swift.conf").read_text())
    port = processes.free_ports(1)[0]
    for ring in ("account", "container", "object"):
        builder = str(home / f"{ring}.builder")
        for args in (["create", "4", "1", "0"], ["add", f"r1z1-127.0.0.1:{port}/d1", "100"], ["rebalance"]):
            subprocess.run([sandbox_swift._bin("swift-ring-builder"), builder, *args], capture_output=True)
    dead = tmp_path / "dead.conf"
    dead.write_text(rot["AB"].conf.read_text().replace(str(sandbox_swift.swift_dir(swift_sandbox.state)), str(home)))
    r = kt("swift", "key-usage", "--proxy-config", str(dead), "--account", ACCOUNT)
    assert r.exit_code == 4 and "Swift answered" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_check_warns_about_an_old_key_until_key_usage_ran(kt, rot, tmp_path):
    conf = tmp_path / "proxy.conf"
    conf.write_text(rot["AB"].conf.read_text().replace(
        "[filter:keymaster]\n", f"[filter:keymaster]\nkey_usage_state_dir = {tmp_path / 'st'}\n"))
    doc = _json(kt("swift", "check", str(conf), "-f", "json"))
    (warn,) = [c for c in doc["checks"] if c["check"].startswith("SWIFT007")]
    assert "has never run" in warn["message"] and doc["ok"] is True
    # the running proxy with keys A and B said so in its log at start (its state dir: its conf's)
    assert "keymaster: key_id is configured but not active and 'keytools swift key-usage' has never run" \
        in rot["AB"].output()
    assert "has never run" not in rot["A"].output()  # one key only: nothing to warn about
    _json(kt("swift", "key-usage", "--proxy-config", str(conf), "--account", ACCOUNT, "-f", "json"))
    doc = _json(kt("swift", "check", str(conf), "-f", "json"))
    (warn,) = [c for c in doc["checks"] if c["check"].startswith("SWIFT007")]
    assert "has never run" not in warn["message"]


def test_rotate_reencrypt_retire_end_to_end(kt, rot, tmp_path):
    conf = str(rot["AB"].conf)
    args = ["--proxy-config", conf, "--account", ACCOUNT, "--state-dir", str(rot["state"])]
    refused = kt("swift", "retire-key", "key_id", *args)
    assert refused.exit_code == 6 and "still encrypted under key_id" in refused.stderr
    dry = _json(kt("swift", "reencrypt", *args, "--from-key-id", "key_id", "--dry-run", "-f", "json"))
    assert dry["would_rewrite"] == 24 and dry["rewritten"] == 0
    assert {k["option"]: k["objects"] for k in _usage(kt, rot)["keys"]}["key_id"] == 24
    done = _json(kt("swift", "reencrypt", *args, "--from-key-id", "key_id", "--rate-limit", "500", "-f", "json"))
    assert done["rewritten"] == 24 and done["failed"] == 0
    keys = {k["option"]: k for k in _usage(kt, rot)["keys"]}
    assert keys["key_id"]["objects"] == 0 and keys["key_id_2"]["objects"] == 42
    again = _json(kt("swift", "reencrypt", *args, "--from-key-id", "key_id", "-f", "json"))
    assert again["rewritten"] == 0  # converged (finished containers skipped, the rest re-checked)
    # A proxy with only key B reads every object byte for byte with its metadata and timestamps.
    after = snapshot(rot["B"].url, ACCOUNT)
    assert set(after) == set(rot["before"])
    diffs = [(p, f, rot["before"][p][f], after[p][f]) for p in after for f in after[p]
             if after[p][f] != rot["before"][p][f]]
    assert diffs == []
    # A proxy restarted late (A: key_id still active) writes a new object and POSTs metadata onto
    # a rewritten one: the journal says every container is done, Swift says two have changed.
    late = f"{rot['A'].url}/v1/{ACCOUNT}"
    requests.put(f"{late}/a-plain/late-write", data=b"written under the old key").raise_for_status()
    requests.post(f"{late}/b-plain/meta-5000", headers={"X-Object-Meta-Late": "post"}).raise_for_status()
    assert {k["option"]: k["objects"] for k in _usage(kt, rot)["keys"]}["key_id"] == 2
    late_run = _json(kt("swift", "reencrypt", *args, "--from-key-id", "key_id", "-f", "json"))
    assert late_run["rewritten"] == 2 and late_run["containers_changed_since_journal"] == 2
    assert late_run["containers_skipped_from_journal"] == 10
    assert {k["option"]: k["objects"] for k in _usage(kt, rot)["keys"]}["key_id"] == 0
    b_only = requests.get(f"{rot['B'].url}/v1/{ACCOUNT}/a-plain/late-write")
    assert b_only.content == b"written under the old key"
    assert requests.head(f"{rot['B'].url}/v1/{ACCOUNT}/b-plain/meta-5000").headers["X-Object-Meta-Late"] == "post"
    quiet = _json(kt("swift", "reencrypt", *args, "--from-key-id", "key_id", "-f", "json"))
    assert quiet["containers_skipped_from_journal"] == 12 and quiet["skipped"] == 0
    for path in ("a-plain/late-write",):
        requests.delete(f"{rot['B'].url}/v1/{ACCOUNT}/{path}").raise_for_status()
    retired = kt("swift", "retire-key", "key_id", *args, "-f", "json")
    doc = _json(retired)
    assert doc["key_lines"] == ["[filter:keymaster]", f"key_id_2 = {doc['key_lines'][1].split(' = ')[1]}",
                                "active_root_secret_id = 2"]
    assert "keep Barbican secret" in retired.stderr and "password" not in retired.stdout
    copy = tmp_path / "edit.conf"
    copy.write_text("# operator comment\n" + rot["AB"].conf.read_text())
    copy.chmod(0o640)
    edited = kt("swift", "retire-key", "key_id", "--proxy-config", str(copy), "--account", ACCOUNT,
                "--state-dir", str(rot["state"]), "--config")
    assert edited.exit_code == 0, edited.output
    text = copy.read_text()
    assert "# operator comment" in text and "\nkey_id =" not in text and "key_id_2 =" in text
    assert copy.stat().st_mode & 0o777 == 0o600
    (backup,) = tmp_path.glob("edit.conf.keytools-*.bak")
    assert "\nkey_id = " in backup.read_text() and backup.stat().st_mode & 0o777 == 0o600


def _objects_ok(url: str, bodies: dict[str, bytes]) -> None:
    for name, body in bodies.items():
        got = requests.get(f"{url}/v1/{KILL_ACCOUNT}/k/{name}")
        assert got.status_code == 200 and got.content == body, name


def test_kill_9_during_reencrypt_ten_trials_converge(rot, swift_sandbox, tmp_path):
    """Kill reencrypt at a random point, 10 times, alternating direction (A->B with conf AB, B->A
    with conf BA); after each kill every object reads back through the proxy that has both keys,
    and a rerun completes with nothing left under the old key."""
    bodies = {f"o{i:03d}": os.urandom(random.randint(0, 120_000)) for i in range(60)}
    requests.put(f"{rot['A'].url}/v1/{KILL_ACCOUNT}/k").raise_for_status()
    for name, body in bodies.items():
        requests.put(f"{rot['A'].url}/v1/{KILL_ACCOUNT}/k/{name}", data=body,
                     headers={"X-Object-Meta-N": name}).raise_for_status()
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    rng = random.Random(16)
    killed = 0
    for trial in range(10):
        conf, old = (rot["AB"].conf, "key_id") if trial % 2 == 0 else (rot["BA"].conf, "key_id_2")
        cmd = keytools_argv("swift", "reencrypt", "--proxy-config", conf, "--account", KILL_ACCOUNT,
                            "--from-key-id", old, "--rate-limit", "25", "--journal", tmp_path / f"j{trial % 2}",
                            "-f", "json")
        run = spawn(cmd, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(rng.uniform(1.5, 3.5))
        alive = not run.finished()
        killed += run.kill_9() and alive
        both = rot["AB"] if trial % 2 == 0 else rot["BA"]
        _objects_ok(both.url, bodies)
        rerun = subprocess.run(cmd[:-2] + ["--rate-limit", "0", "-f", "json"], capture_output=True, text=True,
                               env=env, timeout=300)
        assert rerun.returncode == 0, rerun.stderr
        setup = internal.load_proxy(str(conf))
        report = usage.scan(setup, [KILL_ACCOUNT], tmp_path / "st", restart=True)
        sid = "" if old == "key_id" else "2"
        assert report.key(sid).objects == 0
        (tmp_path / f"j{trial % 2}").unlink()
    assert killed >= 8
    _objects_ok(rot["A"].url, bodies)  # ended on the B->A leg: A alone reads everything
    for name in bodies:
        assert requests.head(f"{rot['A'].url}/v1/{KILL_ACCOUNT}/k/{name}").headers["X-Object-Meta-N"] == name


def test_listing_hash_parsing_and_rate_limiter_units():
    from swift_middleware import cryptometa

    meta = "%7B%22cipher%22%3A+%22AES_CTR_256%22%2C+%22key_id%22%3A+%7B%22secret_id%22%3A+%222%22%7D%7D"
    assert cryptometa.listing_secret_id(f"abc=; swift_meta={meta}") == "2"
    assert cryptometa.listing_secret_id("d41d8cd98f00b204e9800998ecf8427e") is None
    assert cryptometa.listing_secret_id("x; swift_meta=not-json") is None
    slept: list[float] = []
    limiter = reencrypt.RateLimiter(4, slept.append)
    for _ in range(5):
        limiter.wait()
    assert [round(s, 2) for s in slept] == [0.25, 0.5, 0.75, 1.0]  # 4/s: one slot every 0.25 s
    assert reencrypt.next_timestamp({"X-Backend-Timestamp": "1796124258.54419_0000000000000001",
                                     "X-Timestamp": "1796124258.54419"}) == "1796124258.54419_0000000000000002"


def test_key_usage_killed_midway_resumes_to_the_same_counts(kt, rot):
    full = _usage(kt, rot)
    env = {k: v for k, v in os.environ.items() if not k.startswith("OS_")}
    cmd = keytools_argv("swift", "key-usage", "--proxy-config", rot["AB"].conf, "--account", ACCOUNT,
                        "--state-dir", rot["state"], "--concurrency", "1", "-f", "json")
    partial = rot["state"] / "keytools-key-usage.partial.json"
    # kill as soon as at least one container is recorded
    kill_when(spawn(cmd, env, stdout=subprocess.PIPE, stderr=subprocess.PIPE), partial.exists, timeout=30, poll=0.05)
    resumed = json.loads(subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout)
    assert resumed["keys"] == full["keys"] and resumed["unencrypted"] == full["unencrypted"]


def test_objects_under_a_key_the_config_lacks_are_reported(kt, rot, swift_sandbox, make_secret, proxies):
    key_c = make_secret(os.urandom(32))
    other = ProxyProcess(swift_sandbox.state, swift_sandbox.config, rot["state"].parent, "rot-C",
                         our_keymaster(swift_sandbox.config, swift_sandbox.url("barbican"), key_id_3=key_c,
                                       active_root_secret_id="3"))
    proxies.append(other)
    other.wait_ready()
    requests.put(f"{other.url}/v1/AUTH_rotunknown/c").raise_for_status()
    requests.put(f"{other.url}/v1/AUTH_rotunknown/c/o", data=b"under C").raise_for_status()
    doc = _usage(kt, rot, account="AUTH_rotunknown")
    (unknown,) = [k for k in doc["keys"] if k["secret_id"] == "3"]
    assert unknown["configured"] is False and unknown["objects"] == 1 and unknown["option"] is None
    table = kt("swift", "key-usage", "--proxy-config", str(rot["AB"].conf), "--account", "AUTH_rotunknown",
               "--state-dir", str(rot["state"]))
    assert "secret id 3 (not configured!)" in table.stdout


def test_a_container_changed_under_the_pass_is_not_journaled_done(tmp_path):
    from swift_middleware import containerstate

    def entry(name, etag="e", lm="2026-01-01T00:00:00.000000"):
        return {"name": name, "hash": etag, "bytes": 1, "content_type": "x", "last_modified": lm}

    before = {e["name"]: containerstate.fingerprint(e) for e in (entry("kept"), entry("ours"), entry("raced"))}
    after = [entry("kept"), entry("ours", etag="new iv"),  # our rewrite: new etag, same last-modified
             entry("raced", etag="user", lm="2026-01-01T00:00:01.000000"),  # a user's write meanwhile
             entry("new")]  # a new object (or a late container update)
    assert containerstate.unexplained(before, {"ours"}, after) == ["raced", "new"]
    assert containerstate.unexplained(before, {"ours"}, [entry("kept"), entry("ours", etag="new iv")]) == []
    assert containerstate.unexplained(before, set(), [entry("ours", etag="new iv")]) == ["ours"]
    # An older journal's container_done without a digest proves nothing: rescanned.
    path = tmp_path / "j"
    path.write_text('{"event": "container_done", "container": "A/old"}\n'
                    '{"event": "container_done", "container": "A/new", "state": "sha256:1"}\n{"torn')
    assert reencrypt.Journal(path).done_containers == {"A/new": "sha256:1"}


def test_unencrypted_means_swift_stored_nothing_encrypted(kt, rot):
    """0 bytes, no user metadata and a listing etag Swift left in plain text (the MD5 of nothing):
    unencrypted. A symlink without metadata is 0 bytes too, but its listing etag carries its target
    and Swift's encrypter encrypts it: it needs the key, and counts under it."""
    account = "AUTH_rotsymlink"
    base = f"{rot['A'].url}/v1/{account}/c"
    requests.put(base).raise_for_status()
    for name, headers in {"empty": {}, "empty-meta": {"X-Object-Meta-M": "1"},
                          "dlo": {"X-Object-Manifest": "c/seg/"}, "link": {"X-Symlink-Target": "c/empty"},
                          "link-meta": {"X-Symlink-Target": "c/empty", "X-Object-Meta-M": "1"}}.items():
        requests.put(f"{base}/{name}", data=b"", headers=headers).raise_for_status()
    doc = _usage(kt, rot, account=account)
    (container,) = doc["containers"]
    assert doc["unencrypted"] == {"objects": 2, "bytes": 0}  # empty, dlo
    assert container["by_secret_id"] == {"": {"objects": 3, "bytes": 0}}  # empty-meta, link, link-meta
    # Why the bare symlink counts: a proxy without key_id cannot decrypt its listing entry.
    listing = {o["name"]: o for o in requests.get(f"{rot['B'].url}/v1/{account}/c",
                                                  params={"format": "json"}).json()}
    assert listing["link"]["hash"] == "<unknown>" and "symlink_path" not in listing["link"]
    args = ["--proxy-config", str(rot["AB"].conf), "--account", account, "--state-dir", str(rot["state"])]
    done = _json(kt("swift", "reencrypt", *args, "--from-key-id", "key_id", "-f", "json"))
    assert done["rewritten"] == 3 and done["skipped"] == 2
    listing = {o["name"]: o for o in requests.get(f"{rot['B'].url}/v1/{account}/c",
                                                  params={"format": "json"}).json()}
    assert listing["link"]["symlink_path"] == f"/v1/{account}/c/empty"
    assert listing["link"]["hash"] == listing["empty"]["hash"] == "d41d8cd98f00b204e9800998ecf8427e"
