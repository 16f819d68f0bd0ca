"""Importing a roster over HTTP: bounded before any work, validated row by row, stored in one transaction.

Limits (``GEOALLOC_MAX_UPLOAD_MB``, ``MAX_UNPACKED_MB``, ``MAX_IMPORT_ROWS``) are checked on the
bytes first: the upload's size (also enforced while it streams in, see ``api.middleware``), an
.xlsx file's unpacked size (it is a zip: 1.5 MB can unpack to gigabytes) and the row count,
before pandas or openpyxl parse anything. Then every row the library's roster validation admits
is checked for what the store can hold: text fields within their length and free of control
characters (the same rule PATCH applies), and ``weight`` at most the branch maximum (a row of
weight k is k members in one branch).
"""

from __future__ import annotations

import io
import re
import zipfile
from typing import TYPE_CHECKING, Any

import pandas as pd

from api import library
from api.problems import ProblemError
from api.schemas import ImportReport, RejectOut
from geoalloc.rules import Policy
from geoalloc.store.members import TEXT_LIMITS, text_problem, upsert_members
from geoalloc.store.plans import newest_plan

if TYPE_CHECKING:
    from api.context import ServiceContext

_ROW = re.compile(rb"<(?:[A-Za-z_][\w.-]*:)?row[\s>/]")
_EXCEL = (".xlsx", ".xlsm")


def is_excel(filename: str) -> bool:
    """Whether the upload is read as Excel (as ``geoalloc.roster`` decides it)."""
    return filename.lower().endswith((*_EXCEL, ".xls"))


def check_upload(data: bytes, filename: str, max_unpacked: int, max_rows: int) -> None:
    """413 for a roster whose rows or unpacked size are over the limits; cheap, before any parsing."""
    if not is_excel(filename):
        rows = data.count(b"\n") + (0 if data.endswith(b"\n") else 1) - 1  # minus the header
        if rows > max_rows:
            raise ProblemError(413, f"the roster has more than {max_rows:,} rows (about {rows:,}); split it",
                               title="Too many rows")
        return
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        return  # not a zip: the roster reader says it cannot be read (400)
    with zf:
        infos = zf.infolist()
        unpacked = sum(i.file_size for i in infos)
        if unpacked > max_unpacked:
            raise ProblemError(413, f"the workbook unpacks to {unpacked / 2**20:,.0f} MB, more than the "
                                    f"{max_unpacked / 2**20:,.0f} MB allowed", title="Workbook too large")
        sheets = [i for i in infos if i.filename.startswith("xl/worksheets/") and i.filename.endswith(".xml")]
        if sheets:  # pandas reads the first sheet; count its rows without parsing the XML
            rows = _count_rows(zf, sheets[0], max_rows + 2) - 1
            if rows > max_rows:
                raise ProblemError(413, f"the roster has more than {max_rows:,} rows; split it", title="Too many rows")


def _count_rows(zf: zipfile.ZipFile, info: zipfile.ZipInfo, stop: int) -> int:
    """``<row>`` elements of a worksheet, counted on the streamed bytes (stops once past ``stop``).

    A match starts at ``<`` and holds no other ``<``: what follows the last ``<`` of a chunk is
    carried over to the next, so no element is split or counted twice.
    """
    n, tail = 0, b""
    with zf.open(info) as f:  # zipfile never yields more than the declared size
        while n < stop:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            buf = tail + chunk
            cut = buf.rfind(b"<")
            if cut < 0:
                cut = len(buf)
            n += len(_ROW.findall(buf, 0, cut))
            tail = buf[cut:][:256]  # an element name is short: a longer tail cannot start a row
    return n + len(_ROW.findall(tail))


def _store_problems(members: pd.DataFrame, max_weight: int) -> list[dict[str, Any]]:
    """Rows the store cannot take as they are: (row, member_id, field, reason) each."""
    out = []
    fields = [f for f in TEXT_LIMITS if f in members.columns]
    for rec in members.to_dict("records"):
        for f in fields:
            value = rec.get(f)
            if isinstance(value, str) and value:
                why = text_problem(f, value)
                if why is not None:
                    out.append({"row": int(rec["row"]), "member_id": _shown_id(rec), "field": f, "reason": why})
                    break
        else:
            weight = int(rec.get("weight") or 1)
            if weight > max_weight:
                out.append({"row": int(rec["row"]), "member_id": _shown_id(rec), "field": "weight",
                            "reason": f"a row of weight {weight} cannot fit in one branch (at most {max_weight} "
                                      "members, the plan's max_size): split it into rows of the same group_id"})
    return out


def _shown_id(rec: dict[str, Any]) -> str:
    """The member id as a report may echo it (bad ids are not echoed)."""
    mid = str(rec.get("member_id") or "")
    return mid if text_problem("member_id", mid) is None else ""


def import_roster(ctx: ServiceContext, key_id: str, data: bytes, filename: str) -> ImportReport:
    """Validate, geocode offline and upsert a roster; the report names every rejected row."""
    from geoalloc.roster import RosterError

    s = ctx.settings
    check_upload(data, filename, s.max_unpacked_mb * 2**20, s.max_import_rows)
    try:
        result = library.read_roster(data, filename)
    except RosterError as exc:
        raise ProblemError(400, _short(str(exc)), title="Unreadable roster") from exc
    with ctx.db.read() as session:
        plan = newest_plan(session)
        max_weight = Policy.from_dict(plan.policy or {}).max_size if plan is not None else Policy().max_size
    extra = _store_problems(result.members, max_weight)
    members = result.members
    rejects = [{"row": int(r["row"]), "member_id": _shown_id(r), "field": str(r["field"]), "reason": str(r["reason"])}
               for r in result.rejects.to_dict("records")]
    if extra:
        bad_rows = {e["row"] for e in extra}
        members = members[~members["row"].isin(bad_rows)].reset_index(drop=True)
        rejects = sorted(rejects + extra, key=lambda r: int(str(r["row"])))
    summary = dict(type(result)(members=members, rejects=pd.DataFrame(rejects)).summary)
    geocoded: dict[str, int] = {}
    if len(members):
        placed = library.place_members(members)
        if "geo_status" in placed:
            geocoded = {str(k): int(v) for k, v in placed["geo_status"].value_counts().items()}
        with ctx.db.write() as session:
            counts = upsert_members(session, placed, key_id)
    else:
        counts = {"created": 0, "updated": 0, "unchanged": 0}
    return ImportReport(filename=filename[:255], summary=_plain(summary), geocoded=geocoded,
                        rejects=[RejectOut(**r) for r in rejects], **counts)


def _short(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (_plain(v) if isinstance(v, dict) else (v.item() if hasattr(v, "item") else v)) for k, v in d.items()}
