"""One parse shared by every address that names a different estate of the same zone in the same way.

A roster names thousands of estates in a dozen ways (``富达花园7栋502``, ``罗湖区富达花园``, the full
chain, ``车公庙地铁站附近富达花园`` ...). What the parser decides from a mention read only as one estate
depends on where the estate lies (its reading without the name), how the mention is written and
what surrounds it, never on the name itself, except in two places: the text of the reason, and
the rule that a place named after a community says nothing about which community it is (the
parser marks a parse that reached that rule). So a parse is kept once per (reading without the
name, the rest of the address's key) when its reason either starts by naming the estate and does
not name it again, or does not name it at all; the next estate of that zone written the same way
gets the same parse with its own name written in.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from geoalloc.model import GeoPrecision

if TYPE_CHECKING:
    from geoalloc.geocode.parser import Parsed

__all__ = ["Template", "fill", "template"]

#: A shared parse and, when its reason opens with the estate's name, the reason after that name (else None).
Template = tuple["Parsed", "str | None"]


_ESTATE = GeoPrecision.ESTATE.value


def _prefix(name: str) -> str:
    return f"{_ESTATE} {name} (no coordinates): "


def template(parsed: Parsed, name: str, text: str, read_names: bool) -> Template | None:
    """``parsed`` as a template for other estates' names, or None when its outcome may depend on the name.

    ``name`` is the estate's name and ``text`` how the address wrote it; ``read_names``: the parse read a
    place's name. A reason that names the estate anywhere but at its start is not shared.
    """
    if read_names:
        return None
    reason = parsed.reason
    prefix = _prefix(name)
    if parsed.precision is GeoPrecision.ESTATE and reason.startswith(prefix):
        rest = reason[len(prefix):]
        return (parsed, rest) if name not in rest and text not in rest else None
    return (parsed, None) if name not in reason and text not in reason else None


def fill(tpl: Template, name: str) -> Parsed:
    """The shared parse for estate ``name``."""
    p, rest = tpl
    if rest is None:
        return p
    # A copy of the frozen record with its own reason (its fields copied in one step: the generated
    # __init__ sets ten fields one by one, and this runs for most addresses of a roster).
    q = object.__new__(type(p))
    fields = q.__dict__
    fields.update(p.__dict__)
    fields["reason"] = _prefix(name) + rest
    return q
