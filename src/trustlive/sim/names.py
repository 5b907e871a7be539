"""Deterministic Chinese-style display names for generated buyers.

Buyer ``i`` always gets the same name (its generator is seeded by the index, not by the order of
creation), so seeding 10 buyers and later 3000 gives the first 10 the same names both times.
Most names are surname + one or two given-name characters; about a quarter are app nicknames of
the kind people pick on short-video platforms. All are made up by combination.
"""

from __future__ import annotations

import random

SEED = "trustlive-demo-v1"

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
    "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
)
# Given names: a first character and a second, or the second alone (one-character given names).
GIVEN_FIRST = "子梓欣佳雨思晓文志建国秀丽春海俊嘉雅诗宇浩一若明金玉桂淑永家"
GIVEN_SECOND = "涵轩怡琪婷杰峰华明芳娟洁敏静强伟磊军霞燕辉凯宁萱然彤琳晨阳波兰英平涛鹏"
NICK_HEADS = (
    "爱笑的",
    "快乐的",
    "安静的",
    "温柔的",
    "勤快的",
    "乐观的",
    "宝妈",
    "老铁",
    "山城",
    "小城",
    "东北",
    "江南",
    "会做饭的",
    "爱喝茶的",
    "追光的",
)
NICK_TAILS = (
    "小太阳",
    "向日葵",
    "橘子",
    "小鹿",
    "棉花糖",
    "大白",
    "阿花",
    "玉友",
    "茉莉",
    "小鱼",
    "石头",
    "麦穗",
    "小满",
    "糖糖",
    "青柠",
    "果果妈",
    "二宝妈",
)


def buyer_username(index: int) -> str:
    """``buyer0001``; more digits past 9999."""
    return f"buyer{index:04d}"


def buyer_display_name(index: int) -> str:
    rng = random.Random(f"{SEED}/buyer/{index}")
    if rng.random() < 0.25:
        name = rng.choice(NICK_HEADS) + rng.choice(NICK_TAILS)
        return name + (f"{rng.randint(1, 9999):04d}" if rng.random() < 0.4 else "")
    given = rng.choice(GIVEN_SECOND)
    if rng.random() < 0.7:
        given = rng.choice(GIVEN_FIRST) + given
    return rng.choice(SURNAMES) + given
