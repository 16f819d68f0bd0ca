"""The curated public API resolves, and every exported name is real."""

from __future__ import annotations

import geoalloc


def test_every_export_resolves() -> None:
    missing = [name for name in geoalloc.__all__ if name != "__version__" and getattr(geoalloc, name, None) is None]
    assert missing == []


def test_unknown_name_is_an_attribute_error() -> None:
    try:
        geoalloc.not_a_thing  # noqa: B018
    except AttributeError as exc:
        assert "not_a_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")
