"""The lexicon's automaton, its root ordered for speed, finds exactly what a plain automaton of the same names finds.

Hostile text: names cut at both ends, glued together, with digits, letters, separators and the words written
around names between them (pyahocorasick's longest-match walk has quirks; the order of a node's children must
not change them).
"""

from __future__ import annotations

import random

import ahocorasick

from geoalloc.geocode.lexicon import lexicon


def test_ordered_root_finds_what_a_plain_automaton_finds() -> None:
    lex = lexicon()
    plain = ahocorasick.Automaton()
    for form, value in lex.automaton.items():
        if value is not None:  # the ordering words carry no reading
            plain.add_word(form, value)
    plain.make_automaton()
    forms = sorted(lex.forms)
    glue = list("0123456789栋号室 附近地铁站ABxy-市区路") + ["", "", ""]
    rng = random.Random(18)
    for _ in range(20_000):
        parts = []
        for _ in range(rng.randint(1, 4)):
            f = rng.choice(forms)
            cut = rng.random()
            if cut < 0.3:
                f = f[rng.randint(0, len(f) - 1):]
            elif cut < 0.5:
                f = f[: rng.randint(1, len(f))]
            parts.append(f + rng.choice(glue))
        text = "".join(parts)
        assert list(lex.automaton.iter_long(text)) == list(plain.iter_long(text)), text
        assert list(lex.automaton.iter(text)) == list(plain.iter(text)), text
