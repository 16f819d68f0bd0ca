"""Recognising addresses in other cities (transfer candidates), so they are never placed in Shenzhen.

An address that opens with another province or city (北京市朝阳区…, 广州市…, 东莞长安镇…) is
``out_of_city``. Names written with their suffix (省/市/自治区/县) are decisive; bare short names
(东莞, 湖南) count only when nothing Shenzhen-like is found at the start of the address, because
some are also Shenzhen place words.
"""

from __future__ import annotations

import re
from collections.abc import Callable

__all__ = ["OTHER_CITIES", "PROVINCES", "leading_other_place", "leading_short_other_place"]

PROVINCES: dict[str, str] = {
    "北京": "北京市", "天津": "天津市", "上海": "上海市", "重庆": "重庆市",
    "河北": "河北省", "山西": "山西省", "辽宁": "辽宁省", "吉林": "吉林省", "黑龙江": "黑龙江省",
    "江苏": "江苏省", "浙江": "浙江省", "安徽": "安徽省", "福建": "福建省", "江西": "江西省",
    "山东": "山东省", "河南": "河南省", "湖北": "湖北省", "湖南": "湖南省", "海南": "海南省",
    "四川": "四川省", "贵州": "贵州省", "云南": "云南省", "陕西": "陕西省", "甘肃": "甘肃省",
    "青海": "青海省", "台湾": "台湾省", "内蒙古": "内蒙古自治区", "广西": "广西壮族自治区",
    "西藏": "西藏自治区", "宁夏": "宁夏回族自治区", "新疆": "新疆维吾尔自治区",
    "香港": "香港特别行政区", "澳门": "澳门特别行政区",
}

# Guangdong's other prefecture-level cities, then large cities elsewhere that members move to.
OTHER_CITIES: frozenset[str] = frozenset(
    ["广州", "韶关", "珠海", "汕头", "佛山", "江门", "湛江", "茂名", "肇庆", "惠州", "梅州", "汕尾", "河源", "阳江", "清远", "东莞", "中山", "潮州", "揭阳", "云浮", "南京", "苏州", "无锡", "常州", "南通", "徐州", "杭州", "宁波", "温州", "绍兴", "金华", "台州", "嘉兴", "合肥", "芜湖", "福州", "厦门", "泉州", "漳州", "莆田", "南昌", "赣州", "九江", "上饶", "吉安", "宜春", "抚州", "萍乡", "济南", "青岛", "烟台", "潍坊", "临沂", "郑州", "洛阳", "开封", "南阳", "信阳", "周口", "商丘", "武汉", "宜昌", "襄阳", "荆州", "黄冈", "孝感", "十堰", "长沙", "株洲", "湘潭", "衡阳", "邵阳", "岳阳", "常德", "郴州", "永州", "怀化", "娄底", "益阳", "南宁", "柳州", "桂林", "梧州", "北海", "玉林", "钦州", "贵港", "百色", "海口", "三亚", "成都", "绵阳", "南充", "宜宾", "贵阳", "遵义", "昆明", "西安", "兰州", "西宁", "银川", "乌鲁木齐", "拉萨", "呼和浩特", "包头", "石家庄", "唐山", "保定", "太原", "沈阳", "大连", "长春", "哈尔滨", "台北", "高雄"]
)

# One regex instead of a loop: this runs on every address.
_PROVINCE_NAMED = re.compile(
    "^(" + "|".join(sorted(PROVINCES, key=len, reverse=True)) + ")(?:"
    + "|".join(sorted({full[len(short):] for short, full in PROVINCES.items()} | {"省"}, key=len, reverse=True))
    + ")"
)
_PROVINCE_FULL = re.compile(r"^(.{2,8}?)(省|自治区|特别行政区)")
_CITY_FULL = re.compile(r"^(.{2,4}?)(市|县|自治州|地区)(?![场民政])")


def leading_other_place(text: str, is_shenzhen_token: Callable[[str], bool]) -> str | None:
    """The other province/city that ``text`` opens with, written with its suffix; else None.

    ``text`` has had 中国/广东省 stripped already. 深圳 itself, 广东, and Shenzhen names that happen to
    precede 市 (东门市场) are not other places.
    """
    m = _PROVINCE_NAMED.match(text)
    if m:
        return PROVINCES[m.group(1)]
    m = _PROVINCE_FULL.match(text)
    if m and m.group(1) not in ("广东", "深圳"):
        return m.group(0)
    m = _CITY_FULL.match(text)
    if m:
        name = m.group(1)
        if name not in ("深圳", "广东") and not is_shenzhen_token(name) and not name.startswith("深圳"):
            return m.group(0)
    return None


def leading_short_other_place(text: str) -> str | None:
    """A bare province or city name (no suffix) at the start of ``text``, else None."""
    for n in (3, 2, 4):
        head = text[:n]
        if head in PROVINCES and head != "广东":
            return PROVINCES[head]
        if head in OTHER_CITIES:
            return head + "市"
    return None
