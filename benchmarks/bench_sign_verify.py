"""Benchmark: keytools sign/verify against openssl, cursive and raw hashlib, on 100 MiB and 1 GiB.

Every contender runs as its own process under /usr/bin/time (wall time and peak RSS), on the same
file, in the page cache (one warm-up read first), best of N runs:

  hashlib      python: hashlib.sha256 over 1 MiB readinto chunks (the limit: hashing alone)
  openssl      openssl dgst -sha256 -sign KEY -sigopt rsa_padding_mode:pss
  keytools     keytools sign ... --offline (the whole CLI: start-up, key/cert checks, hash, sign)
  cursive      python: cursive's RSA-PSS verifier fed 64 KiB chunks (what Glance/Nova stream)
  keytools     keytools verify ... --cert (the whole CLI)

Also the library alone in this process (no interpreter start-up): image_signature.hash_file + sign.
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
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from keytools import image_signature as sig  # noqa: E402
from sign import certs, signer  # noqa: E402
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


def timed(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process, from /usr/bin/time."""
    result = subprocess.run(["/usr/bin/time", "-f", "%e %M", *argv], capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {result.stderr.strip()[-400:]}")
    wall, rss = result.stderr.strip().splitlines()[-1].split()
    return float(wall), int(rss)


def best(argv: list[str], runs: int) -> dict[str, float]:
    samples = [timed(argv) for _ in range(runs)]
    wall = min(s[0] for s in samples)
    return {"seconds": wall, "peak_rss_mib": round(max(s[1] for s in samples) / 1024, 1)}


def library(fn, runs: int) -> dict[str, float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"seconds": min(times)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100,1024", help="file sizes in MiB [100,1024]")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", default=str(REPO / "bench-results" / "sign_verify.json"))
    args = parser.parse_args()
    if not shutil.which("openssl") or not Path("/usr/bin/time").exists():
        print("needs openssl and /usr/bin/time", file=sys.stderr)
        return 2
    py = sys.executable
    keytools = [py, "-m", "keytools.cli"]
    results: dict[str, dict] = {}
    tmp = Path(tempfile.mkdtemp(prefix="bench-sign-verify-"))
    try:
        created = certs.create(tmp / "pki", days=2)
        key = certs.read_private_key(created.key_path)
        startup = best([*keytools, "--version"], args.runs)
        for size_mib in (int(s) for s in args.sizes.split(",")):
            image = tmp / f"image-{size_mib}M.raw"
            make_file(image, size_mib * MiB)
            subprocess.run([py, "-c", HASHLIB, str(image)], check=True, capture_output=True)  # warm the cache
            sig_raw = tmp / "openssl.sig"
            props_file = tmp / "props.json"
            b64_file = tmp / "sig.b64"
            row: dict[str, dict] = {}
            row["hashlib_sha256"] = best([py, "-c", HASHLIB, str(image)], args.runs)
            row["openssl_sign"] = best(["openssl", "dgst", "-sha256", "-sign", str(created.key_path), "-sigopt",
                                        "rsa_padding_mode:pss", "-out", str(sig_raw), str(image)], args.runs)
            row["keytools_sign"] = best([*keytools, "sign", str(image), "--key", str(created.key_path),
                                         "--cert-uuid", CERT_UUID, "--cert", str(created.cert_path), "--offline",
                                         "--signature-file", str(tmp / "kt.sig")], args.runs)
            signed = signer.sign_file(image, key, CERT_UUID)
            props_file.write_text(json.dumps(signed.properties))
            b64_file.write_text(signed.properties[sig.SIGNATURE])
            row["cursive_verify"] = best([py, "-c", CURSIVE, str(image), str(created.cert_path), str(b64_file)],
                                         args.runs)
            row["keytools_verify"] = best([*keytools, "verify", str(image), "--properties", str(props_file),
                                           "--cert", str(created.cert_path)], args.runs)
            row["keytools_sign_library"] = library(lambda: signer.sign_file(image, key, CERT_UUID), args.runs)
            prepared = verifier.prepare(signed.properties, verifier.file_source(str(created.cert_path)),
                                        cert_label="bench certificate")
            row["keytools_verify_library"] = library(lambda: verifier.verify_file(image, prepared), args.runs)
            for entry in row.values():
                entry["gb_per_s"] = round(size_mib * MiB / entry["seconds"] / 1e9, 2)
            results[f"{size_mib}MiB"] = row
            image.unlink()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"keytools CLI start-up alone (keytools --version): {startup['seconds']:.2f} s, "
          f"{startup['peak_rss_mib']} MiB")
    print(f"{'size':>8} {'contender':<24} {'seconds':>8} {'GB/s':>6} {'peak RSS MiB':>13}")
    for size, row in results.items():
        for name, entry in row.items():
            rss = entry.get("peak_rss_mib", "-")
            print(f"{size:>8} {name:<24} {entry['seconds']:>8.3f} {entry['gb_per_s']:>6.2f} {rss!s:>13}")
        ratios = {
            "sign_vs_openssl": row["openssl_sign"]["seconds"] / row["keytools_sign"]["seconds"],
            "verify_vs_cursive": row["cursive_verify"]["seconds"] / row["keytools_verify"]["seconds"],
            "sign_vs_hashlib": row["hashlib_sha256"]["seconds"] / row["keytools_sign"]["seconds"],
            "verify_vs_hashlib": row["hashlib_sha256"]["seconds"] / row["keytools_verify"]["seconds"],
            "sign_library_vs_hashlib": row["hashlib_sha256"]["seconds"] / row["keytools_sign_library"]["seconds"],
            "verify_library_vs_hashlib": row["hashlib_sha256"]["seconds"] / row["keytools_verify_library"]["seconds"],
            "verify_library_vs_cursive": row["cursive_verify"]["seconds"] / row["keytools_verify_library"]["seconds"],
        }
        row["ratios"] = {k: round(v, 3) for k, v in ratios.items()}
        print(f"{size:>8} speed ratios (>1 = keytools faster): "
              + ", ".join(f"{k} {v:.2f}x" for k, v in row["ratios"].items()))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "sign_verify", "cpu_count": os.cpu_count(),
                                "load_average": os.getloadavg(), "cli_startup": startup, "results": results},
                              indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
