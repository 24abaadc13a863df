"""Benchmark: keytools sign/verify against openssl, cursive and raw hashlib, on 100 MiB and 1 GiB.

Every contender runs as its own process under /usr/bin/time (wall time and peak RSS), on the same
file, in the page cache (one warm-up read first), best of N runs:

  hashlib      python: hashlib.sha256 over 1 MiB readinto chunks (the limit: hashing alone)
  openssl      openssl dgst -sha256 -sign KEY -sigopt rsa_padding_mode:pss
  keytools     keytools sign ... --offline (the whole CLI: start-up, key/cert checks, hash, sign)
  cursive      python: cursive's RSA-PSS verifier fed 64 KiB chunks (what Glance/Nova stream)
  keytools     keytools verify ... --cert (the whole CLI)

and, against a local sandbox cloud (Keystone + Barbican on 127.0.0.1; --state-dir reuses a running
one, --no-barbican skips them), the whole commands with the certificate in Barbican, in the same
rounds as openssl and cursive:

  keytools sign --cert-uuid UUID            (Keystone + Barbican round trips overlap the hash)
  keytools verify --properties P            (certificate from Barbican, overlapping the hash)
  cursive get_verifier via castellan        (Glance's path: Keystone token, castellan reads the
                                             certificate from Barbican, 64 KiB chunks)
  keytools verify, 1-byte image             (the fixed cost: start-up + round trips, no hashing)

and the same work in this process, without interpreter start-up: hashlib, keytools' sign and verify
library calls, cursive's verifier. Rounds are interleaved; the best of N counts.
Writes bench-results/sign_verify.json. Run: .venv/bin/python benchmarks/bench_sign_verify.py
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keytools import image_signature as sig  # noqa: E402
from sign import certs, keys, signer  # noqa: E402
from timing import call_usage, process_usage, ratio, write_results  # noqa: E402
from verify import verifier  # noqa: E402

MiB = 1024 * 1024
CERT_UUID = "00000000-1111-4222-8333-444444444444"

HASHLIB = """
import hashlib, sys
h = hashlib.sha256(); buf = bytearray(1 << 20); mv = memoryview(buf)
with open(sys.argv[1], 'rb', buffering=0) as f:
    while True:
        n = f.readinto(buf)
        if not n: break
        h.update(mv[:n])
print(h.hexdigest())
"""

CURSIVE = """
import base64, sys
from cryptography import x509
from cursive import signature_utils
cert = x509.load_pem_x509_certificate(open(sys.argv[2], 'rb').read())
sig = base64.b64decode(open(sys.argv[3]).read())
v = signature_utils.create_verifier_for_pss(sig, signature_utils.get_hash_method('SHA-256'), cert.public_key())
with open(sys.argv[1], 'rb') as f:
    for chunk in iter(lambda: f.read(65536), b''):
        v.update(chunk)
v.verify()
print('ok')
"""


def make_file(path: Path, size: int) -> None:
    block = os.urandom(16 * MiB)
    with open(path, "wb") as handle:
        left = size
        while left:
            n = min(left, len(block))
            handle.write(block[:n])
            left -= n


CURSIVE_BARBICAN = """
import json, sys, yaml
from keystoneauth1 import session
from keystoneauth1.identity import v3
from oslo_context import context
from oslo_config import cfg
from castellan import options
from cursive import signature_utils
auth = yaml.safe_load(open(sys.argv[3]))['clouds']['sandbox-demo']['auth']
sess = session.Session(auth=v3.Password(**auth))
ctx = context.RequestContext(auth_token=sess.get_token(), project_id=sess.get_project_id())
conf = cfg.ConfigOpts()
options.set_defaults(conf, backend='barbican', auth_endpoint=auth['auth_url'])
api = signature_utils.key_manager.API
signature_utils.key_manager.API = lambda configuration=None: api(conf)
p = json.load(open(sys.argv[2]))
v = signature_utils.get_verifier(ctx, p['img_signature_certificate_uuid'], p['img_signature_hash_method'],
                                 p['img_signature'], p['img_signature_key_type'])
with open(sys.argv[1], 'rb') as f:
    for chunk in iter(lambda: f.read(65536), b''):
        v.update(chunk)
v.verify()
print('ok')
"""


@dataclass
class Cloud:
    """The certificate stored in a sandbox's Barbican, and the clouds.yaml to reach it."""

    clouds_yaml: Path
    cert_uuid: str

    @property
    def env(self) -> dict[str, str]:
        return {**{k: v for k, v in os.environ.items() if not k.startswith("OS_")},
                "OS_CLIENT_CONFIG_FILE": str(self.clouds_yaml)}


def hashlib_inprocess(image: Path) -> None:
    import hashlib

    hasher = hashlib.sha256()
    buf = bytearray(MiB)
    view = memoryview(buf)
    with open(image, "rb", buffering=0) as handle:
        while n := handle.readinto(buf):
            hasher.update(view[:n])


def cursive_inprocess(image: Path, signature: str, cert_path: Path) -> None:
    from cryptography import x509
    from cursive import signature_utils

    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    verifier_ = signature_utils.create_verifier_for_pss(signature_utils.get_signature(signature),
                                                        signature_utils.get_hash_method("SHA-256"), cert.public_key())
    with open(image, "rb") as handle:
        for chunk in iter(lambda: handle.read(65536), b""):
            verifier_.update(chunk)
    verifier_.verify()


def measure(size_mib: int, tmp: Path, created, key, runs: int, cloud: Cloud | None = None) -> dict[str, dict]:
    """Best of ``runs`` rounds; every round runs every contender once (interleaved, so a burst of
    load from elsewhere hits all of them alike)."""
    py = sys.executable
    keytools = [py, "-m", "keytools"]
    image = tmp / f"image-{size_mib}M.raw"
    make_file(image, size_mib * MiB)
    hashlib_inprocess(image)  # warm the page cache
    signed = signer.sign_file(image, key, CERT_UUID)
    props_file, b64_file = tmp / "props.json", tmp / "sig.b64"
    props_file.write_text(json.dumps(signed.properties))
    b64_file.write_text(signed.properties[sig.SIGNATURE])
    prepared = verifier.prepare(signed.properties, verifier.file_source(str(created.cert_path)),
                                cert_label="bench certificate")
    processes = {
        "hashlib_sha256 (process)": [py, "-c", HASHLIB, str(image)],
        "openssl dgst -sign (pss)": ["openssl", "dgst", "-sha256", "-sign", str(created.key_path), "-sigopt",
                                     "rsa_padding_mode:pss", "-out", str(tmp / "openssl.sig"), str(image)],
        "keytools sign (CLI)": [*keytools, "sign", str(image), "--key", str(created.key_path), "--cert-uuid",
                                CERT_UUID, "--cert", str(created.cert_path), "--offline", "--signature-file",
                                str(tmp / "kt.sig")],
        "cursive verify (process)": [py, "-c", CURSIVE, str(image), str(created.cert_path), str(b64_file)],
        "keytools verify (CLI)": [*keytools, "verify", str(image), "--properties", str(props_file), "--cert",
                                  str(created.cert_path)],
    }
    envs: dict[str, dict[str, str]] = {}
    if cloud is not None:
        barbican_signed = signer.sign_file(image, key, cloud.cert_uuid)
        props_barbican = tmp / "props-barbican.json"
        props_barbican.write_text(json.dumps(barbican_signed.properties))
        tiny = tmp / "tiny.raw"
        tiny.write_bytes(b"x")
        props_tiny = tmp / "props-tiny.json"
        props_tiny.write_text(json.dumps(signer.sign_file(tiny, key, cloud.cert_uuid).properties))
        online = [*keytools, "--os-cloud", "sandbox-demo"]
        processes.update({
            "keytools sign (CLI, Barbican cert)": [*online, "sign", str(image), "--key", str(created.key_path),
                                                   "--cert-uuid", cloud.cert_uuid, "--signature-file",
                                                   str(tmp / "kt-barbican.sig")],
            "keytools verify (CLI, Barbican cert)": [*online, "verify", str(image), "--properties",
                                                     str(props_barbican)],
            "cursive get_verifier + Barbican (process)": [py, "-c", CURSIVE_BARBICAN, str(image),
                                                          str(props_barbican), str(cloud.clouds_yaml)],
            "keytools verify (CLI, Barbican, 1 byte)": [*online, "verify", str(tiny), "--properties",
                                                        str(props_tiny)],
        })
        envs = {name: cloud.env for name in processes if "Barbican" in name}
    inprocess = {
        "hashlib_sha256 (in-process)": lambda: hashlib_inprocess(image),
        "keytools sign (library)": lambda: signer.sign_file(image, key, CERT_UUID),
        "cursive verify (in-process)": lambda: cursive_inprocess(image, signed.properties[sig.SIGNATURE],
                                                                 created.cert_path),
        "keytools verify (library)": lambda: verifier.verify_file(image, prepared),
    }
    samples: dict[str, list[tuple[float, int | None, float]]] = {name: [] for name in [*processes, *inprocess]}
    for _ in range(runs):
        for name, argv in processes.items():
            samples[name].append(process_usage(argv, envs.get(name)))
        for name, fn in inprocess.items():
            samples[name].append(call_usage(fn))
    image.unlink()
    row = {}
    for name, values in samples.items():
        seconds = min(v[0] for v in values)
        rss = [v[1] for v in values if v[1] is not None]
        row[name] = {"seconds": round(seconds, 3), "gb_per_s": round(size_mib * MiB / seconds / 1e9, 2),
                     "cpu_seconds": round(min(v[2] for v in values), 3),
                     "peak_rss_mib": round(max(rss) / 1024, 1) if rss else None}
    return row


def ratios(row: dict[str, dict], key: str) -> dict[str, float]:
    t = {name: entry[key] for name, entry in row.items()}
    pairs = {
        "sign library vs openssl": ("openssl dgst -sign (pss)", "keytools sign (library)"),
        "sign library vs hashlib": ("hashlib_sha256 (in-process)", "keytools sign (library)"),
        "verify library vs cursive": ("cursive verify (in-process)", "keytools verify (library)"),
        "verify library vs hashlib": ("hashlib_sha256 (in-process)", "keytools verify (library)"),
        "sign CLI vs openssl": ("openssl dgst -sign (pss)", "keytools sign (CLI)"),
        "verify CLI vs cursive process": ("cursive verify (process)", "keytools verify (CLI)"),
        "sign CLI vs hashlib process": ("hashlib_sha256 (process)", "keytools sign (CLI)"),
        "sign CLI with Barbican cert vs openssl": ("openssl dgst -sign (pss)", "keytools sign (CLI, Barbican cert)"),
        "verify CLI with Barbican cert vs cursive process": ("cursive verify (process)",
                                                             "keytools verify (CLI, Barbican cert)"),
        "verify CLI with Barbican cert vs cursive+Barbican process": (
            "cursive get_verifier + Barbican (process)", "keytools verify (CLI, Barbican cert)"),
    }
    return {label: ratio(t[ref], t[ours]) for label, (ref, ours) in pairs.items()
            if ref in t and ours in t}


def start_cloud(state_dir: str | None, tmp: Path, created) -> tuple[Cloud, object, object]:
    """A sandbox (fresh unless ``state_dir``) with the bench certificate stored by the demo user;
    returns the cloud, its StateDir and whether this run started it."""
    from keytools.sandbox import manager
    from keytools.sandbox.state import StateDir

    state = StateDir(Path(state_dir) if state_dir else tmp / "sandbox")
    manager.up(state)
    cloud = Cloud(state.clouds_yaml, "")
    stored = subprocess.run([sys.executable, "-m", "keytools", "--os-cloud", "sandbox-demo", "cert", "store",
                             str(created.cert_path)], capture_output=True, text=True, env=cloud.env)
    if stored.returncode != 0:
        raise RuntimeError(f"cert store failed: {stored.stderr.strip()[-400:]}")
    cloud.cert_uuid = stored.stdout.strip()
    return cloud, state, state_dir is None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1024", help="file sizes in MiB [100,1024]")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", default=str(REPO / "bench-results" / "sign_verify.json"))
    parser.add_argument("--state-dir", help="reuse this running sandbox for the Barbican contenders")
    parser.add_argument("--no-barbican", action="store_true", help="skip the contenders that need a cloud")
    args = parser.parse_args()
    if not shutil.which("openssl") or not Path("/usr/bin/time").exists():
        print("needs openssl and /usr/bin/time", file=sys.stderr)
        return 2
    results: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-sign-verify-"))
    load_before = os.getloadavg()
    cloud, state, own = None, None, False
    try:
        created = certs.create(tmp / "pki", days=2)
        key = keys.read_private_key(created.key_path)
        if not args.no_barbican:
            cloud, state, own = start_cloud(args.state_dir, tmp, created)
        startup = [process_usage([sys.executable, "-m", "keytools", "--version"]) for _ in range(args.runs)]
        cli_startup = {"seconds": min(s[0] for s in startup), "cpu_seconds": min(s[2] for s in startup),
                       "peak_rss_mib": round(max(s[1] for s in startup) / 1024, 1)}
        for size_mib in (int(s) for s in args.sizes.split(",")):
            row = measure(size_mib, tmp, created, key, args.runs, cloud)
            results[f"{size_mib}MiB"] = {"timings": row, "wall_ratios": ratios(row, "seconds"),
                                         "cpu_ratios": ratios(row, "cpu_seconds")}
    finally:
        if own:
            from keytools.sandbox import manager

            manager.down(state)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"load average before: {load_before[0]:.2f} (2 cores shared); best of {args.runs} interleaved rounds")
    print(f"keytools CLI start-up alone (keytools --version): {cli_startup['seconds']:.2f} s "
          f"({cli_startup['cpu_seconds']:.2f} s CPU), "
          f"{cli_startup['peak_rss_mib']} MiB")
    print(f"{'size':>8} {'contender':<42} {'wall s':>8} {'GB/s':>6} {'CPU s':>7} {'peak RSS MiB':>13}")
    for size, result in results.items():
        for name, entry in result["timings"].items():
            rss = entry["peak_rss_mib"] if entry["peak_rss_mib"] is not None else "-"
            print(f"{size:>8} {name:<42} {entry['seconds']:>8.3f} {entry['gb_per_s']:>6.2f} "
                  f"{entry['cpu_seconds']:>7.3f} {rss!s:>13}")
        for kind in ("wall_ratios", "cpu_ratios"):
            print(f"{size:>8} {kind} (>1 = keytools faster/cheaper): "
                  + ", ".join(f"{k} {v:.2f}x" for k, v in result[kind].items()))
    out = write_results("sign_verify", {"benchmark": "sign_verify", "cpu_count": os.cpu_count(), "runs": args.runs,
                                        "load_average_before": load_before, "cli_startup": cli_startup,
                                        "results": results}, args.out)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
