"""The parser's shortcuts (rules skipped where they cannot apply) give exactly what running every rule gives.

Addresses of every kind the parser reads: bare estates, market areas after the estate, unit names inside
place names, conflicts, old district names, ambiguous names, 市/省 inside names, separators, other cities
with Shenzhen-like names, plus generated ones. Written for this test; names are the bundled ones.
"""

from __future__ import annotations

from geoalloc.districts import named_places
from geoalloc.geocode import OfflineGeocoder
from geoalloc.samples import generate_addresses

WRITTEN = [
    "富达花园7栋502", "龙祥苑", "碧海红树园 3座12B", "招商华侨城曦城 二期", "东方·尊峪花园", "深南东路5015-9号",
    "光明大街站B口旁出租屋", "莲花山公园北门对面", "和平大厦1206", "和平大厦1206 罗湖区", "锦绣东方苑 西乡 宝民二路",
    "嘉盛公寓 民治", "海悦华府 车公庙", "西乡 锦绣东方苑", "宝安区新湖路88号", "桃源居十六区 西乡", "招商锦绣苑 龙岗区布吉",
    "罗湖区西乡街道宝民一路", "宝安区民治街道人民路", "宝安区龙华镇和平路", "荣超城市春天花园5栋", "金祥都市花园3栋",
    "中山花园 罗湖区凤凰路12号", "广东省-深圳市-福田区-沙头街道 上沙村", "广东省深圳市广东省深圳市罗湖区东门中路",
    "广东 深圳 南山 粤海 科苑路8号", "深圳市湖南商会大厦 福田区", "昌平区沙河镇北二街5号", "南湖区中山路9号",
    "西乡县城关镇东街3号", "海口市龙华区滨海大道100号", "温州龙岗区柳南街9号", "宁海县桃源街道桃源北路",
    "东莞长安镇乌沙村", "朝阳区望京西园4区", "凤凰社区凤凰雅居", "红星社区红星花园", "深圳龙岗坪地", "深圳南山粤海大冲",
    "宝龙同乐", "宝龙同乐站", "东门市场旁", "市民中心", "南山区粤海街道大冲社区", "福田区华强北", "罗湖区 南山区",
    "沙河镇", "乱七八糟", "", "南山南园", "龙华区民治大道", "观澜镇", "新桥镇",
]


def _parses(geo: OfflineGeocoder, addresses: list[str]) -> list[tuple[object, ...]]:
    return [tuple(vars(geo.parse(a)).values()) for a in addresses]


def test_shortcuts_change_no_parse() -> None:
    estates = named_places()
    estates = estates[estates["kind"] == "estate"]["name_zh"].tolist()[::5]
    generated = generate_addresses(3000, 3)["address"].fillna("").tolist()
    addresses = WRITTEN + estates + generated + [e + " 罗湖区" for e in estates[::4]]
    fast, full = OfflineGeocoder(), OfflineGeocoder()
    full._parser.shortcuts = False
    got, want = _parses(fast, addresses), _parses(full, addresses)
    assert got == want
    # The set reaches both the shortcut and the rules it skips.
    reasons = " ".join(str(p[8]) for p in want)
    for what in ("conflict:", "ambiguous", "historical name", "outside Shenzhen", "estate "):
        assert what in reasons, what
