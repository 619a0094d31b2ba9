"""Near-duplicate detection: MinHash over word shingles finds candidates, the exact Jaccard decides.

MinHash alone can both miss and invent a pair near the threshold; confirming every candidate with the exact
Jaccard of the shingle sets means a text is only ever removed for a measured similarity, which the contribution
log then states. Texts are offered in submission order, so the earlier of a pair is the one kept.
"""

from __future__ import annotations

import hashlib
import re

WORD = re.compile(r"\w+")


def shingles(text: str, size: int) -> frozenset[bytes]:
    """Word `size`-shingles of the case-folded words, each as an 8-byte digest: compact for texts of millions of
    words, and stable across processes (Python's own str hash is salted per process)."""
    words = WORD.findall(text.casefold())
    if not words:
        return frozenset()
    grams = [" ".join(words[i : i + size]) for i in range(max(1, len(words) - size + 1))]
    return frozenset(hashlib.blake2b(g.encode(), digest_size=8).digest() for g in grams)


def jaccard(a: frozenset[bytes], b: frozenset[bytes]) -> float:
    if not a or not b:
        return 0.0
    return len(a & b) / len(a | b)


class NearDuplicates:
    """Kept texts indexed in a MinHash LSH; `check` answers whether a new text is a near copy of one of them."""

    def __init__(self, threshold: float, num_perm: int, seed: int, shingle_words: int) -> None:
        from datasketch import MinHashLSH

        self.threshold, self.num_perm, self.seed, self.size = threshold, num_perm, seed, shingle_words
        self.lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        self.kept: dict[str, frozenset[bytes]] = {}

    def _minhash(self, grams: frozenset[bytes]):
        from datasketch import MinHash

        m = MinHash(num_perm=self.num_perm, seed=self.seed)
        m.update_batch(sorted(grams))
        return m

    def check(self, key: str, text: str) -> tuple[str, float] | None:
        """(the kept text's key, exact Jaccard) when `text` is a near duplicate of a kept text; otherwise None,
        and the text is kept under `key`. Of several matches the most similar (then the smallest key) wins."""
        grams = shingles(text, self.size)
        if not grams:  # nothing to compare: an empty text is for the length filter, not for this one
            return None
        m = self._minhash(grams)
        scored = [(jaccard(grams, self.kept[k]), k) for k in self.lsh.query(m)]
        confirmed = [(j, k) for j, k in scored if j >= self.threshold]
        if confirmed:
            j, k = min(confirmed, key=lambda x: (-x[0], x[1]))
            return k, j
        if key not in self.kept:  # the same key twice is an exact duplicate; that filter has spoken already
            self.lsh.insert(key, m)
            self.kept[key] = grams
        return None
