"""The cross-process sha256 cache of weight files (time to first image)."""

from __future__ import annotations

import hashlib
import json
import os

from sarviz import hashing


def test_persistent_hash_is_reused_by_a_new_process_and_invalidated_by_a_change(tmp_path, monkeypatch):
    cache = tmp_path / "sha256-cache.json"
    monkeypatch.setenv("SARVIZ_HASH_CACHE", str(cache))
    monkeypatch.setattr(hashing, "_HASHES", {})
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"weights v1")
    first = hashing.file_sha256(weights, persistent=True)
    assert first == hashlib.sha256(b"weights v1").hexdigest()
    (key,) = json.loads(cache.read_text())
    # a "new process" (empty in-memory cache) takes the stored digest without reading the file:
    # plant a marker digest for the same key to prove the file was not hashed again
    cache.write_text(json.dumps({key: "f" * 64}))
    monkeypatch.setattr(hashing, "_HASHES", {})
    assert hashing.file_sha256(weights, persistent=True) == "f" * 64
    assert hashing.file_sha256(weights) == "f" * 64  # same process: the in-memory cache
    # a rewritten file (new size/mtime) is hashed again and stored under its new key
    monkeypatch.setattr(hashing, "_HASHES", {})
    weights.write_bytes(b"weights v2, longer")
    os.utime(weights, ns=(1, 2))
    assert hashing.file_sha256(weights, persistent=True) == hashlib.sha256(b"weights v2, longer").hexdigest()
    assert len(json.loads(cache.read_text())) == 2
    # a corrupt cache file is ignored and rewritten
    cache.write_text("{not json")
    monkeypatch.setattr(hashing, "_HASHES", {})
    assert hashing.file_sha256(weights, persistent=True) == hashlib.sha256(b"weights v2, longer").hexdigest()
    assert json.loads(cache.read_text())


def test_default_hashing_writes_no_cache_file(tmp_path, monkeypatch):
    monkeypatch.setenv("SARVIZ_HASH_CACHE", str(tmp_path / "sha256-cache.json"))
    monkeypatch.setattr(hashing, "_HASHES", {})
    (tmp_path / "f.bin").write_bytes(b"x")
    hashing.file_sha256(tmp_path / "f.bin")
    assert not (tmp_path / "sha256-cache.json").exists()
