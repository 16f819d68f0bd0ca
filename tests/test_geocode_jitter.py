"""The member spread's numbers are the keyed hash's two 32-bit halves, key by key (stable across runs and machines)."""

from __future__ import annotations

import hashlib

from geoalloc.geocode.offline import jitter_uniforms


def test_jitter_uniforms_are_the_hash_halves_of_each_key() -> None:
    keys = ["m1", "group:7", "addr:富达花园7栋502", "", "m1"]
    u1, u2 = jitter_uniforms(keys)
    for k, a, b in zip(keys, u1.tolist(), u2.tolist()):
        v = int.from_bytes(hashlib.blake2b(k.encode("utf-8"), digest_size=8, person=b"geoalloc").digest(), "little")
        assert (a, b) == ((v & 0xFFFFFFFF) / 2.0**32, (v >> 32) / 2.0**32)
    assert u1[0] == u1[4] and u1[0] != u1[1]
    empty = jitter_uniforms([])
    assert empty[0].shape == (0,) and empty[1].shape == (0,)
