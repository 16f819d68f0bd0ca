"""Finding many words at once in a text: leftmost-longest matches, each word with a value.

Why a module of its own: the parser runs it on every distinct address, so it must be fast (the Rust
``aho-corasick`` automaton through ``ahocorasick_rs``: a character's transition is a table look-up, where
pyahocorasick scanned a node's children one by one), and the build cache must be able to store it (the
Rust automaton does not pickle: a :class:`Matcher` pickles as its words and values and rebuilds itself).

Leftmost-longest: from the text's start, the match that starts first, and of those the longest; then the
same after its end. So 南山南园 is 南山 + 南园, never 山南, and 招商 inside 招商果岭花园 is part of that name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import ahocorasick_rs

__all__ = ["Matcher"]

V = TypeVar("V")


class Matcher(Generic[V]):
    """Words (non-empty, distinct) with a value each; :meth:`find` gives their leftmost-longest matches."""

    __slots__ = ("_all", "_automaton", "values", "words")

    def __init__(self, items: Iterable[tuple[str, V]]) -> None:
        pairs = list(items)
        self.words: list[str] = [w for w, _ in pairs]
        self.values: list[V] = [v for _, v in pairs]
        if len(set(self.words)) != len(self.words) or not all(self.words):
            raise ValueError("a Matcher's words must be distinct and non-empty")
        # ContiguousNFA: built in a tenth of a second for the lexicon (the DFA takes three times as long to
        # build, and each run builds it anew from the cache), and about as fast on short addresses.
        self._automaton = ahocorasick_rs.AhoCorasick(
            self.words, matchkind=ahocorasick_rs.MatchKind.LeftmostLongest,
            implementation=ahocorasick_rs.Implementation.ContiguousNFA) if self.words else None
        self._all: Any = None  # every (overlapping) match: built when first asked for (only while building)

    def find(self, text: str) -> list[tuple[int, int, int]]:
        """The leftmost-longest matches as (word index, start, end), in order; indexes count characters."""
        return self._automaton.find_matches_as_indexes(text) if self._automaton is not None else []

    def find_all(self, text: str) -> list[tuple[int, int, int]]:
        """Every match, overlapping ones too, as (word index, start, end), by end then start."""
        if self._automaton is None:
            return []
        if self._all is None:
            self._all = ahocorasick_rs.AhoCorasick(self.words)
        return sorted(self._all.find_matches_as_indexes(text, overlapping=True), key=lambda m: (m[2], m[1]))

    def any_in(self, text: str) -> bool:
        """Whether any word occurs in ``text``."""
        return bool(self.find(text))

    def __len__(self) -> int:
        return len(self.words)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Matcher, (list(zip(self.words, self.values)),))
