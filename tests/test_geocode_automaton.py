"""The lexicon's matcher finds exactly the leftmost-longest mentions, as a plain scan of the same names does.

Hostile text: names cut at both ends, glued together, with digits, letters, separators and the words written
around names between them, and names that overlap (a name's end the start of another).
"""

from __future__ import annotations

import random

import pytest

from geoalloc.geocode.lexicon import lexicon
from geoalloc.geocode.matcher import Matcher


def _leftmost_longest(words: set[str], longest: int, text: str) -> list[tuple[str, int, int]]:
    """The definition, position by position: the longest word starting here, then carry on after it."""
    out: list[tuple[str, int, int]] = []
    i = 0
    while i < len(text):
        for j in range(min(len(text), i + longest), i, -1):
            if text[i:j] in words:
                out.append((text[i:j], i, j))
                i = j
                break
        else:
            i += 1
    return out


def _hostile(forms: list[str], rng: random.Random) -> str:
    glue = list("0123456789栋号室 附近地铁站ABxy-市区路") + ["", "", ""]
    parts = []
    for _ in range(rng.randint(1, 4)):
        f = rng.choice(forms)
        cut = rng.random()
        if cut < 0.3:
            f = f[rng.randint(0, len(f) - 1):]
        elif cut < 0.5:
            f = f[: rng.randint(1, len(f))]
        elif cut < 0.6:  # two names sharing characters: 南山 + 山南 -> 南山南
            g = rng.choice(forms)
            k = next((k for k in range(min(len(f), len(g)) - 1, 0, -1) if f.endswith(g[:k])), 0)
            f = f + g[k:]
        parts.append(f + rng.choice(glue))
    return "".join(parts)


def test_the_lexicon_finds_the_leftmost_longest_names() -> None:
    lex = lexicon()
    forms = sorted(lex.forms)
    words, longest = set(forms), max(map(len, forms))
    info_of = {form: info for form, _, info in lex.automaton.values}
    rng = random.Random(18)
    for _ in range(10_000):
        text = _hostile(forms, rng)
        found = [(f, a, b) for a, b, f, _, _ in lex.find(text)]
        assert found == _leftmost_longest(words, longest, text), text
        for a, b, f, entries, info in lex.find(text):
            assert text[a:b] == f and entries == lex.forms[f] and info is info_of[f]


def test_a_matcher_on_small_word_lists() -> None:
    rng = random.Random(5)
    alphabet = "南山区粤海"
    for _ in range(3_000):
        words = sorted({"".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4))) for _ in range(rng.randint(1, 8))})
        m = Matcher((w, k) for k, w in enumerate(words))
        text = "".join(rng.choice(alphabet + "0 ") for _ in range(rng.randint(0, 12)))
        got = [(m.words[i], a, b) for i, a, b in m.find(text)]
        assert got == _leftmost_longest(set(words), 4, text), (words, text)
        assert [m.values[i] for i, _, _ in m.find(text)] == [words.index(w) for w, _, _ in got]
        assert m.any_in(text) == any(w in text for w in words)
        every = sorted((text[a:b], a, b) for i, a, b in m.find_all(text) if text[a:b] == m.words[i])
        assert every == sorted((w, a, a + len(w)) for w in words for a in range(len(text)) if text.startswith(w, a))


def test_a_matcher_refuses_duplicate_or_empty_words() -> None:
    with pytest.raises(ValueError):
        Matcher([("南山", 1), ("南山", 2)])
    with pytest.raises(ValueError):
        Matcher([("", 1)])
