"""The demo world: fictional personas, categories, shops, products and generated buyers.

The personas are modelled on the stories in ``shared/seeds/`` (a jade appraiser-recycler with a
loyal following, a Jingdezhen-style kiln, a silk shop, a kids'-clothing creator who teaches
parenting, a family women's-wear room, a furniture brand that broadcasts itself) but every name,
shop and account here is made up.

Everything is created through the domain services, acting as the user who would do it (ops for
categories and staff accounts, each merchant for their own shop). ``seed_demo`` is idempotent:
it looks things up by natural key (username, category slug, the owner's shop, product title within
the shop) and only creates what is missing, so running it twice gives the same world. Generated
data comes from fixed seeds, so every machine gets the same world too.
"""

from __future__ import annotations

import itertools
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from trustlive.accounts import service as accounts
from trustlive.accounts.service import Principal
from trustlive.catalog import service as catalog
from trustlive.catalog.schemas import CategoryIn, ProductIn, ShopIn
from trustlive.config import Settings
from trustlive.db import transaction
from trustlive.errors import NotFound
from trustlive.fulfillment import service as fulfillment
from trustlive.fulfillment.schemas import InspectorIn, LabIn, WarehouseIn
from trustlive.orders import service as orders
from trustlive.orders.schemas import ReturnAddressIn, ReturnsIn
from trustlive.sim import history, images, stories
from trustlive.sim.names import buyer_display_name, buyer_username

DEMO_PASSWORD = "trustlive-demo"
BUYER_BATCH = 500
MAX_IMAGE_BYTES = 5 * 1024 * 1024  # the default upload limit (Settings.max_upload_bytes)

Progress = Callable[[str, int, int], None]


# --- what the world is made of ------------------------------------------------------------------


@dataclass(frozen=True)
class Account:
    username: str
    display_name: str
    who: str  # a few words for the demo-logins table
    roles: tuple[str, ...] = ()  # besides "buyer", which every account has


@dataclass(frozen=True)
class CategorySpec:
    slug: str
    name_zh: str
    name_en: str
    parent: str | None = None
    requires_inspection: bool = False
    return_window_days: int = 7
    service_fee_bp: int = 500


@dataclass(frozen=True)
class ProductSpec:
    """A product and its SKU grid. A SKU's price is ``base_yuan`` plus ``steps[j]`` yuan for each
    position of its value in option ``j``, plus any ``extra`` yuan named by value."""

    code: str  # SKU code prefix, unique within the shop
    title: str
    category: str  # slug
    motif: str  # picture drawn for it (see images.MOTIFS)
    description: str
    base_yuan: int
    options: tuple[tuple[str, tuple[str, ...]], ...] = ()
    steps: tuple[int, ...] = ()
    extra: dict[str, int] = field(default_factory=dict)
    stock: tuple[int, int] = (20, 300)
    draft: bool = False

    def skus(self) -> list[dict[str, object]]:
        rng = random.Random(f"demo-stock/{self.code}")
        axes = [list(enumerate(values)) for _, values in self.options]
        out: list[dict[str, object]] = []
        for combo in itertools.product(*axes):
            yuan = self.base_yuan
            for j, (position, value) in enumerate(combo):
                yuan += (self.steps[j] if j < len(self.steps) else 0) * position
                yuan += self.extra.get(value, 0)
            parts = [_code_part(value, position) for position, value in combo]
            out.append(
                {
                    "code": "-".join([self.code, *parts]),
                    "option_values": [value for _, value in combo],
                    "price_fen": yuan * 100,
                    "stock": rng.randint(*self.stock),
                }
            )
        return out

    def product_in(self, category_id: int) -> ProductIn:
        # Through msgspec.convert, so the demo data passes the same field checks as the API.
        return msgspec.convert(
            {
                "title": self.title,
                "category_id": category_id,
                "description": self.description,
                "options": [{"name": name, "values": list(values)} for name, values in self.options],
                "skus": self.skus(),
            },
            ProductIn,
        )


def _code_part(value: str, position: int) -> str:
    return value if re.fullmatch(r"[A-Za-z0-9]{1,8}", value) else str(position + 1)


@dataclass(frozen=True)
class ShopSpec:
    slug: str
    name: str
    description: str
    tint: str  # hex colour of its pictures and logo
    products: tuple[ProductSpec, ...]


# Where each demo shop takes returns (made-up places), and the shops that pay return postage for
# no-reason returns too (Teacher Xu promises it in her shop's description; the furniture brand
# collects from home).
RETURN_ADDRESSES = {
    "laodu-jade": ("杜师傅（售后）", "13900001001", "广东省揭阳市榕城区", "玉都路 18 号 2 楼"),
    "qingyao-kiln": ("阿青", "13900001002", "江西省景德镇市珠山区", "老窑巷 6 号"),
    "sujin-silk": ("苏锦工作室", "13900001003", "浙江省湖州市吴兴区", "丝绸小镇 3 栋 101"),
    "xiaohaitun-kids": ("小禾", "13900001004", "浙江省金华市义乌市", "童装产业园 C 区 12 号"),
    "meijie-family": ("梅家小雪", "13900001005", "河北省石家庄市新华区", "服装城 5 排 22 号"),
    "mianlifang-home": ("眠立方售后中心", "13900001006", "广东省佛山市顺德区", "龙江家具城 9 号仓"),
}
COVERS_RETURN_SHIPPING = frozenset({"xiaohaitun-kids", "mianlifang-home"})


@dataclass(frozen=True)
class Persona:
    owner: Account
    shop: ShopSpec | None = None
    staff: tuple[Account, ...] = ()


STAFF_ACCOUNTS = (
    Account("ops", "平台运营·林悦", "platform ops: categories, roles, disputes", ("ops",)),
    Account(
        "inspector", "质检员·何静", "inspector at a CNAS-accredited jade lab (QC warehouse)", ("inspector",)
    ),
    Account(
        "care",
        "高危专员·小安",
        "care specialist who follows high-risk after-sales cases",
        ("care_specialist",),
    ),
)

# The QC warehouse jade and jewellery orders go through (先鉴后发), its lab and its inspector.
QC_LAB = LabIn(name="国珠检测中心（演示）", cma_no="202600118866", cnas_no="L8866")
QC_WAREHOUSE = {
    "name": "揭阳质检仓", "recipient": "揭阳质检仓收货组", "phone": "0663-8866001",
    "region": "广东省揭阳市榕城区", "detail": "玉都质检园 1 号楼",
}  # fmt: skip
QC_INSPECTOR = "inspector"

CATEGORIES = (
    CategorySpec("jade", "玉石翡翠", "Jade", requires_inspection=True, service_fee_bp=500),
    CategorySpec(
        "hetian-jade", "和田玉", "Hetian jade", "jade", requires_inspection=True, service_fee_bp=500
    ),
    CategorySpec("jadeite", "翡翠", "Jadeite", "jade", requires_inspection=True, service_fee_bp=500),
    CategorySpec("jewellery", "珠宝首饰", "Jewellery", requires_inspection=True, service_fee_bp=400),
    CategorySpec("porcelain", "陶瓷", "Porcelain", service_fee_bp=300),
    CategorySpec("apparel", "服饰", "Clothing", service_fee_bp=500),
    CategorySpec("silk-clothing", "丝绸服饰", "Silk clothing", "apparel", service_fee_bp=500),
    CategorySpec("kids-clothing", "童装", "Kids' clothing", "apparel", service_fee_bp=300),
    CategorySpec("womens-wear", "女装", "Women's wear", "apparel", service_fee_bp=500),
    CategorySpec("furniture", "家具", "Furniture", service_fee_bp=300),
    CategorySpec("mattresses", "床垫", "Mattresses", "furniture", service_fee_bp=250),
    CategorySpec("custom-made", "定制", "Custom-made", return_window_days=0, service_fee_bp=500),
    CategorySpec("fresh-food", "生鲜", "Fresh food", return_window_days=0, service_fee_bp=100),
)

_BANGLE_SIZES = ("54mm", "56mm", "58mm", "60mm")
_KIDS_SIZES = ("73", "80", "90", "100", "110", "120", "130", "140", "150", "160")
_WOMEN_SIZES = ("S", "M", "L", "XL")
_FIRMNESS = ("软", "适中", "硬")

JADE_SHOP = ShopSpec(
    "laodu-jade",
    "老杜玉石鉴定回收",
    "玉矿老杜：做玉石鉴定、回收、寄卖两年半，8.8万粉丝老铁的信任（about 88,000 fans）。"
    "直播连麦现场鉴定估价，寄卖手续费3%，遇到难处的玉友可以免。所有玉石翡翠订单先鉴后发："
    "先送质检仓，由CMA/CNAS认证实验室出具证书再发货。\n"
    "Lao Du appraises, buys back and sells jade on consignment; every jade order ships through an "
    "accredited inspection lab first.",
    "#2e7d5b",
    (
        ProductSpec(
            "HT-BANGLE",
            "新疆和田玉手镯 籽料 青白玉/白玉/羊脂白玉",
            "hetian-jade",
            "bangle",
            "老杜亲自挑料，每只手镯随附检测证书，先鉴后发。圈口请量好手掌宽度再选。\n"
            "Hetian nephrite bangle, three grades, four inner sizes; lab certificate with every piece.",
            1280,
            (("品级", ("青白玉", "白玉", "羊脂白玉")), ("圈口", _BANGLE_SIZES)),
            steps=(0, 200),
            extra={"白玉": 5520, "羊脂白玉": 36120},
            stock=(1, 3),
        ),
        ProductSpec(
            "JD-PINGAN",
            "缅甸翡翠冰种平安扣吊坠",
            "jadeite",
            "pendant",
            "A货翡翠，冰种起光，配红绳。平安扣寓意平平安安。\n"
            "Type-A icy jadeite 'peace buckle' pendant on a red cord.",
            1880,
            (("直径", ("20mm", "25mm", "30mm")),),
            steps=(900,),
            stock=(2, 8),
        ),
        ProductSpec(
            "JD-BANGLE",
            "缅甸翡翠手镯 糯冰种 正圈",
            "jadeite",
            "bangle",
            "糯冰种底子细腻，水头足。每只都是独一份，图片为同批料。\n"
            "Glutinous-icy jadeite bangle; each one is unique.",
            6800,
            (("圈口", _BANGLE_SIZES),),
            steps=(1500,),
            stock=(1, 2),
        ),
        ProductSpec(
            "HT-PIECE",
            "和田玉籽料把件 原皮雕刻",
            "hetian-jade",
            "pebble",
            "带皮籽料，随形雕刻，盘玩越久越润。\n"
            "Hetian pebble carving with its natural skin, a hand piece for collectors.",
            8800,
            stock=(1, 1),
        ),
        ProductSpec(
            "JW-RING",
            "翡翠蛋面戒指 18K金镶嵌",
            "jewellery",
            "ring",
            "阳绿蛋面，18K金镶钻围镶，可免费调圈。\nGreen jadeite cabochon set in 18K gold.",
            4999,
            (("戒圈", ("12号", "14号", "16号")),),
            stock=(1, 4),
        ),
        ProductSpec(
            "HT-BIYU",
            "和田玉碧玉手镯 菠菜绿",
            "hetian-jade",
            "bangle",
            "新到一批碧玉料，正在拍图，周末直播开售。\nSpinach-green nephrite bangle, coming soon.",
            3680,
            (("圈口", _BANGLE_SIZES),),
            steps=(100,),
            stock=(1, 3),
            draft=True,
        ),
    ),
)

KILN_SHOP = ShopSpec(
    "qingyao-kiln",
    "青窑手作瓷",
    "景德镇老城区的一口柴窑，师傅手拉坯、手绘青花，边烧边播。粉丝不多，都是老朋友。\n"
    "A small wood-fired kiln in a Jingdezhen-style porcelain town: hand-thrown, hand-painted, "
    "broadcast from the workshop.",
    "#1f4e8c",
    (
        ProductSpec(
            "QH-CUP",
            "手绘青花缠枝莲主人杯",
            "porcelain",
            "cup",
            "师傅一笔一笔手绘，每只纹样略有不同。\nHand-painted blue-and-white lotus tea cup.",
            168,
            (("款式", ("单杯", "对杯")),),
            steps=(130,),
            stock=(10, 60),
        ),
        ProductSpec(
            "QH-MEIPING",
            "手绘青花梅瓶 山水纹",
            "porcelain",
            "vase",
            "高约32cm，柴窑烧制，窑变自然。\nHand-painted blue-and-white landscape plum vase, wood-fired.",
            1880,
            stock=(2, 6),
        ),
        ProductSpec(
            "FC-GAIWAN",
            "粉彩花鸟盖碗",
            "porcelain",
            "cup",
            "粉彩手绘，薄胎透光，泡茶不烫手。\nFamille-rose gaiwan with birds and flowers.",
            268,
            (("容量", ("120ml", "150ml")),),
            steps=(30,),
            stock=(8, 40),
        ),
        ProductSpec(
            "YQ-TEASET",
            "影青釉功夫茶具套装",
            "porcelain",
            "vase",
            "影青釉色如湖水，一壶配四杯或六杯。\nQingbai-glaze tea set: one pot with four or six cups.",
            588,
            (("套装", ("1壶4杯", "1壶6杯")),),
            steps=(200,),
            stock=(5, 30),
        ),
        ProductSpec(
            "DZ-CUP",
            "定制刻字主人杯",
            "custom-made",
            "cup",
            "杯底刻名字或一句话，烧成后不可退换，请确认好刻字内容。\n"
            "Tea cup with your own inscription, fired to order (no no-reason return).",
            199,
            (("釉色", ("影青", "甜白", "霁蓝")),),
            stock=(50, 100),
        ),
        ProductSpec(
            "CS-VASE",
            "柴烧粗陶花器",
            "porcelain",
            "vase",
            "这一窑还在冷却，开窑后上架。\nWood-fired stoneware vase, listed once the kiln is opened.",
            399,
            stock=(3, 10),
            draft=True,
        ),
    ),
)

SILK_SHOP = ShopSpec(
    "sujin-silk",
    "苏锦桑蚕丝",
    "苏锦在直播间卖了八年桑蚕丝，老粉每天来打卡聊天。19姆米以上重磅真丝，支持七天无理由。\n"
    "Mulberry-silk clothing, sold live by Su Jin for eight years to fans who drop by every day.",
    "#c2607a",
    (
        ProductSpec(
            "SK-SHIRT",
            "19姆米桑蚕丝真丝衬衫 女",
            "silk-clothing",
            "shirt",
            "100%桑蚕丝，亲肤透气，手洗或干洗。\n19-momme mulberry-silk shirt.",
            599,
            (("颜色", ("珍珠白", "藕粉", "墨绿")), ("尺码", _WOMEN_SIZES)),
            steps=(0, 0),
            extra={"XL": 30},
        ),
        ProductSpec(
            "SK-PJ",
            "重磅真丝睡衣套装",
            "silk-clothing",
            "shirt",
            "22姆米重磅真丝，长袖长裤两件套。\n22-momme silk pyjama set.",
            899,
            (("颜色", ("香槟", "雾霾蓝")), ("尺码", _WOMEN_SIZES)),
        ),
        ProductSpec(
            "SK-SCARF",
            "真丝小方巾 手工卷边",
            "silk-clothing",
            "scarf",
            "53cm方巾，可做发带、领巾、包饰。\nHand-rolled silk square scarf.",
            199,
            (("花色", ("青花", "云纹", "牡丹")),),
        ),
        ProductSpec(
            "SK-XYS",
            "香云纱连衣裙",
            "silk-clothing",
            "dress",
            "广东香云纱，越穿越软。\nGambiered Canton silk dress.",
            1280,
            (("尺码", _WOMEN_SIZES),),
            stock=(5, 40),
        ),
        ProductSpec(
            "SK-PILLOW",
            "真丝枕套 一对装",
            "silk-clothing",
            "pillow",
            "双面真丝，护发护肤。\nA pair of silk pillowcases.",
            269,
            (("颜色", ("奶白", "浅灰", "豆沙")),),
        ),
        ProductSpec(
            "SK-LONG",
            "桑蚕丝长款围巾",
            "silk-clothing",
            "scarf",
            "秋冬新款，打样中。\nLong silk scarf, sampling.",
            329,
            draft=True,
        ),
    ),
)

KIDS_SHOP = ShopSpec(
    "xiaohaitun-kids",
    "小海豚童装",
    "许老师是三个孩子的妈妈，做过老师，直播卖童装也讲育儿：每周三晚上“许老师育儿课堂”。"
    "全码段73-160cm，A类面料，有问题我们出运费退。\n"
    "Kids' clothing from 73 to 160 cm, sold by Teacher Xu, a mother of three who also teaches "
    "parenting live every Wednesday.",
    "#f2a541",
    (
        ProductSpec(
            "KD-BODY",
            "A类纯棉婴儿连体衣 爬服",
            "kids-clothing",
            "shirt",
            "新生儿到两岁，肩开扣好穿脱，无骨缝制不磨皮肤。\nCotton baby bodysuit, class-A fabric.",
            59,
            (("尺码(cm)", ("73", "80", "90", "100")), ("颜色", ("米白", "浅黄", "雾蓝"))),
            steps=(20, 0),
            extra={"雾蓝": 10},
        ),
        ProductSpec(
            "KD-HOME",
            "A类纯棉儿童家居服套装",
            "kids-clothing",
            "shirt",
            "全码段73-160cm，一家几个娃一次买齐。身高之间选大一码。\n"
            "Cotton pyjamas for kids, every size from 73 to 160 cm.",
            79,
            (("尺码(cm)", _KIDS_SIZES), ("颜色", ("米白", "雾蓝", "樱粉"))),
            steps=(5, 0),
        ),
        ProductSpec(
            "KD-SUN",
            "儿童UPF50+防晒外套",
            "kids-clothing",
            "shirt",
            "轻薄透气，帽檐加宽。\nUPF50+ sun jacket for kids.",
            99,
            (
                ("尺码(cm)", ("90", "100", "110", "120", "130", "140", "150", "160")),
                ("颜色", ("天蓝", "柠檬黄")),
            ),
            steps=(5, 0),
        ),
        ProductSpec(
            "KD-SHOE",
            "宝宝学步鞋 软底防滑",
            "kids-clothing",
            "shoe",
            "鞋子还是要买正经品牌：软底、宽头、魔术贴。\nSoft-sole first-walker shoes.",
            89,
            (("鞋码", ("13cm", "14cm", "15cm", "16cm")),),
        ),
        ProductSpec(
            "KD-VEST",
            "儿童摇粒绒背心",
            "kids-clothing",
            "shirt",
            "秋冬打底，机洗不起球。\nFleece vest for kids.",
            69,
            (("尺码(cm)", ("80", "90", "100", "110", "120", "130", "140")),),
        ),
        ProductSpec(
            "KD-DOWN",
            "儿童轻薄羽绒服",
            "kids-clothing",
            "shirt",
            "90%白鸭绒，十月上新。\nLight down jacket for kids, arriving in October.",
            199,
            (("尺码(cm)", ("90", "100", "110", "120", "130", "140", "150", "160")),),
            steps=(10,),
            draft=True,
        ),
    ),
)

WOMENS_SHOP = ShopSpec(
    "meijie-family",
    "梅姐家女装",
    "梅姐带着两个女儿一起播：妈妈挑料子，大女儿试穿，小女儿管售后。实实在在，老铁打开手机就能看到我们。\n"
    "Women's wear from a mother and her two daughters, live almost every day.",
    "#8a5a44",
    (
        ProductSpec(
            "MJ-CARDI",
            "妈妈款羊毛开衫",
            "womens-wear",
            "shirt",
            "50%羊毛，软糯不扎，妈妈穿正合适。\nWool-blend cardigan.",
            239,
            (("颜色", ("燕麦", "酒红", "藏青")), ("尺码", _WOMEN_SIZES)),
            extra={"XL": 20},
        ),
        ProductSpec(
            "MJ-PANTS",
            "高腰垂感阔腿裤",
            "womens-wear",
            "dress",
            "显高显瘦，梨形身材也好穿。\nHigh-waisted wide-leg trousers.",
            159,
            (("颜色", ("黑色", "杏色")), ("尺码", _WOMEN_SIZES)),
        ),
        ProductSpec(
            "MJ-DRESS",
            "碎花雪纺连衣裙",
            "womens-wear",
            "dress",
            "大女儿亲测，160cm穿M码到小腿。\nFloral chiffon dress.",
            199,
            (("尺码", _WOMEN_SIZES),),
        ),
        ProductSpec(
            "MJ-HOODIE",
            "母女同款纯棉卫衣",
            "womens-wear",
            "shirt",
            "妈妈和女儿一起穿。\nMatching cotton hoodie for mothers and daughters.",
            129,
            (("颜色", ("奶白", "雾粉", "灰色")), ("尺码", _WOMEN_SIZES)),
        ),
        ProductSpec(
            "MJ-DOWN",
            "加厚长款羽绒服",
            "womens-wear",
            "dress",
            "90%白鸭绒，零下二十度也不怕。\nLong thick down coat.",
            599,
            (("颜色", ("黑色", "卡其")), ("尺码", _WOMEN_SIZES)),
            extra={"XL": 40},
            stock=(10, 120),
        ),
        ProductSpec(
            "MJ-VEST",
            "针织马甲",
            "womens-wear",
            "shirt",
            "小女儿在打样，下周播。\nKnitted vest, next week.",
            119,
            (("尺码", _WOMEN_SIZES),),
            draft=True,
        ),
    ),
)

_CUBE_DESCRIPTION = (
    "夫妻睡眠习惯不同？床垫分左右两半，每一半单独选软硬：软、适中、硬，九种组合。"
    "独立袋装弹簧+乳胶，1.8米×2米。\n"
    "The cube mattress: left and right halves each in soft, medium or firm, nine combinations."
)

FURNITURE_SHOP = ShopSpec(
    "mianlifang-home",
    "眠立方家居旗舰店",
    "眠立方，做沙发和床垫的老品牌。品牌总监亲自开播，客服团队在线，支持七天无理由（定制款除外）。\n"
    "A furniture brand that broadcasts itself: the brand director hosts, staff handle service.",
    "#5b6770",
    (
        ProductSpec(
            "CUBE18",
            "眠立方立方体床垫 1.8米 左右分区软硬可选",
            "mattresses",
            "mattress",
            _CUBE_DESCRIPTION,
            4999,
            (("左侧软硬", _FIRMNESS), ("右侧软硬", _FIRMNESS)),
            steps=(500, 500),
            stock=(5, 40),
        ),
        ProductSpec(
            "SOFA3",
            "电动功能沙发 三人位",
            "furniture",
            "sofa",
            "一键躺平，成年人在沙发上的时间可能比在床上还多。\nThree-seat power recliner sofa.",
            5999,
            (("颜色", ("象牙白", "烟灰")), ("面料", ("科技布", "头层牛皮"))),
            steps=(0, 3000),
            stock=(3, 20),
        ),
        ProductSpec(
            "SOFA1",
            "单人懒人功能沙发",
            "furniture",
            "sofa",
            "小户型也放得下。\nSingle recliner armchair.",
            2999,
            (("颜色", ("燕麦", "墨绿", "烟灰")),),
            stock=(5, 30),
        ),
        ProductSpec(
            "NIGHTSTAND",
            "实木床头柜",
            "furniture",
            "cabinet",
            "北美白橡木，两抽。\nSolid-oak nightstand with two drawers.",
            599,
            (("颜色", ("原木色", "胡桃色")),),
        ),
        ProductSpec(
            "PILLOW",
            "慢回弹记忆棉枕",
            "furniture",
            "pillow",
            "低枕适合趴睡，中枕适合侧睡。\nMemory-foam pillow.",
            299,
            (("高度", ("低枕", "中枕")),),
        ),
        ProductSpec(
            "CUSTOM-MAT",
            "定制尺寸床垫",
            "custom-made",
            "mattress",
            "按床架尺寸定做，下单后客服联系确认尺寸；定制商品不支持七天无理由退货。\n"
            "Mattress made to your bed's size (no no-reason return).",
            5999,
            (("软硬", _FIRMNESS),),
            steps=(500,),
            stock=(10, 30),
        ),
        ProductSpec(
            "CUBE15",
            "眠立方立方体床垫 1.5米 左右分区软硬可选",
            "mattresses",
            "mattress",
            _CUBE_DESCRIPTION.replace("1.8米×2米", "1.5米×2米"),
            3999,
            (("左侧软硬", _FIRMNESS), ("右侧软硬", _FIRMNESS)),
            steps=(500, 500),
            stock=(5, 40),
            draft=True,
        ),
    ),
)

PERSONAS = (
    Persona(
        Account(
            "laodu",
            "玉矿老杜",
            "jade trader-creator, ~88k fans: live appraisal, buy-back, consignment; "
            "his ended appraisal night is under /live replays",
            ("creator", "merchant"),
        ),
        JADE_SHOP,
    ),
    Persona(
        Account(
            "consignor_lei",
            "雷小石",
            "jade collector who sends pieces to Lao Du for appraisal and consignment; "
            "a plaque valued on air waits for his answer on /consignments",
        )
    ),
    Persona(
        Account(
            "qingyao",
            "青窑阿青",
            "Jingdezhen-style kiln owner who sells from the workshop",
            ("merchant", "creator"),
        ),
        KILN_SHOP,
    ),
    Persona(
        Account(
            "sujin", "苏锦", "silk clothing shop owner and host, eight years live", ("merchant", "creator")
        ),
        SILK_SHOP,
    ),
    Persona(
        Account(
            "teacher_xu",
            "许老师育儿课堂",
            "kids' clothing creator, mother of three, teaches parenting live; "
            "her next session is scheduled an hour after seeding (/console/live)",
            ("creator", "merchant"),
        ),
        KIDS_SHOP,
        (Account("xu_helper", "小禾（许老师团队）", "Teacher Xu's shop assistant, a mum back at work"),),
    ),
    Persona(
        Account("meijie", "梅姐", "family women's-wear creator (the mother)", ("creator", "merchant")),
        WOMENS_SHOP,
        (
            Account("meijie_yu", "梅家大女儿·小雨", "elder daughter: models and co-hosts", ("creator",)),
            Account("meijie_xue", "梅家小女儿·小雪", "younger daughter: after-sales staff"),
        ),
    ),
    Persona(
        Account(
            "mianlifang",
            "眠立方家居官方",
            "furniture brand account (self-broadcast)",
            ("merchant", "creator"),
        ),
        FURNITURE_SHOP,
        (
            Account(
                "mlf_director", "眠立方品牌总监·高远", "brand director who hosts the live room", ("creator",)
            ),
            Account("mlf_service", "眠立方客服·阿琪", "furniture shop customer-service staff"),
        ),
    ),
    Persona(
        Account(
            "mama_yun",
            "小芸妈妈",
            "a mum in a county town, regular in Teacher Xu's room",
        )
    ),
)


def _all_accounts() -> list[Account]:
    return [*STAFF_ACCOUNTS, *(a for p in PERSONAS for a in (p.owner, *p.staff))]


def _login_line(account: Account, shop: ShopSpec | None) -> tuple[str, str, list[str]]:
    who = f"{account.display_name}: {account.who}" + (f"; shop {shop.name}" if shop else "")
    return account.username, who, sorted({"buyer", *account.roles})


DEMO_LOGINS: list[tuple[str, str, list[str]]] = [
    *(_login_line(a, None) for a in STAFF_ACCOUNTS),
    *(_login_line(a, p.shop if a is p.owner else None) for p in PERSONAS for a in (p.owner, *p.staff)),
    ("buyer0001", "a generated buyer (buyer0001, buyer0002, ...)", ["buyer"]),
]


# --- seeding ------------------------------------------------------------------------------------


@dataclass
class _Tally:
    created: dict[str, int] = field(default_factory=dict)

    def add(self, kind: str, n: int = 1) -> None:
        self.created[kind] = self.created.get(kind, 0) + n


def _principal(user: Any, roles: set[str]) -> Principal:
    """Act as ``user`` (an accounts User: other domains' models are not imported here)."""
    return Principal(user.id, user.username, user.display_name, frozenset(roles))


async def _ensure_account(
    session: AsyncSession, spec: Account, password_hash: str, ops: Principal | None, tally: _Tally
) -> Principal:
    """The account named ``spec.username``, created if missing, with at least ``spec.roles``."""
    try:
        user = await accounts.get_user_by_username(session, spec.username)
    except NotFound:
        user = await accounts.create_user(
            session,
            username=spec.username,
            password_hash=password_hash,
            display_name=spec.display_name,
            roles=spec.roles,
            granted_by_id=ops.id if ops else None,
        )
        tally.add("accounts")
        return _principal(user, {"buyer", *spec.roles})
    roles = await accounts.roles_of(session, user.id)
    missing = sorted(set(spec.roles) - roles)
    if missing and ops is not None:
        for role in missing:
            roles = await accounts.grant_role(session, ops, user.id, role)
    return _principal(user, roles)


async def _ensure_categories(session: AsyncSession, ops: Principal, tally: _Tally) -> dict[str, int]:
    existing = {c.slug: c.id for c in await catalog.list_categories(session, include_inactive=True)}
    for position, spec in enumerate(CATEGORIES):
        if spec.slug in existing:
            continue
        category = await catalog.create_category(
            session,
            ops,
            CategoryIn(
                slug=spec.slug,
                name_zh=spec.name_zh,
                name_en=spec.name_en,
                parent_id=existing[spec.parent] if spec.parent else None,
                requires_inspection=spec.requires_inspection,
                return_window_days=spec.return_window_days,
                service_fee_bp=spec.service_fee_bp,
                position=position * 10,
            ),
        )
        existing[spec.slug] = category.id
        tally.add("categories")
    return existing


async def _ensure_qc(session: AsyncSession, ops: Principal, tally: _Tally) -> None:
    """One accredited lab, its QC warehouse (the default for every inspection category) and the
    demo inspector working there."""
    policy = fulfillment.QcPolicy()  # only shapes lab keys shown to ops, never stored
    setup = await fulfillment.setup(session, ops, policy)
    lab = next((x for x in setup.labs if x.name == QC_LAB.name), None)
    if lab is None:
        lab = await fulfillment.create_lab(session, ops, QC_LAB, policy)
        tally.add("labs")
    warehouse = next((w for w in setup.warehouses if w.name == QC_WAREHOUSE["name"]), None)
    if warehouse is None:
        warehouse = await fulfillment.create_warehouse(
            session, ops, WarehouseIn(**QC_WAREHOUSE, lab_id=lab.id, is_default=True)
        )
        tally.add("QC warehouses")
    inspector = await accounts.get_user_by_username(session, QC_INSPECTOR)
    if inspector.id not in {i.user_id for i in warehouse.inspectors}:
        await fulfillment.add_inspector(session, ops, warehouse.id, InspectorIn(user_id=inspector.id))
        tally.add("inspectors")


async def _ensure_shop(
    session: AsyncSession,
    owner: Principal,
    staff: list[Principal],
    spec: ShopSpec,
    categories: dict[str, int],
    media_dir: Path,
    tally: _Tally,
) -> None:
    owned = [s for s in await catalog.shops_of(session, owner) if s.owner_id == owner.id]
    if owned:
        shop = owned[0]
    else:
        shop = await catalog.open_shop(
            session, owner, ShopIn(name=spec.name, description=spec.description, slug=spec.slug)
        )
        tally.add("shops")
    tint = images.hex_rgb(spec.tint)
    if shop.logo_path is None:
        upload = catalog.Upload("logo.png", "image/png", images.logo_image(spec.slug, tint))
        await catalog.set_shop_logo(session, owner, shop.id, upload, media_dir, MAX_IMAGE_BYTES)
    terms = await orders.get_shop_terms(session, shop.id, owner)
    if terms.return_address is None:
        recipient, phone, region, detail = RETURN_ADDRESSES[spec.slug]
        await orders.set_returns(session, owner, shop.id, ReturnsIn(
            ReturnAddressIn(recipient, phone, region, detail), spec.slug in COVERS_RETURN_SHIPPING,
        ))  # fmt: skip
        tally.add("return addresses")
    on_staff = {s.username for s in await catalog.list_staff(session, owner, shop.id)}
    for member in staff:
        if member.username not in on_staff:
            await catalog.add_staff(session, owner, shop.id, member.username)
            tally.add("staff")
    listed = await catalog.shop_products(
        session, owner, shop.id, after_id=None, limit=1000, include_unpublished=True
    )
    titles = {card.title for card in listed}
    for product_spec in spec.products:
        if product_spec.title in titles:
            continue
        product = await catalog.create_product(
            session, owner, shop.id, product_spec.product_in(categories[product_spec.category])
        )
        picture = images.product_image(f"{spec.slug}/{product_spec.code}", product_spec.motif, tint)
        upload = catalog.Upload(f"{product_spec.code.lower()}.jpg", "image/jpeg", picture)
        await catalog.add_image(session, owner, product.id, upload, media_dir, MAX_IMAGE_BYTES)
        if not product_spec.draft:
            await catalog.publish(session, owner, product.id)
        tally.add("products")
    await _ensure_videos(session, owner, shop.id, spec, tint, media_dir, tally)


async def _ensure_videos(
    session: AsyncSession, owner: Principal, shop_id: int, spec: ShopSpec, tint: images.RGB, media_dir: Path,
    tally: _Tally,
) -> None:  # fmt: skip
    """Two short videos of the shop's creator linking its first products (docs/content.md), with
    covers drawn like the product pictures. There is no video file to ship: they play from an
    address that never resolves (``.invalid``), so their pages show the cover instead."""
    from trustlive.content import service as content
    from trustlive.content.schemas import VideoIn

    if "creator" not in owner.roles:
        return
    shelf = await catalog.shop_products(session, owner, shop_id, after_id=None, limit=1000)
    by_title = {card.title: card for card in shelf}
    specs = [p for p in spec.products if p.title in by_title][:2]
    if not specs:
        return
    wanted = [
        (f"{spec.name}·今日上新", specs, "点下方商品直接下单；有问题直播间里问我。"),
        (f"细节实拍：{specs[0].title[:40]}", specs[:1], "近距离看做工和细节，实物就是这样。"),
    ]
    mine = {v.title for v in await content.my_videos(session, owner, before_id=None, limit=100)}
    for n, (title, linked, description) in enumerate(wanted, start=1):
        if title in mine:
            continue
        cover = images.product_image(f"{spec.slug}/video{n}", linked[0].motif, tint)
        await content.create_video(
            session, owner,
            VideoIn(title=title, description=description, product_ids=[by_title[p.title].id for p in linked],
                    video_url=f"https://media.trustlive.invalid/demo/{spec.slug}/{n}.mp4"),
            catalog.Upload(f"video{n}.jpg", "image/jpeg", cover), None, media_dir=media_dir,
            max_upload_bytes=MAX_IMAGE_BYTES, max_video_bytes=0,  # no file: they play from an address
        )  # fmt: skip
        tally.add("videos")


async def _existing_buyer_names(session: AsyncSession, ops: Principal) -> set[str]:
    names: set[str] = set()
    after: int | None = None
    while True:
        page = await accounts.list_users(session, ops, query="buyer", after_id=after, limit=1000)
        if not page:
            return names
        names.update(user.username for user, _ in page)
        after = page[-1][0].id


# Who follows whom (docs/social.md): each generated buyer follows each creator (by username) with
# this chance, and the creator's shop with half of it: a long tail from the big jade room down to
# the brand director's. Regulars follow their creator and the creator's shop.
FOLLOW_CHANCE = {
    "laodu": 0.30, "teacher_xu": 0.22, "meijie": 0.15, "sujin": 0.10, "qingyao": 0.07,
    "mianlifang": 0.05, "meijie_yu": 0.04, "mlf_director": 0.02,
}  # fmt: skip
REGULARS = (("mama_yun", "teacher_xu"), ("consignor_lei", "laodu"))


async def _ensure_follows(session: AsyncSession, ops: Principal, buyers: int) -> int:
    """The demo's follow graph, from fixed seeds (a buyer's follows depend on their name only);
    follows already there are skipped, so seeding again adds none. Returns how many were made."""
    from trustlive.social import service as social

    users = {
        a.username: (await accounts.get_user_by_username(session, a.username)).id for a in _all_accounts()
    }
    shops: dict[str, int] = {}
    for persona in PERSONAS:
        if persona.shop is not None:
            shops[persona.owner.username] = (await catalog.get_shop_by_slug(session, persona.shop.slug)).id
    wanted = [(users[fan], kind, target) for fan, creator in REGULARS
              for kind, target in (("creator", users[creator]), ("shop", shops[creator]))]  # fmt: skip
    names = {buyer_username(i) for i in range(1, buyers + 1)}
    after: int | None = None
    while page := await accounts.list_users(session, ops, query="buyer", after_id=after, limit=1000):
        after = page[-1][0].id
        for user, _ in page:
            if user.username not in names:
                continue
            rng = random.Random(f"demo-follow/{user.username}")
            for creator, chance in FOLLOW_CHANCE.items():
                if rng.random() < chance:
                    wanted.append((user.id, "creator", users[creator]))
                if creator in shops and rng.random() < chance / 2:
                    wanted.append((user.id, "shop", shops[creator]))
    return await social.follow_many(session, wanted)


async def seed_demo(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    media_dir: Path,
    buyers: int = 3000,
    progress: Progress | None = None,
    settings: Settings | None = None,
) -> str:
    """Create whatever part of the demo world is missing; return a one-line summary. With
    ``settings`` (the payment and tracking sandboxes need its keys) the demo stories are played
    too (``sim/stories.py``): orders at the QC warehouse, reviewed, returned, disputed; an ended live
    session with its replay, a consignment appraised on air, a session scheduled in an hour; and
    ninety days of past trade for two shops, so that they and their creators show trust scores
    (``sim/history.py``, when the world has its buyers)."""
    report: Progress = progress or (lambda stage, done, total: None)
    tally = _Tally()
    media_dir = Path(media_dir)
    # Argon2 once: every demo account shares the password, and 3000 hashes would take minutes.
    password_hash = await accounts.hash_password(DEMO_PASSWORD)

    report("platform staff and categories", 0, 2)
    async with transaction(sessionmaker) as session:
        ops = await _ensure_account(session, STAFF_ACCOUNTS[0], password_hash, None, tally)
        for spec in STAFF_ACCOUNTS[1:]:
            await _ensure_account(session, spec, password_hash, ops, tally)
    report("platform staff and categories", 1, 2)
    async with transaction(sessionmaker) as session:
        categories = await _ensure_categories(session, ops, tally)
    report("platform staff and categories", 2, 2)

    async with transaction(sessionmaker) as session:
        await _ensure_qc(session, ops, tally)

    report("personas and shops", 0, len(PERSONAS))
    for done, persona in enumerate(PERSONAS, start=1):
        async with transaction(sessionmaker) as session:  # one persona, one unit of work
            owner = await _ensure_account(session, persona.owner, password_hash, ops, tally)
            staff = [await _ensure_account(session, a, password_hash, ops, tally) for a in persona.staff]
            if persona.shop is not None:
                await _ensure_shop(session, owner, staff, persona.shop, categories, media_dir, tally)
        report("personas and shops", done, len(PERSONAS))

    report("buyers", 0, buyers)
    async with transaction(sessionmaker) as session:
        existing = await _existing_buyer_names(session, ops)
    for start in range(1, buyers + 1, BUYER_BATCH):
        batch = range(start, min(start + BUYER_BATCH, buyers + 1))
        todo = [i for i in batch if buyer_username(i) not in existing]
        if todo:
            async with transaction(sessionmaker) as session:
                for i in todo:
                    await accounts.create_user(
                        session,
                        username=buyer_username(i),
                        password_hash=password_hash,
                        display_name=buyer_display_name(i),
                    )
            tally.add("buyers", len(todo))
        report("buyers", batch[-1], buyers)

    report("follows", 0, 1)
    async with transaction(sessionmaker) as session:
        tally.add("follows", await _ensure_follows(session, ops, buyers))
    report("follows", 1, 1)

    if settings is not None:
        report("demo stories", 0, stories.COUNT)
        played = await stories.play_stories(sessionmaker, settings)
        report("demo stories", played, stories.COUNT)
        # Ninety days of past trade, so the shops and creators show trust scores (sim/history.py).
        tally.add("orders of past trade", await history.play_history(sessionmaker, settings, report))

    products = [p for persona in PERSONAS if persona.shop for p in persona.shop.products]
    drafts = sum(p.draft for p in products)
    skus = sum(len(p.skus()) for p in products)
    shops = sum(1 for p in PERSONAS if p.shop)
    world = (
        f"{len(_all_accounts())} demo accounts + {buyers} buyers, {len(CATEGORIES)} categories, "
        f"{shops} shops, {len(products)} products ({drafts} drafts), {skus} SKUs"
    )
    created = ", ".join(f"{n} {kind}" for kind, n in tally.created.items() if n)
    return f"{world}; created now: {created or 'nothing (already seeded)'}"
