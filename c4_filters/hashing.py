"""Content hashes that are the same in every process and on every machine (unlike `hash()`)."""

import hashlib


def stable_hash(s: str) -> int:
    """Unsigned 64-bit int (0 <= h < 2**64) from blake2b of the UTF-8 text; `f"{h:016x}"` for hex ids."""
    digest = hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big")
