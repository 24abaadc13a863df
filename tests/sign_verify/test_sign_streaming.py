"""The streaming hash under sign and verify: exact at every chunk boundary, errors surface, memory flat."""

from __future__ import annotations

import hashlib
import os
import tracemalloc

import pytest

from keytools import image_signature as sig


@pytest.mark.parametrize("read_ahead", [False, True])
@pytest.mark.parametrize("size", [1, 4095, 4096, 4097, 5 * 4096 + 3, 64 * 4096])
@pytest.mark.parametrize("method", list(sig.HASH_METHODS))
def test_hash_file_matches_hashlib(tmp_path, size, method, read_ahead):
    data = os.urandom(size)
    path = tmp_path / "f"
    path.write_bytes(data)
    seen = []
    with open(path, "rb") as handle:
        digest = sig.hash_file(handle, method, progress=seen.append, chunk_size=4096, read_ahead=read_ahead)
    assert digest.value == hashlib.new(sig.HASH_METHODS[method], data).digest()
    assert digest.size == size == sum(seen)


@pytest.mark.parametrize("read_ahead", [False, True])
def test_read_error_surfaces(tmp_path, read_ahead):
    path = tmp_path / "w"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(OSError):
            sig.hash_file(fd, "SHA-256", read_ahead=read_ahead)
    finally:
        os.close(fd)


@pytest.mark.parametrize("read_ahead", [False, True])
def test_memory_is_flat_in_file_size(tmp_path, read_ahead):
    path = tmp_path / "big"
    block = os.urandom(1024 * 1024)
    with open(path, "wb") as handle:
        for _ in range(48):
            handle.write(block)
    tracemalloc.start()
    try:
        with open(path, "rb") as handle:
            sig.hash_file(handle, "SHA-256", read_ahead=read_ahead)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < (sig.BUFFERS + 2) * sig.CHUNK_SIZE  # a few fixed buffers, not the 48 MiB file


def test_hash_chunks_for_downloads():
    chunks = [os.urandom(n) for n in (1, 65536, 7, 65536)]
    digest = sig.hash_chunks(chunks, "SHA-512")
    assert digest.value == hashlib.sha512(b"".join(chunks)).digest() and digest.size == 131080
