"""Content hashes that are the same in every process and on every machine (unlike `hash()`)."""

import hashlib


def _digest(s: str) -> bytes:
    return hashlib.blake2b(s.encode("utf-8", "surrogatepass"), digest_size=8).digest()


def stable_hash(s: str) -> int:
    """Unsigned 64-bit int (0 <= h < 2**64) from blake2b of the UTF-8 text; `f"{h:016x}"` for hex ids.

    For ids, ordering and modulo only: never as a shuffle key (see `key_hash`)."""
    return int.from_bytes(_digest(s), "big")


def key_hash(s: str) -> int:
    """The same 64 bits as `stable_hash`, read as a signed int (-2**63 <= h < 2**63).

    Hashes that cross a shuffle as keys take this form: runners encode an `int` key with a signed 64-bit
    coder (Beam's VarIntCoder, Dataflow's and the portable runners' int64), which rejects half of the
    unsigned values. Equal texts still get equal keys, so grouping is unchanged."""
    return int.from_bytes(_digest(s), "big", signed=True)
