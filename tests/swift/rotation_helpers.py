"""A mixed object workload for root-secret rotation tests and the benchmark, and a snapshot of
everything a client sees (bytes, headers) to compare before/after re-encryption.

Written over HTTP through real proxies (keystone-less pipeline, see swift_helpers): plain objects
of several sizes incl. 0 bytes, user metadata, content types, X-Delete-At, a multi-segment SLO and
DLO, a symlink, and a legacy versioned container (X-Versions-Location) with history.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import requests

SEGMENT = 70_000
# legacy versioned_writes (X-Versions-Location / X-History-Location) must be allowed on the proxy
VERSIONING = {"filter:versioned_writes": {"allow_versioned_writes": "true"}}
# What a client sees of an object and must not change (Last-Modified included: the offset trick).
KEPT_HEADERS = ("Content-Type", "Etag", "Content-Length", "X-Delete-At", "X-Static-Large-Object",
                "X-Object-Manifest", "X-Symlink-Target", "Last-Modified")


@dataclass
class Workload:
    account: str
    objects: dict[str, bytes] = field(default_factory=dict)  # container/name -> body written


def _ok(resp: requests.Response) -> requests.Response:
    assert resp.status_code in (200, 201, 202, 204), f"{resp.request.method} {resp.url}: {resp.status_code} {resp.text[:200]}"
    return resp


def write_workload(url: str, account: str, tag: str, sizes: tuple[int, ...] = (0, 1, 1000, 65_536, 300_001),
                   session: requests.Session | None = None) -> Workload:
    """Write the mix into containers ``<tag>-*`` of ``account`` through the proxy at ``url``."""
    s = session or requests.Session()
    base = f"{url}/v1/{account}"
    load = Workload(account)
    for c in ("plain", "segments", "versions", "history"):
        _ok(s.put(f"{base}/{tag}-{c}"))
    _ok(s.put(f"{base}/{tag}-versioned", headers={"X-Versions-Location": f"{tag}-versions"}))
    _ok(s.put(f"{base}/{tag}-histd", headers={"X-History-Location": f"{tag}-history"}))

    def put(path: str, body: bytes, **headers: str) -> None:
        _ok(s.put(f"{base}/{path}", data=body, headers=headers))
        load.objects[path] = body

    for size in sizes:
        put(f"{tag}-plain/size-{size}", os.urandom(size), **{"Content-Type": f"application/x-size-{size}"})
        put(f"{tag}-plain/meta-{size}", os.urandom(size), **{"X-Object-Meta-Colour": f"red-{size}",
                                                              "X-Object-Meta-Owner": "ünïcode"})
    put(f"{tag}-plain/expiring", b"expires next year", **{"X-Delete-At": str(int(time.time()) + 365 * 86400)})
    segments = []
    for i in range(3):
        body = os.urandom(SEGMENT + i)
        put(f"{tag}-segments/slo/{i:03d}", body)
        segments.append({"path": f"/{tag}-segments/slo/{i:03d}", "etag": hashlib.md5(body).hexdigest(),
                         "size_bytes": len(body)})
    _ok(s.put(f"{base}/{tag}-plain/slo", params={"multipart-manifest": "put"}, data=json.dumps(segments),
              headers={"Content-Type": "video/x-slo", "X-Object-Meta-Kind": "slo"}))
    for i in range(2):
        put(f"{tag}-segments/dlo/{i:03d}", os.urandom(SEGMENT - i))
    _ok(s.put(f"{base}/{tag}-plain/dlo", data=b"", headers={"X-Object-Manifest": f"{tag}-segments/dlo/",
                                                         "Content-Type": "video/x-dlo",
                                                         "X-Object-Meta-Kind": "dlo"}))
    _ok(s.put(f"{base}/{tag}-plain/link", data=b"", headers={"X-Symlink-Target": f"{tag}-plain/size-{sizes[-1]}",
                                                          "X-Object-Meta-Link": "yes"}))
    for version in (b"v1 " * 100, b"v2 " * 200, b"v3 current" * 50):
        _ok(s.put(f"{base}/{tag}-versioned/doc", data=version, headers={"X-Object-Meta-V": str(len(version))}))
        _ok(s.put(f"{base}/{tag}-histd/doc", data=version))
    _ok(s.delete(f"{base}/{tag}-histd/doc"))  # history mode: a delete marker and the versions stay
    load.objects[f"{tag}-versioned/doc"] = version
    return load


def snapshot(url: str, account: str, session: requests.Session | None = None) -> dict[str, dict]:
    """Every object of every container as a client sees it: body hash, kept headers, user metadata;
    manifests and symlinks also as themselves (multipart-manifest=get / symlink=get)."""
    s = session or requests.Session()
    base = f"{url}/v1/{account}"
    seen: dict[str, dict] = {}
    for c in _ok(s.get(base, params={"format": "json"})).json():
        for o in _ok(s.get(f"{base}/{c['name']}", params={"format": "json"})).json():
            path = f"{c['name']}/{o['name']}"
            got = _ok(s.get(f"{base}/{path}"))
            raw = _ok(s.get(f"{base}/{path}", params={"multipart-manifest": "get", "symlink": "get"}))
            seen[path] = {
                "sha256": hashlib.sha256(got.content).hexdigest(),
                "headers": {h: got.headers.get(h) for h in KEPT_HEADERS},
                "meta": {k.lower(): v for k, v in got.headers.items() if k.lower().startswith("x-object-meta-")},
                "raw_sha256": hashlib.sha256(raw.content).hexdigest() if "X-Static-Large-Object" not in raw.headers
                else "slo",
                "raw_headers": {h: raw.headers.get(h) for h in ("X-Symlink-Target", "X-Object-Manifest",
                                                                 "X-Static-Large-Object", "Content-Type")},
                "listing": {"bytes": o["bytes"], "hash": o["hash"], "content_type": o["content_type"],
                            "symlink_path": o.get("symlink_path")},
            }
    return seen
