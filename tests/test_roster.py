"""Roster reading and validation: every kind of bad row is reported by row and field, nothing is lost."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from geoalloc.geocode.datum import from_wgs84
from geoalloc.roster import RosterError, read_roster, validate_roster

GOOD = {"member_id": "OK1", "address": "深圳市南山区粤海街道科苑社区", "lon": "", "lat": "", "datum": "", "status": ""}


def _one_bad(**fields: str) -> pd.DataFrame:
    """A roster with one good row (row 2) and the bad row under test (row 3)."""
    bad = {**GOOD, "member_id": "BAD", **fields}
    return pd.DataFrame([GOOD, bad])


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"member_id": "OK1"}, "member_id", "duplicate of row 2"),
        ({"member_id": ""}, "member_id", "empty"),
        ({"address": ""}, "address", "neither an address nor coordinates"),
        ({"lon": "114.05"}, "lat", "together"),
        ({"lat": "22.55"}, "lon", "together"),
        ({"lon": "abc", "lat": "22.5"}, "lon", "not a number"),
        ({"lon": "114.05", "lat": "north"}, "lat", "not a number"),
        ({"lon": "214.05", "lat": "22.5"}, "lon", "out of range"),
        ({"lon": "114.05", "lat": "95"}, "lat", "out of range"),
        ({"lon": "116.40", "lat": "39.90"}, "lon", "outside Shenzhen"),
        ({"lon": "114.05", "lat": "22.55", "datum": "mars"}, "datum", "unknown datum"),
        ({"status": "retired"}, "status", "unknown status"),
        ({"full_member": "maybe"}, "full_member", "expected 1 or 0"),
        ({"frozen": "2"}, "frozen", "expected 1 or 0"),
        ({"weight": "0"}, "weight", "whole number"),
        ({"weight": "1.5"}, "weight", "whole number"),
        ({"district_zh": "朝阳区"}, "district_zh", "unknown district"),
    ],
)
def test_each_bad_row_is_rejected_with_row_and_field(fields: dict[str, str], field: str, fragment: str) -> None:
    result = validate_roster(_one_bad(**fields))
    assert list(result.members["member_id"]) == ["OK1"]
    assert len(result.rejects) == 1
    rejected = result.rejects.iloc[0]
    assert rejected["row"] == 3
    assert rejected["field"] == field
    assert fragment in rejected["reason"]
    assert any(e.row == 3 and e.field == field for e in result.errors)
    assert "row 3" in str(result.errors[0]) and field in str(result.errors[0])


def test_nothing_is_lost_and_rejects_file_keeps_original_values(tmp_path: Path) -> None:
    df = pd.DataFrame([GOOD, {**GOOD, "member_id": "X", "status": "dead"}, {**GOOD, "member_id": "Y", "address": ""}])
    result = validate_roster(df)
    assert result.summary["rows"] == 3 and result.summary["valid"] == 1 and result.summary["rejected"] == 2
    path = result.write_rejects(tmp_path / "rejects.csv")
    back = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(back["member_id"]) == ["X", "Y"]
    assert list(back["status"]) == ["dead", ""]  # the original value, for the clerk to fix
    assert set(back.columns) >= {"row", "field", "reason"}


def test_missing_member_id_column_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    pd.DataFrame({"id": ["a"], "address": ["x"]}).to_csv(path, index=False)
    with pytest.raises(RosterError, match="member_id"):
        read_roster(path)


def test_unreadable_file_is_a_file_error(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_bytes("member_id,address\n1,南山区".encode("gbk"))
    with pytest.raises(RosterError, match="UTF-8"):
        read_roster(path)
    with pytest.raises(RosterError, match="no such file"):
        read_roster(tmp_path / "missing.csv")


def test_gcj02_and_bd09_coordinates_are_converted_to_wgs84() -> None:
    lon_w, lat_w = 113.9437, 22.5401  # 粤海街道
    rows = []
    for datum in ("wgs84", "gcj02", "bd09"):
        lon, lat = from_wgs84(lon_w, lat_w, datum)
        rows.append({"member_id": datum, "lon": f"{lon:.8f}", "lat": f"{lat:.8f}", "datum": datum.upper()})
    result = validate_roster(pd.DataFrame(rows))
    assert len(result.rejects) == 0
    np.testing.assert_allclose(result.members["lon"], lon_w, atol=1e-6)
    np.testing.assert_allclose(result.members["lat"], lat_w, atol=1e-6)
    assert set(result.members["district_zh"]) == {"南山区"}


def test_point_decides_district_over_stated_one() -> None:
    df = pd.DataFrame([{"member_id": "a", "lon": "113.9437", "lat": "22.5401", "district_zh": "福田"}])
    result = validate_roster(df)
    assert result.members.at[0, "district_zh"] == "南山区"


def test_chinese_status_and_flags_are_understood() -> None:
    df = pd.DataFrame([
        {**GOOD, "member_id": "a", "status": "失联", "full_member": "预备"},
        {**GOOD, "member_id": "b", "status": "转出", "full_member": "是"},
        {**GOOD, "member_id": "c", "status": "Active", "district_zh": "大鹏"},
    ])
    m = validate_roster(df).members.set_index("member_id")
    assert list(m["status"]) == ["lost_contact", "transfer_out", "active"]
    assert list(m["full_member"]) == [0, 1, 1]
    assert m.at["c", "district_zh"] == "大鹏新区"


def test_excel_roster_reads_like_csv(tmp_path: Path, small_roster: pd.DataFrame) -> None:
    path = tmp_path / "roster.xlsx"
    small_roster.head(50).to_excel(path, index=False)
    from_xlsx = read_roster(path).members
    csv_path = tmp_path / "roster.csv"
    small_roster.head(50).to_csv(csv_path, index=False)
    from_csv = read_roster(csv_path).members
    assert list(from_xlsx["member_id"]) == list(from_csv["member_id"])
    np.testing.assert_allclose(from_xlsx["lon"].to_numpy(float), from_csv["lon"].to_numpy(float), equal_nan=True)


def test_bytes_input_with_filename(small_roster: pd.DataFrame) -> None:
    data = small_roster.head(5).to_csv(index=False).encode("utf-8-sig")
    assert len(read_roster(data, filename="upload.csv").members) == 5


def test_sample_roster_is_fully_valid() -> None:
    from geoalloc.paths import sample_roster_path

    result = read_roster(sample_roster_path())
    assert result.summary["rejected"] == 0
    assert result.summary["valid"] == 7000
