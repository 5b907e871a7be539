"""Trust scores at scale: the full recompute and the incremental refresh on PostgreSQL.

Creates a fresh PostgreSQL database, runs the migrations and generates, set-based in SQL, a
synthetic history of `--orders` paid orders (10M) over the last 100 days across `--shops` shops
(100k, 5 products each) and `--creators` creators (50k), bought by `--buyers` buyers (200k), in
the real source tables the scores are derived from: users, shops, categories (one requiring
inspection), products, SKUs, checkouts, orders (one line each, 60% attributed to a creator),
reviews, after-sales requests, QC inspection cases and false-claim complaints. Shops and creators
are long-tailed (a few big ones, many small ones, some of them "new"); a few shops are bad (late
shipping, negative reviews, returns). Then derives every paid order line's facts (trust_facts)
set-based in SQL, with the rules of `trust.service.derive_facts`, and checks `--verify` (2000)
orders' facts, column by column, against derive_facts itself (`--facts service`: derives them
with `trust.service.rebuild_facts` instead, about an hour at 10M orders). Then measures, with the
trust service:

1. the facts' derivation (for information: `rebuild_facts` is the repair path, not the nightly one);
2. `recompute_all`, twice: the nightly full recompute of every shop, product and creator (the
   first run writes every row; the second is the steady state);
3. the incremental refresh: `--events` (5000) random orders have their sources changed as buyers,
   carriers and shops change them (a review posted, a review edited, a parcel delivered, an
   after-sales request resolved), are queued as the event handler queues them, and the refresh
   job runs in batches of `--batch` (500) until the queue is empty: milliseconds per event. Then
   `--samples` (200) single events, each refreshed alone (limit 1): p50 and p99.

Prints a table and ratios, and ends with one JSON line: {"orders", "full_recompute_s",
"incremental_ms_per_event", "rebuild_facts_s", "derive_facts_sql_s", "full_recompute_2_s",
"single_event_p50_ms", "single_event_p99_ms", "shops", "creators", "products", "entities_scored", ...}.

Usage: .venv/bin/python bench/scores.py [--orders 10000000] [--shops 100000] [--creators 50000]
       [--events 5000] [--batch 500] [--keep] [--reuse [--no-rebuild]] [--generate-only]
       [--facts {sql,service}] [--verify 2000]
Needs PostgreSQL (TRUSTLIVE_BENCH_POSTGRES_URL, default postgresql://root@127.0.0.1:5432/test).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from bench.flash_sale import ADMIN_URL, _admin  # noqa: E402  (one way to reach the server)

DB_NAME = "trustlive_bench_scores"
DAY = 86_400
HISTORY_DAYS = 100
PRODUCTS_PER_SHOP = 5
CHUNK = 250_000  # orders per INSERT ... SELECT statement
# Long tails: entity = 1 + floor(n * random()^skew). Shop 1 takes 1% of all orders; at 10M orders
# over 100k shops the smallest shops get ~40 orders in 100 days, about the "new" threshold.
SHOP_SKEW = 2.5
CREATOR_SKEW = 2.0
CREATOR_SHARE = 0.6  # of order lines attributed to a creator

CATEGORIES = [  # id, slug, zh, en, requires_inspection, return window days, service fee bp
    (1, "apparel", "服饰", "Apparel", False, 7, 500),
    (2, "food", "食品", "Food", False, 0, 200),
    (3, "beauty", "美妆", "Beauty", False, 7, 500),
    (4, "jade", "和田玉", "Hetian jade", True, 7, 800),
]
ADDRESS = '{"recipient": "买家", "phone": "13800000000", "region": "四川省成都市", "detail": "天府大道 1 号"}'


def _category(pid: str) -> str:
    """A product's category from its id: about 3% jade (inspected), the rest spread evenly."""
    return f"(CASE WHEN ({pid} * 2654435761) % 1000 < 30 THEN 4 ELSE {pid} % 3 + 1 END)"


def _price(pid: str) -> str:
    return f"(2000 + ({pid} * 7919) % 48000)"  # 20-500 yuan, in fen


# --- generation -------------------------------------------------------------------------------


def _setup_sql(a: argparse.Namespace, now: float) -> list[str]:
    """Users (ops, a merchant per shop, creators, buyers), categories, shops, products and SKUs,
    and the QC lab and warehouse; every id explicit so orders can refer to them by arithmetic."""
    s, c, b, p = a.shops, a.creators, a.buyers, PRODUCTS_PER_SHOP
    born = f"to_timestamp({now - 200 * DAY})"
    cats = ", ".join(
        f"({i}, '{slug}', '{zh}', '{en}', {str(insp).lower()}, {ret}, {fee}, {i}, {born}, {born})"
        for i, slug, zh, en, insp, ret, fee in CATEGORIES
    )
    return [
        f"""INSERT INTO users (id, username, display_name, password_hash, is_active, created_at, updated_at)
            SELECT g, CASE WHEN g = 1 THEN 'ops1' WHEN g <= {s} + 1 THEN 'm' || (g - 1)
                           WHEN g <= {s + c} + 1 THEN 'c' || (g - {s} - 1) ELSE 'b' || (g - {s + c} - 1) END,
                   CASE WHEN g = 1 THEN '运营' WHEN g <= {s} + 1 THEN '商家' || (g - 1)
                        WHEN g <= {s + c} + 1 THEN '主播' || (g - {s} - 1) ELSE '买家' || (g - {s + c} - 1) END,
                   'bench-no-login', true, {born}, {born}
            FROM generate_series(1, {s + c + b} + 1) AS g""",
        f"""INSERT INTO user_roles (user_id, role, granted_at)
            SELECT 1, 'ops', {born}
            UNION ALL SELECT g, 'merchant', {born} FROM generate_series(2, {s} + 1) AS g
            UNION ALL SELECT g, 'creator', {born} FROM generate_series({s} + 2, {s + c} + 1) AS g""",
        f"""INSERT INTO categories (id, slug, name_zh, name_en, requires_inspection, return_window_days,
                                    service_fee_bp, position, created_at, updated_at, is_active)
            SELECT *, true FROM (VALUES {cats}) AS v""",
        f"""INSERT INTO shops (id, owner_id, slug, name, description, status, created_at, updated_at)
            SELECT g, g + 1, 'shop-' || g, '店铺 ' || g, '', 'active', {born}, {born}
            FROM generate_series(1, {s}) AS g""",
        f"""INSERT INTO shop_staff (shop_id, user_id, role, added_at)
            SELECT g, g + 1, 'owner', {born} FROM generate_series(1, {s}) AS g""",
        f"""INSERT INTO products (id, shop_id, category_id, title, description, status, published_at,
                                  commission_bp, created_at, updated_at)
            SELECT g, (g - 1) / {p} + 1, {_category("g")},
                   (ARRAY['针织开衫', '手工辣酱', '补水面霜', '和田玉平安扣'])[{_category("g")}] || ' ' || g,
                   '', 'published', {born}, 500 + (g * 13) % 30 * 100, {born}, {born}
            FROM generate_series(1::bigint, {s * p}) AS g""",
        f"""INSERT INTO skus (id, product_id, shop_id, code, option_values, combo_key, price_fen, stock,
                              is_active, created_at, updated_at)
            SELECT g, g, (g - 1) / {p} + 1, 'SKU-' || g, '[]'::json, '', {_price("g")},
                   100000, true, {born}, {born}
            FROM generate_series(1::bigint, {s * p}) AS g""",
        f"""INSERT INTO qc_labs (id, name, cma_no, cnas_no, is_active, created_at, updated_at)
            VALUES (1, '和田玉检测中心', '221500340123', 'L1234', true, {born}, {born})""",
        f"""INSERT INTO qc_warehouses (id, name, recipient, phone, region, detail, lab_id, is_active,
                                       is_default, created_at, updated_at)
            VALUES (1, '苏州质检仓', '质检仓', '051200000000', '江苏省苏州市', '工业园区 1 号', 1, true, true,
                    {born}, {born})""",
        "INSERT INTO qc_routes (category_id, warehouse_id, updated_at) VALUES (4, 1, now())",
    ]


def _chunk_sql(a: argparse.Namespace, now: float, lo: int, hi: int, first_rating: bool) -> str:
    """Orders lo..hi with their checkout, line, and where they happened, review, after-sales
    request and QC case: one statement. Every random draw is made once per order (the MATERIALIZED
    CTE ``a``); the timeline is planned in epoch seconds, then cut at ``now``: what lies in the
    future has not happened yet (an order paid yesterday may be shipped but not delivered). Each
    LATERAL step names values the next ones use; ``OFFSET 0`` keeps the planner from pulling the
    steps up into one another, which would copy every expression into each of its users (70 times
    the work here)."""
    s, c, p = a.shops, a.creators, PRODUCTS_PER_SHOP

    def ts(x: str) -> str:  # a planned time, if it has come
        return f"CASE WHEN {x} <= {now} THEN to_timestamp({x}) END"

    draws = ", ".join(f"random() AS r{i}" for i in range(1, 23))
    first_col = "rating_product_first, " if first_rating else ""
    first_val = "rp_first, " if first_rating else ""
    return f"""
WITH a AS MATERIALIZED (
  SELECT g,
         1 + floor({s} * power(random(), {SHOP_SKEW}))::bigint AS shop,
         floor({p} * power(random(), 2))::bigint AS pj,
         CASE WHEN random() < {CREATOR_SHARE} THEN 1 + floor({c} * power(random(), {CREATOR_SKEW}))::bigint END
           AS creator_no,
         1 + floor({a.buyers} * random())::bigint AS buyer_no,
         {now} - random() * {HISTORY_DAYS * DAY} AS paid,
         {draws}
  FROM generate_series({lo}::bigint, {hi}) AS g
), t AS MATERIALIZED (
  SELECT * FROM a,
  LATERAL (SELECT (shop - 1) * {p} + pj + 1 AS pid, {s} + 1 + creator_no AS creator_id,
                  {s + c} + 1 + buyer_no AS buyer_id,
                  -- how badly the shop behaves, 0..1: most shops near 0, a few bad ones
                  power(((shop * 2654435761) % 1000003)::float8 / 1000003, 6) AS bad OFFSET 0) b,
  LATERAL (SELECT {_category("pid")} AS cat, {_price("pid")} AS price,
                  r1 < 0.012 AND paid < {now} - {DAY} AS refund_pre,  -- refunded before shipping
                  paid + {DAY} * (0.05 + r15) AS refund_at,
                  paid + CASE WHEN r2 < 0.02 + 0.3 * bad THEN {2 * DAY} + r3 * {3 * DAY}  -- late
                              ELSE 3600 + power(r3, 2) * 150000 END AS ship,
                  {DAY} * (1 + 3 * power(r4, 2) + 2 * bad * r4) AS transit OFFSET 0) c,
  LATERAL (SELECT cat = 4 AS jade, ship + {DAY} * (0.5 + r5) AS received,  -- at the QC warehouse
                  ship + {DAY} * (0.5 + r5) + 3600 * (2 + 40 * r6) AS inspected,
                  cat = 4 AND r7 < 0.03 + 0.2 * bad AS qc_fail OFFSET 0) d,
  LATERAL (SELECT CASE WHEN jade THEN inspected + 7200 + transit ELSE ship + transit END AS dlv OFFSET 0) e,
  LATERAL (SELECT dlv + CASE WHEN r8 < 0.55 THEN r8 / 0.55 * {5 * DAY} ELSE {10 * DAY} END AS done,
                  NOT refund_pre AND NOT qc_fail AND dlv + {6 * DAY} * r10 <= {now}
                    AND r9 < 0.03 + 0.1 * bad AS has_as,
                  dlv + {6 * DAY} * r10 AS as_at,
                  CASE WHEN r11 < 0.4 THEN 'no_reason' WHEN r11 < 0.7 THEN 'quality' WHEN r11 < 0.8 THEN 'wrong_item'
                       WHEN r11 < 0.9 THEN 'not_as_described' ELSE 'not_received' END AS reason,
                  CASE WHEN r11 < 0.8 THEN 'return_refund' ELSE 'refund_only' END AS kind,
                  CASE WHEN r13 < 0.05 THEN 'withdrawn' WHEN r13 < 0.13 THEN 'rejected'
                       WHEN r13 < 0.16 THEN 'arb_seller' WHEN r13 < 0.19 THEN 'arb_buyer' ELSE 'approved' END
                    AS outcome OFFSET 0) f,
  LATERAL (SELECT as_at + 3600 * (1 + 70 * power(r12, 3) * (0.5 + bad)) AS answer OFFSET 0) g1,
  LATERAL (SELECT outcome = 'approved' AND answer > as_at + {2 * DAY} AS auto OFFSET 0) g2,
  LATERAL (SELECT CASE WHEN outcome = 'withdrawn' THEN NULL WHEN auto THEN as_at + {2 * DAY} ELSE answer END
                    AS responded OFFSET 0) g3,
  LATERAL (SELECT CASE WHEN outcome IN ('arb_seller', 'arb_buyer') THEN responded + {DAY} * r14 END
                    AS escalated,
                  CASE WHEN outcome = 'approved' AND kind = 'return_refund' THEN responded + {DAY} * r14 END
                    AS ret_shipped OFFSET 0) g4,
  LATERAL (SELECT escalated + {DAY} * (1 + r15) AS arbitrated, ret_shipped + {2 * DAY} AS ret_arrived OFFSET 0) g5,
  LATERAL (SELECT CASE outcome WHEN 'withdrawn' THEN as_at + {DAY} * r14 WHEN 'rejected' THEN responded + {3 * DAY}
                    WHEN 'approved' THEN COALESCE(ret_arrived + 14400, responded + 600) ELSE arbitrated END
                    AS resolved,
                  outcome IN ('approved', 'arb_buyer') AS as_refund OFFSET 0) g6,
  LATERAL (SELECT has_as AND resolved <= {now} AS as_done, has_as AND resolved > {now} AS as_open OFFSET 0) g7,
  LATERAL (SELECT CASE WHEN refund_pre THEN 'refunded'
                       WHEN ship > {now} THEN 'paid'
                       WHEN qc_fail AND inspected + 3600 <= {now} THEN 'refunded'
                       WHEN as_done AND as_refund THEN 'refunded'
                       WHEN qc_fail OR dlv > {now} THEN 'shipped'
                       WHEN done > {now} THEN 'delivered'
                       WHEN done + {7 * DAY} > {now} OR as_open THEN 'completed'
                       ELSE 'settled' END AS status OFFSET 0) h,
  LATERAL (SELECT NOT refund_pre AND ship <= {now} AS shipped,
                  NOT refund_pre AND NOT qc_fail AND dlv <= {now} AS delivered,
                  NOT refund_pre AND NOT qc_fail AND done <= {now}
                    AND NOT (as_done AND as_refund AND resolved < done) AS completed,
                  CASE WHEN refund_pre THEN refund_at WHEN qc_fail AND status = 'refunded' THEN inspected + 3600
                       WHEN status = 'refunded' THEN resolved END AS refunded_at,
                  -- reviews: 30% of completed lines, about 3% negative, a bad shop's more often; some
                  -- negative ones are edited to 5 stars afterwards (the scores keep the first rating)
                  status IN ('completed', 'settled') AND r16 < 0.3 AND done + {3 * DAY} * r17 <= {now} AS reviewed,
                  done + {3 * DAY} * r17 AS rv_at,
                  CASE WHEN r18 < (0.015 + 0.08 * bad) / 2 THEN 1 WHEN r18 < 0.015 + 0.08 * bad THEN 2
                       WHEN r18 < 0.075 + 0.08 * bad THEN 3 WHEN r18 < 0.3 THEN 4 ELSE 5 END AS rp_first OFFSET 0) i,
  LATERAL (SELECT r19 < 0.02 OR (rp_first <= 2 AND r19 < 0.3) AS edited OFFSET 0) j
), checkouts_ AS (
  INSERT INTO checkouts (id, buyer_id, idempotency_key, request_hash, total_fen, created_at)
  SELECT g, buyer_id, 'bench-' || g, md5(g::text), price, to_timestamp(paid - 60 - 600 * r20) FROM t
), orders_ AS (
  INSERT INTO orders (id, checkout_id, buyer_id, shop_id, status, goods_fen, shipping_fen, total_fen, paid_fen,
                      refunded_fen, shipping_refunded_fen, settlement_holds, address, note, pay_deadline, paid_at,
                      payment_ref, ship_by, shipped_late_minutes, carrier, tracking_no, shipped_at, delivered_at,
                      auto_confirm_at, completed_at, settle_at, settled_at, created_at, updated_at)
  SELECT g, g, buyer_id, shop, status, price, 0, price, price,
         CASE WHEN status = 'refunded' THEN price ELSE 0 END, 0, CASE WHEN as_open THEN 1 ELSE 0 END,
         '{ADDRESS}'::json, '', to_timestamp(paid - 60 - 600 * r20 + 1800), to_timestamp(paid),
         'sbx_' || g, to_timestamp(paid + {2 * DAY}),
         CASE WHEN shipped THEN greatest(0, floor((ship - paid - {2 * DAY}) / 60))::int END,
         CASE WHEN shipped THEN 'SF' END, CASE WHEN shipped THEN 'SF' || (1000000000 + g) END,
         CASE WHEN shipped THEN to_timestamp(ship) END, CASE WHEN delivered THEN to_timestamp(dlv) END,
         CASE WHEN delivered THEN to_timestamp(dlv + {10 * DAY}) END,
         CASE WHEN completed THEN to_timestamp(done) END,
         CASE WHEN completed THEN to_timestamp(done + {7 * DAY}) END,
         CASE WHEN status = 'settled' THEN to_timestamp(done + {7 * DAY}) END,
         to_timestamp(paid - 60 - 600 * r20),
         to_timestamp(greatest(paid, CASE WHEN shipped THEN ship END, CASE WHEN delivered THEN dlv END,
                               CASE WHEN completed THEN done END, refunded_at,
                               CASE WHEN status = 'settled' THEN done + {7 * DAY} END))
  FROM t
), lines_ AS (
  INSERT INTO order_lines (id, order_id, sku_id, product_id, title, sku_code, option_values, unit_price_fen,
                           quantity, line_total_fen, refunded_fen, source, creator_id, commission_bp, category_id,
                           service_fee_bp, return_window_days, requires_inspection)
  SELECT g, g, pid, pid, (ARRAY['针织开衫', '手工辣酱', '补水面霜', '和田玉平安扣'])[cat] || ' ' || pid,
         'SKU-' || pid, '[]'::json, price, 1, price, CASE WHEN status = 'refunded' THEN price ELSE 0 END,
         CASE WHEN creator_id IS NULL THEN 'shelf'
              ELSE (ARRAY['live_room', 'short_video', 'alliance_link'])[1 + (g % 3)::int] END,
         creator_id, CASE WHEN creator_id IS NULL THEN 0 ELSE 500 + (pid * 13) % 30 * 100 END, cat,
         (ARRAY[500, 200, 500, 800])[cat], CASE WHEN cat = 2 THEN 0 ELSE 7 END, cat = 4
  FROM t
), reviews_ AS (
  INSERT INTO reviews (order_id, order_line_id, product_id, shop_id, buyer_id, title, variant, rating_product,
                       {first_col}rating_logistics, rating_service, text, photo_count, created_at, edit_until,
                       edited_at)
  SELECT g, g, pid, shop, buyer_id, (ARRAY['针织开衫', '手工辣酱', '补水面霜', '和田玉平安扣'])[cat] || ' ' || pid,
         '', CASE WHEN edited AND rp_first <= 2 THEN 5 WHEN edited THEN least(5, rp_first + 1) ELSE rp_first END,
         {first_val}CASE WHEN transit > {3 * DAY} AND r20 < 0.5 THEN 3 WHEN r20 < 0.2 THEN 4 ELSE 5 END,
         CASE WHEN r21 < 0.01 + 0.06 * bad THEN 1 + (r21 * 1000)::int % 2 WHEN r21 < 0.05 + 0.1 * bad THEN 3
              WHEN r21 < 0.25 THEN 4 ELSE 5 END,
         '', 0, to_timestamp(rv_at), to_timestamp(rv_at + {DAY}),
         CASE WHEN edited THEN to_timestamp(least({now}, rv_at + {DAY} * r22)) END
  FROM t WHERE reviewed
), qc_ AS (
  INSERT INTO qc_cases (order_id, shop_id, warehouse_id, status, inbound_carrier, inbound_tracking_no, created_at,
                        received_at, due_at, result, certificate_no, lab_id, inspected_at, source, notes, fee_fen,
                        refunded_fen, forwarded_at, returned_at, updated_at)
  SELECT g, shop, 1,
         CASE WHEN inspected <= {now} THEN
                CASE WHEN qc_fail THEN CASE WHEN inspected + {DAY} <= {now} THEN 'returned' ELSE 'failed' END
                     ELSE CASE WHEN inspected + 7200 <= {now} THEN 'forwarded' ELSE 'passed' END END
              WHEN received <= {now} THEN 'received' ELSE 'inbound' END,
         'SF', 'SFQC' || g, to_timestamp(ship), {ts("received")}, CASE WHEN received <= {now} THEN
         to_timestamp(received + {2 * DAY}) END,
         CASE WHEN inspected <= {now} THEN CASE WHEN qc_fail THEN 'fail' ELSE 'pass' END END,
         CASE WHEN inspected <= {now} THEN 'TLQC' || g END, CASE WHEN inspected <= {now} THEN 1 END,
         {ts("inspected")}, CASE WHEN inspected <= {now} THEN 'lab' END, '', 0, 0,
         CASE WHEN NOT qc_fail THEN {ts("inspected + 7200")} END, CASE WHEN qc_fail THEN {ts(f"inspected + {DAY}")} END,
         to_timestamp(least({now}, greatest(ship, received, inspected)))
  FROM t WHERE jade AND shipped
)
INSERT INTO aftersales_requests (order_id, line_id, buyer_id, shop_id, kind, reason, seller_cause, description,
                                 amount_fen, status, open_slot, due_at, created_at, updated_at, decision,
                                 responded_at, reject_reason, escalated_at, arbitrated_at, arbitration_note,
                                 postage_payer, return_carrier, return_tracking_no, return_shipped_at,
                                 return_arrived_at, resolution, resolved_at, refund_fen, auto_refunded)
SELECT g, g, buyer_id, shop, kind, reason, reason <> 'no_reason', '', price,
       CASE WHEN as_done THEN CASE WHEN as_refund THEN 'refunded' ELSE 'closed' END
            WHEN responded IS NULL OR responded > {now} THEN 'pending'
            WHEN outcome = 'approved' AND kind = 'return_refund' THEN
              CASE WHEN ret_shipped > {now} THEN 'awaiting_return' ELSE 'return_shipped' END
            WHEN outcome = 'approved' THEN 'pending'
            WHEN escalated <= {now} THEN 'escalated' ELSE 'rejected' END,
       CASE WHEN as_open THEN g END,
       CASE WHEN as_open THEN to_timestamp(CASE WHEN responded IS NULL OR responded > {now} THEN as_at + {2 * DAY}
                                                ELSE greatest(responded, escalated) + {3 * DAY} END) END,
       to_timestamp(as_at), to_timestamp(least({now}, resolved)),
       CASE WHEN responded <= {now} THEN CASE WHEN auto THEN 'auto_approved' WHEN outcome = 'approved' THEN 'approved'
                                              ELSE 'rejected' END END,
       {ts("responded")}, CASE WHEN outcome IN ('rejected', 'arb_seller', 'arb_buyer') AND responded <= {now}
                               THEN '商品无质量问题' ELSE '' END,
       {ts("escalated")}, {ts("arbitrated")}, '',
       CASE WHEN kind = 'return_refund' AND responded <= {now} AND outcome = 'approved'
            THEN CASE WHEN reason = 'no_reason' THEN 'buyer' ELSE 'shop' END END,
       CASE WHEN ret_shipped <= {now} THEN 'YTO' END, CASE WHEN ret_shipped <= {now} THEN 'YT' || g END,
       {ts("ret_shipped")}, {ts("ret_arrived")},
       CASE WHEN as_done THEN CASE outcome WHEN 'approved' THEN CASE WHEN auto THEN 'auto_approved'
                                                                     ELSE 'approved' END
                                           WHEN 'arb_seller' THEN 'arbitrated_seller'
                                           WHEN 'arb_buyer' THEN 'arbitrated_buyer' ELSE outcome END END,
       CASE WHEN as_done THEN to_timestamp(resolved) END,
       CASE WHEN as_done AND as_refund THEN price ELSE 0 END, false
FROM t WHERE has_as"""


def _complaints_sql(a: argparse.Namespace, now: float) -> str:
    """False-claim complaints on delivered lines attributed to a creator (filed within 30 days of
    delivery): mostly upheld, some dismissed, a few pending. One per `step` lines, by id."""
    wanted = max(20, a.orders // 20_000)  # 500 at 10M orders
    step = max(1, a.orders // (wanted * 3))  # about a third of the lines probed qualify
    return f"""
INSERT INTO trust_complaints (order_id, order_line_id, buyer_id, creator_id, shop_id, product_id, title, claim,
                              status, created_at, decided_at, decided_by_id, decision_note)
SELECT o.id, l.id, o.buyer_id, l.creator_id, o.shop_id, l.product_id, l.title, '直播间说是 A 货，收到后鉴定不是',
       CASE WHEN l.id % 10 < 7 THEN 'upheld' WHEN l.id % 10 < 9 THEN 'dismissed' ELSE 'pending' END,
       o.delivered_at + interval '1 hour' * (l.id % 200),
       CASE WHEN l.id % 10 < 9 THEN o.delivered_at + interval '1 hour' * (l.id % 200 + 24) END,
       CASE WHEN l.id % 10 < 9 THEN 1 END, ''
FROM generate_series(1, {a.orders}, {step}) AS g
JOIN order_lines l ON l.id = g JOIN orders o ON o.id = l.order_id
WHERE l.creator_id IS NOT NULL AND o.delivered_at IS NOT NULL
  AND o.delivered_at + interval '1 hour' * (l.id % 200 + 24) <= to_timestamp({now})
LIMIT {wanted}"""


SEQUENCED = ("users", "categories", "shops", "products", "skus", "checkouts", "orders", "order_lines",
             "qc_labs", "qc_warehouses")  # fmt: skip


async def _generate(
    raw_url: str, a: argparse.Namespace, progress: Any
) -> tuple[dict[str, Any], dict[str, float]]:
    import asyncpg

    now = time.time()
    conn = await asyncpg.connect(raw_url)
    try:
        # A bulk load of data that is consistent by construction: no foreign-key triggers (they
        # would check 30M references one by one), no waiting for the WAL flush at each commit.
        await conn.execute("SET session_replication_role = replica; SET synchronous_commit = off;"
                           "SET work_mem = '256MB'; SELECT setseed(0.6)")  # fmt: skip
        first_rating = bool(await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'reviews' "
            "AND column_name = 'rating_product_first'"))  # fmt: skip
        has_complaints = bool(await conn.fetchval("SELECT to_regclass('trust_complaints') IS NOT NULL"))
        phases: dict[str, float] = {}
        t0 = time.perf_counter()
        setup = _setup_sql(a, now)
        task = progress.add_task("users, shops, products", total=len(setup))
        for sql in setup:
            await conn.execute(sql)
            progress.advance(task)
        phases["users, shops, products"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        task = progress.add_task("orders, lines, reviews, after-sales, QC", total=a.orders)
        for lo in range(1, a.orders + 1, CHUNK):
            hi = min(a.orders, lo + CHUNK - 1)
            await conn.execute(_chunk_sql(a, now, lo, hi, first_rating))
            progress.update(task, completed=hi)
        phases["orders and what followed them"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        if has_complaints:
            await conn.execute(_complaints_sql(a, now))
        for table in SEQUENCED:
            await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                               f"(SELECT max(id) FROM {table}))")  # fmt: skip
        phases["complaints, sequences"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        task = progress.add_task("VACUUM ANALYZE", total=1)
        # A live database's tables have been vacuumed (hint bits set, visibility map) and analysed.
        await conn.execute("VACUUM ANALYZE")
        progress.advance(task)
        phases["VACUUM ANALYZE"] = time.perf_counter() - t0
        counts: dict[str, Any] = {}
        for table in ("orders", "order_lines", "reviews", "aftersales_requests", "qc_cases", "users"):
            counts[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
        counts["trust_complaints"] = (
            await conn.fetchval("SELECT count(*) FROM trust_complaints") if has_complaints else 0
        )
        return counts, phases
    finally:
        await conn.close()


# --- the facts, set-based ---------------------------------------------------------------------
# trust.service.derive_facts derives each paid order line's facts through the source domains'
# Python services: about an hour at 10M orders. The same rules as set-based SQL, one INSERT ...
# SELECT per chunk of orders, fill the table in minutes; every run then checks a sample of them
# (all with --verify 0) against derive_facts itself, so the two cannot drift apart unnoticed.

FACT_TIMES = ("paid_ts", "ship_by_ts", "shipped_ts", "delivered_ts", "closed_ts", "quality_refund_ts",
              "inspected_ts", "aftersales_ts", "dispute_lost_ts", "false_claim_ts")  # fmt: skip
FACTS = ("line_id", "order_id", "shop_id", "product_id", "creator_id", "category_id", "paid_ts", "ship_by_ts",
         "shipped_ts", "delivered_ts", "closed_ts", "rating_product", "rating_service", "quality_refund_ts",
         "inspected_ts", "inspection_failed", "aftersales_ts", "aftersales_s", "dispute_lost_ts", "false_claim_ts",
         "last_ts")  # fmt: skip


def _epoch(x: str) -> str:
    """``trust.service._ts``: whole epoch seconds, 0 for none. Python truncates the float
    ``timestamp()`` toward zero; ``extract(epoch ...)`` is exact (numeric), and for times after
    1970 its floor is that truncation (the float of a microsecond time never rounds up to the next
    second before the year 2242)."""
    return f"coalesce(floor(extract(epoch FROM {x}))::int8, 0)"


def _seconds(a: str, b: str) -> str:
    """``(a - b).total_seconds()`` as Python has it: a float (microseconds / 10^6, correctly
    rounded, as the cast of the exact numeric is). The handling time subtracts two of them before
    truncating, so float8 arithmetic, not numeric, gives the same whole seconds at the edges."""
    return f"(extract(epoch FROM {a}) - extract(epoch FROM {b}))::float8"


def _facts_sql(lo: int, hi: int, first_rating: bool, has_complaints: bool) -> str:
    """Orders lo..hi's facts, as ``trust.service.derive_facts`` makes them (each CTE mirrors one
    source function; see them for the rules): one row per line of a paid order."""
    first = "coalesce(nullif(rv.rating_product_first, 0), rv.rating_product)" if first_rating else "rv.rating_product"  # fmt: skip
    ended = ("CASE WHEN r.resolution IN ('rejected', 'return_not_sent') AND r.responded_at IS NOT NULL THEN r.responded_at "
             "WHEN r.arbitrated_at IS NOT NULL THEN r.arbitrated_at ELSE r.resolved_at END")  # fmt: skip
    complaints = (
        f"""LEFT JOIN trust_complaints c ON c.order_line_id = l.line_id AND c.order_id = l.order_id
                 AND c.order_id BETWEEN {lo} AND {hi} AND c.status = 'upheld' AND c.decided_at IS NOT NULL"""
        if has_complaints
        else "LEFT JOIN (SELECT NULL::timestamptz AS decided_at) c ON false"
    )
    return f"""
INSERT INTO trust_facts ({", ".join(FACTS)})
WITH l AS MATERIALIZED (
  -- orders.score_lines: the lines of paid orders. Delivered: by the carrier, else confirmed by the
  -- buyer (completed); closed: refunded or cancelled before it shipped (cancelled_at, else updated_at)
  SELECT l.id AS line_id, l.order_id, o.shop_id, l.product_id, coalesce(l.creator_id, 0) AS creator_id,
         l.category_id, {_epoch("o.paid_at")} AS paid_ts, {_epoch("o.ship_by")} AS ship_by_ts,
         {_epoch("o.shipped_at")} AS shipped_ts, {_epoch("coalesce(o.delivered_at, o.completed_at)")} AS delivered_ts,
         CASE WHEN o.shipped_at IS NULL AND o.status IN ('refunded', 'cancelled')
              THEN {_epoch("coalesce(o.cancelled_at, o.updated_at)")} ELSE 0 END AS closed_ts
  FROM orders o JOIN order_lines l ON l.order_id = o.id
  WHERE o.id BETWEEN {lo} AND {hi} AND l.order_id BETWEEN {lo} AND {hi} AND o.paid_at IS NOT NULL
), rq AS MATERIALIZED (
  -- aftersales.score_requests: the ended requests. A quality refund: refunded, the seller's fault, a
  -- cause about the goods; a lost dispute: arbitrated for the buyer; handled (not withdrawn or
  -- outdated): created to the shop's answer (a rejection), ops' decision, else the end, less the
  -- return's time with the buyer and the carrier once the end is past its arrival; whole seconds
  SELECT r.order_id, r.line_id, r.resolved_at, {_epoch("r.resolved_at")} AS resolved_ts,
         r.status = 'refunded' AND r.seller_cause AND r.reason IN ('quality', 'wrong_item', 'not_as_described')
           AS quality,
         CASE WHEN r.resolution = 'arbitrated_buyer' THEN r.arbitrated_at END AS lost_at,
         CASE WHEN r.resolution IN ('withdrawn', 'outdated') THEN NULL
              ELSE greatest(0, trunc({_seconds("e.ended", "r.created_at")}
                - CASE WHEN r.return_arrived_at IS NOT NULL AND r.responded_at IS NOT NULL AND e.ended >= r.return_arrived_at
                       THEN greatest(0, {_seconds("r.return_arrived_at", "r.responded_at")}) ELSE 0 END))::int8
         END AS handled
  FROM aftersales_requests r, LATERAL (SELECT {ended} AS ended OFFSET 0) e
  WHERE r.order_id BETWEEN {lo} AND {hi} AND r.resolved_at IS NOT NULL
), a AS (
  -- derive_facts: a line's requests are its own and its order's whole-order ones (line_id NULL);
  -- the latest quality refund, the latest lost dispute, and the handled request resolved last
  -- (the longer handling time on a tie) gives aftersales_ts and _s
  SELECT l.line_id, max(rq.resolved_ts) FILTER (WHERE rq.quality) AS quality_refund_ts,
         max({_epoch("rq.lost_at")}) FILTER (WHERE rq.lost_at IS NOT NULL) AS dispute_lost_ts,
         (array_agg(rq.resolved_ts ORDER BY rq.resolved_at DESC, rq.handled DESC)
            FILTER (WHERE rq.handled IS NOT NULL))[1] AS aftersales_ts,
         (array_agg(rq.handled ORDER BY rq.resolved_at DESC, rq.handled DESC)
            FILTER (WHERE rq.handled IS NOT NULL))[1] AS aftersales_s
  FROM rq JOIN l ON l.order_id = rq.order_id AND (rq.line_id IS NULL OR rq.line_id = l.line_id)
  GROUP BY l.line_id
)
SELECT {", ".join(FACTS[:-1])}, greatest({", ".join(FACT_TIMES)}) FROM (
  SELECT l.line_id, l.order_id, l.shop_id, l.product_id, l.creator_id, l.category_id, l.paid_ts, l.ship_by_ts,
         l.shipped_ts, l.delivered_ts, l.closed_ts,
         -- reviews.score_ratings: the lower of the product rating as first posted and as it stands
         coalesce(least(rv.rating_product, {first}), 0) AS rating_product,
         coalesce(rv.rating_service, 0) AS rating_service,
         coalesce(a.quality_refund_ts, 0) AS quality_refund_ts,
         -- fulfillment.score_inspections: the order's inspection, if it has happened
         {_epoch("q.inspected_at")} AS inspected_ts, coalesce((q.result = 'fail')::int, 0) AS inspection_failed,
         coalesce(a.aftersales_ts, 0) AS aftersales_ts, coalesce(a.aftersales_s, 0) AS aftersales_s,
         coalesce(a.dispute_lost_ts, 0) AS dispute_lost_ts,
         -- trust.repository.upheld_complaints: when the line's complaint was upheld
         {_epoch("c.decided_at")} AS false_claim_ts
  FROM l
  LEFT JOIN a ON a.line_id = l.line_id
  LEFT JOIN reviews rv ON rv.order_line_id = l.line_id AND rv.order_id = l.order_id AND rv.order_id BETWEEN {lo} AND {hi}
  LEFT JOIN qc_cases q ON q.order_id = l.order_id AND q.order_id BETWEEN {lo} AND {hi} AND q.inspected_at IS NOT NULL
  {complaints}
) f"""  # fmt: skip


async def _derive_facts_sql(raw_url: str, progress: Any) -> int:
    """Every paid order line's facts anew, set-based: ``trust_facts`` emptied, then one INSERT ...
    SELECT per CHUNK orders, in one transaction (a failure leaves the facts as they were). The
    table's secondary indexes are dropped first and built again at the end: maintained row by
    row, the four on shop, product, creator and last_ts would take random writes all over indexes
    far bigger than shared_buffers at 10M lines. Returns the number of rows written."""
    import asyncpg

    conn = await asyncpg.connect(raw_url)
    try:
        first_rating = bool(await conn.fetchval(
            "SELECT count(*) FROM information_schema.columns WHERE table_name = 'reviews' "
            "AND column_name = 'rating_product_first'"))  # fmt: skip
        has_complaints = bool(await conn.fetchval("SELECT to_regclass('trust_complaints') IS NOT NULL"))
        lo, hi = await conn.fetchrow("SELECT coalesce(min(id), 1), coalesce(max(id), 0) FROM orders")
        task = progress.add_task("facts, set-based", total=max(1, hi - lo + 1))
        written = 0
        async with conn.transaction():
            # A chunk's statement is one big plan run once: compiling it (JIT) costs more than it saves.
            await conn.execute("SET LOCAL work_mem = '256MB'; SET LOCAL maintenance_work_mem = '1GB'; "
                               "SET LOCAL jit = off; SET LOCAL synchronous_commit = off")  # fmt: skip
            indexes = await conn.fetch(
                "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = 'trust_facts'::regclass AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)")  # fmt: skip
            await conn.execute("TRUNCATE trust_facts")
            for name, _ in indexes:
                await conn.execute(f'DROP INDEX "{name}"')
            for start in range(lo, hi + 1, CHUNK):
                end = min(hi, start + CHUNK - 1)
                status = await conn.execute(_facts_sql(start, end, first_rating, has_complaints))
                written += int(status.split()[-1])
                progress.update(task, completed=end - lo + 1)
            index_task = progress.add_task("facts' indexes", total=len(indexes))
            for _, definition in indexes:
                await conn.execute(definition)
                progress.advance(index_task)
        return written
    finally:
        await conn.close()


async def _verify_facts(url: str, raw_url: str, n: int, progress: Any) -> tuple[int, int]:
    """Compare the facts in the table, column by column, with what ``trust.service.derive_facts``
    returns for the same orders: ``n`` orders (0: every order), about half of them chosen for
    what they have (an edited review, an after-sales request of each kind of ending, a failed or
    passed inspection, a complaint of each status, a refund before shipping), the rest at random.
    Prints the first differences and exits non-zero on any. Returns (orders, lines) compared."""
    import asyncpg
    from sqlalchemy import text

    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.trust import service as trust
    from trustlive.trust.repository import FACT_FIELDS

    conn = await asyncpg.connect(raw_url)
    try:
        lo, hi = await conn.fetchrow("SELECT coalesce(min(id), 1), coalesce(max(id), 0) FROM orders")
        if n <= 0 or n >= hi - lo + 1:
            ids = list(range(lo, hi + 1))
        else:
            k = max(1, n // 16)
            has_complaints = bool(await conn.fetchval("SELECT to_regclass('trust_complaints') IS NOT NULL"))
            picks = [
                f"SELECT order_id FROM reviews WHERE edited_at IS NOT NULL ORDER BY random() LIMIT {k}",
                f"SELECT order_id FROM reviews ORDER BY random() LIMIT {k}",
                # every way a request can end (and some still open), a few of each
                f"""SELECT order_id FROM (SELECT order_id, row_number() OVER (PARTITION BY status, resolution
                                                                       ORDER BY random()) AS n
                                          FROM aftersales_requests) x WHERE n <= {k}""",
                f"SELECT order_id FROM aftersales_requests WHERE resolved_at IS NOT NULL ORDER BY random() LIMIT {k}",
                f"SELECT order_id FROM qc_cases WHERE result = 'fail' ORDER BY random() LIMIT {k}",
                f"SELECT order_id FROM qc_cases ORDER BY random() LIMIT {k}",
                f"SELECT id FROM orders WHERE shipped_at IS NULL AND status IN ('refunded', 'cancelled') "
                f"ORDER BY random() LIMIT {k}",
            ]  # fmt: skip
            if has_complaints:
                picks.append(f"""SELECT order_id FROM (SELECT order_id, row_number() OVER (PARTITION BY status
                                                                                    ORDER BY random()) AS n
                                                       FROM trust_complaints) x WHERE n <= {k}""")  # fmt: skip
            chosen: set[int] = set()
            for sql in picks:
                chosen.update(r[0] for r in await conn.fetch(sql))
            chosen = set(random.sample(sorted(chosen), min(len(chosen), n // 2)))
            rest = [i for i in random.sample(range(lo, hi + 1), min(hi - lo + 1, n * 2)) if i not in chosen]
            ids = sorted(chosen | set(rest[: n - len(chosen)]))
    finally:
        await conn.close()

    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    task = progress.add_task("facts verified against derive_facts", total=len(ids))
    columns = ", ".join(FACT_FIELDS)
    differences: list[str] = []
    lines = 0
    try:
        for i in range(0, len(ids), 2000):  # rebuild_facts's batch
            batch = ids[i : i + 2000]
            async with transaction(sm) as s:
                expected = {r["line_id"]: r for r in await trust.derive_facts(s, batch)}
                got = {
                    r.line_id: r._asdict()
                    for r in await s.execute(
                        text(
                            f"SELECT {columns} FROM trust_facts WHERE order_id = ANY(CAST(:ids AS bigint[]))"
                        ),
                        {"ids": batch},
                    )
                }
            lines += len(expected)
            for line_id in sorted(expected.keys() | got.keys()):
                want, have = expected.get(line_id), got.get(line_id)
                if want is None or have is None:
                    differences.append(f"line {line_id}: " + ("not derived by derive_facts" if want is None
                                                              else "missing from trust_facts"))  # fmt: skip
                    continue
                wrong = [f"{c} {have.get(c)} (derive_facts {want.get(c)})" for c in sorted(want.keys() | have.keys())
                         if have.get(c) != want.get(c)]  # fmt: skip
                if wrong:
                    differences.append(f"line {line_id} (order {want['order_id']}): " + ", ".join(wrong))
            progress.advance(task, len(batch))
    finally:
        await engine.dispose()
    if differences:
        say = progress.console.print
        say(f"facts differ from derive_facts on {len(differences):,} of {lines:,} lines; the first ones:")
        for d in differences[:10]:
            say("  " + d, markup=False, highlight=False)
        sys.exit(1)
    return len(ids), lines


async def _facts(
    url: str, raw_url: str, a: argparse.Namespace, progress: Any, derive: bool
) -> dict[str, Any]:
    """The facts the scores are computed from: kept as a previous run left them (``derive``
    False, unless there are none), derived set-based then verified (``--facts sql``), or derived
    by ``trust.service.rebuild_facts`` (``--facts service``, the repair path, an hour at 10M)."""
    import asyncpg

    from trustlive.db import create_engine, create_sessionmaker
    from trustlive.trust import service as trust

    out: dict[str, Any] = {"facts": 0, "rebuild_facts_s": None, "derive_facts_sql_s": None, "verified": None,
                           "note": None}  # fmt: skip
    conn = await asyncpg.connect(raw_url)
    try:
        autovacuum = await conn.fetchval("SHOW autovacuum")
        if not derive and not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM trust_facts)"):
            derive = True  # e.g. a database kept by --generate-only before it derived the facts
            out["note"] = "--no-rebuild: the kept database has no facts; deriving them"
        if not derive:
            out["facts"] = await conn.fetchval("SELECT count(*) FROM trust_facts")
            return out
    finally:
        await conn.close()
    t0 = time.perf_counter()
    if a.facts == "service":
        engine = create_engine(url)
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = progress.add_task(stage, total=total)
            progress.update(tasks[stage], completed=done, total=total)

        stop = asyncio.Event()
        analyzer = (
            asyncio.create_task(_analyze_every(raw_url, "trust_facts", stop)) if autovacuum != "on" else None
        )
        try:
            out["facts"] = await trust.rebuild_facts(create_sessionmaker(engine), progress=report)
        finally:
            stop.set()
            if analyzer is not None:
                await analyzer
            await engine.dispose()
        out["rebuild_facts_s"] = time.perf_counter() - t0
        return out
    out["facts"] = await _derive_facts_sql(raw_url, progress)
    out["derive_facts_sql_s"] = time.perf_counter() - t0
    # A table filled from empty has no statistics and no visibility map (the server runs without
    # autovacuum): the recompute's COPY and the verification's lookups would be planned blind.
    t0 = time.perf_counter()
    conn = await asyncpg.connect(raw_url)
    try:
        await conn.execute("VACUUM ANALYZE trust_facts")
    finally:
        await conn.close()
    out["vacuum_facts_s"] = time.perf_counter() - t0
    out["verified"] = await _verify_facts(url, raw_url, a.verify, progress)
    return out


# --- measurement ------------------------------------------------------------------------------


async def _queue(session: Any, trust: Any, order_ids: list[int]) -> None:
    """Queue orders for a refresh as the event handler does."""
    if hasattr(trust, "queue_orders"):
        await trust.queue_orders(session, order_ids)
        return
    from sqlalchemy import text

    await session.execute(
        text("INSERT INTO trust_dirty_orders (order_id, queued_at) SELECT unnest(CAST(:ids AS bigint[])), now() "
             "ON CONFLICT (order_id) DO NOTHING"),
        {"ids": order_ids},
    )  # fmt: skip


async def _pick(session: Any, n_orders: int, k: int, rng: random.Random) -> dict[str, list[int]]:
    """K distinct random orders, a quarter each (as far as there are any) for: a review posted on
    a completed line, a review edited, a parcel delivered, an open after-sales request resolved."""
    from sqlalchemy import text

    sample = rng.sample(range(1, n_orders + 1), min(n_orders, 40 * k))
    rows = (await session.execute(text(
        "SELECT o.id, o.status, r.id IS NOT NULL FROM orders o LEFT JOIN reviews r ON r.order_line_id = o.id "
        "WHERE o.id = ANY(CAST(:ids AS bigint[]))"), {"ids": sample})).all()  # fmt: skip
    open_requests = list(await session.scalars(text(
        "SELECT order_id FROM aftersales_requests WHERE resolved_at IS NULL ORDER BY random() LIMIT :n"),
        {"n": k // 4}))  # fmt: skip
    taken = set(open_requests)
    pools: dict[str, list[int]] = {"review_post": [], "review_edit": [], "deliver": []}
    for oid, status, reviewed in rows:
        if oid in taken:
            continue
        if reviewed:
            pools["review_edit"].append(oid)
        elif status in ("completed", "settled"):
            pools["review_post"].append(oid)
        elif status == "shipped":
            pools["deliver"].append(oid)
    picked = {"aftersales_resolve": open_requests}
    picked["deliver"] = pools["deliver"][: k // 4]
    picked["review_edit"] = pools["review_edit"][: k // 4]
    rest = k - sum(len(v) for v in picked.values())
    picked["review_post"] = pools["review_post"][:rest]
    return picked


async def _mutate(session: Any, picked: dict[str, list[int]], first_rating: bool) -> None:
    """Change the sources of the picked orders as the domains would (in SQL: the benchmark measures
    the scores' refresh, not the domains' own work)."""
    from sqlalchemy import text

    ids = {k: v for k, v in picked.items() if v}
    if "review_post" in ids:
        first_col, first_val = ("rating_product_first, ", "rp, ") if first_rating else ("", "")
        await session.execute(text(f"""
            INSERT INTO reviews (order_id, order_line_id, product_id, shop_id, buyer_id, title, variant,
                                 rating_product, {first_col}rating_logistics, rating_service, text, photo_count,
                                 created_at, edit_until)
            SELECT o.id, l.id, l.product_id, o.shop_id, o.buyer_id, l.title, '', rp, {first_val}5,
                   CASE WHEN rp <= 2 THEN 3 ELSE 5 END, '', 0, now(), now() + interval '24 hours'
            FROM orders o JOIN order_lines l ON l.order_id = o.id,
                 -- one draw per row: the lateral subquery refers to the row (0 * o.id)
                 LATERAL (SELECT CASE WHEN random() < 0.03 THEN 1 WHEN random() < 0.3 THEN 4 ELSE 5 END
                          + 0 * o.id AS rp) x
            WHERE o.id = ANY(CAST(:ids AS bigint[]))
            ON CONFLICT (order_line_id) DO NOTHING"""), {"ids": ids["review_post"]})  # fmt: skip
    if "review_edit" in ids:
        await session.execute(text("""
            UPDATE reviews SET rating_product = CASE WHEN rating_product <= 2 THEN 5
                                                     ELSE greatest(1, rating_product - 1) END,
                               edited_at = now()
            WHERE order_id = ANY(CAST(:ids AS bigint[]))"""), {"ids": ids["review_edit"]})  # fmt: skip
    if "deliver" in ids:
        await session.execute(text("""
            UPDATE orders SET status = 'delivered', delivered_at = now(), auto_confirm_at = now() + interval '10 days',
                              updated_at = now()
            WHERE id = ANY(CAST(:ids AS bigint[])) AND status = 'shipped'"""), {"ids": ids["deliver"]})  # fmt: skip
    if "aftersales_resolve" in ids:
        p = {"ids": ids["aftersales_resolve"]}
        await session.execute(text("""
            UPDATE aftersales_requests
            SET status = 'refunded', decision = coalesce(decision, 'approved'),
                responded_at = coalesce(responded_at, now()), resolution = 'approved', resolved_at = now(),
                refund_fen = amount_fen, open_slot = NULL, due_at = NULL, updated_at = now()
            WHERE order_id = ANY(CAST(:ids AS bigint[])) AND resolved_at IS NULL"""), p)  # fmt: skip
        await session.execute(text("""
            UPDATE orders SET status = 'refunded', refunded_fen = paid_fen, settlement_holds = 0, updated_at = now()
            WHERE id = ANY(CAST(:ids AS bigint[]))"""), p)  # fmt: skip
        await session.execute(text("""
            UPDATE order_lines SET refunded_fen = line_total_fen
            WHERE order_id = ANY(CAST(:ids AS bigint[]))"""), p)  # fmt: skip


async def _analyze_every(raw_url: str, table: str, stop: asyncio.Event, seconds: float = 20.0) -> None:
    """ANALYZE ``table`` every ``seconds`` until ``stop``: what autovacuum does to a table that
    grows (the test server runs without it). Without statistics, trust_facts filling up from
    empty keeps the plans made for an empty table: each batch's DELETE by order id becomes a
    sequential scan (and JIT-compiled), and the rebuild slows down as the table grows."""
    import asyncpg

    conn = await asyncpg.connect(raw_url)
    try:
        while True:
            try:
                await asyncio.wait_for(stop.wait(), seconds)
                return
            except TimeoutError:
                await conn.execute(f"ANALYZE {table}")
    finally:
        await conn.close()


async def _vacuum(raw_url: str) -> None:
    """VACUUM ANALYZE the trust tables, untimed, before each measured phase: every full recompute
    rewrites each score row, and autovacuum (off on the test server) would clean up between two
    nightly runs; without it each run leaves the table bigger and the next one slower."""
    import asyncpg

    conn = await asyncpg.connect(raw_url)
    try:
        await conn.execute(
            "VACUUM ANALYZE trust_scores, trust_score_history, trust_facts, trust_dirty_orders"
        )
    finally:
        await conn.close()


async def _measure(url: str, raw_url: str, a: argparse.Namespace, progress: Any) -> dict[str, Any]:
    from sqlalchemy import text

    from trustlive.db import create_engine, create_sessionmaker, transaction
    from trustlive.trust import service as trust

    engine = create_engine(url)
    sm = create_sessionmaker(engine)
    tasks: dict[str, Any] = {}

    def report(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(stage, total=total)
        progress.update(tasks[stage], completed=done, total=total)

    out: dict[str, Any] = {}
    try:
        async with transaction(sm) as s:
            first_rating = bool(await s.scalar(text(
                "SELECT count(*) FROM information_schema.columns WHERE table_name = 'reviews' "
                "AND column_name = 'rating_product_first'")))  # fmt: skip
            out["autovacuum"] = await s.scalar(text("SHOW autovacuum"))
        for run in (1, 2):
            await _vacuum(raw_url)
            t0 = time.perf_counter()
            out[f"recompute_{run}"] = await trust.recompute_all(sm, progress=report)
            out[f"full_recompute_{run}_s"] = time.perf_counter() - t0
        async with transaction(sm) as s:
            rows = (await s.execute(text(
                "SELECT entity_type, count(*), count(score_c), count(*) FILTER (WHERE flash_sale_restricted), "
                "percentile_disc(0.5) WITHIN GROUP (ORDER BY score_c) FROM trust_scores GROUP BY 1 ORDER BY 1"
            ))).all()  # fmt: skip
        out["entities"] = {
            r[0]: {"rows": r[1], "scored": r[2], "restricted": r[3], "median_c": r[4]} for r in rows
        }

        # Incremental: K events at once, refreshed in batches.
        rng = random.Random(6)
        async with transaction(sm) as s:  # anything queued by the set-up is not ours to time
            while await trust.refresh_dirty(s, limit=500):
                await s.commit()
        await _vacuum(raw_url)
        async with transaction(sm) as s:
            picked = await _pick(s, a.orders, a.events, rng)
            await _mutate(s, picked, first_rating)
        ids = [oid for v in picked.values() for oid in v]
        out["mix"] = {k: len(v) for k, v in picked.items()}
        t0 = time.perf_counter()
        async with transaction(sm) as s:
            await _queue(s, trust, ids)
        out["queue_s"] = time.perf_counter() - t0
        task = progress.add_task(f"refresh {len(ids)} events", total=len(ids))
        t0 = time.perf_counter()
        batches = 0
        async with sm() as s:
            while n := await trust.refresh_dirty(s, limit=a.batch):
                await s.commit()
                batches += 1
                progress.advance(task, n)
        out["incremental_s"] = time.perf_counter() - t0
        out["events"], out["batches"] = len(ids), batches

        # Single events: one order changed, queued and refreshed alone.
        singles = []
        task = progress.add_task("single events", total=a.samples)
        for i in range(a.samples):
            async with transaction(sm) as s:
                one = await _pick(s, a.orders, 4, rng)
                kind = ("review_post", "deliver", "review_edit", "aftersales_resolve")[i % 4]
                if not one[kind]:
                    kind = "review_post"
                await _mutate(s, {kind: one[kind][:1]}, first_rating)
                await _queue(s, trust, one[kind][:1])
            async with sm() as s:
                t0 = time.perf_counter()
                await trust.refresh_dirty(s, limit=1)
                await s.commit()
                singles.append(time.perf_counter() - t0)
            progress.advance(task)
        out["singles"] = sorted(singles)

        # Incremental = recompute, at this scale: every score row the refreshes moved, against a
        # recompute from scratch with the windows where they kept them (the second recompute's).
        out["check"] = await _check_incremental(sm, trust)
        return out
    finally:
        await engine.dispose()


async def _check_incremental(sm: Any, trust: Any) -> dict[str, int]:
    """Copy the score rows, recompute everything as of their ``as_of_ts``, and count the rows that
    differ in any column but ``computed_at`` (rows a refresh read in full, as of its own time,
    are left out and counted)."""
    import datetime as dt

    from sqlalchemy import text

    from trustlive.db import transaction
    from trustlive.trust.scoring import COUNTS

    cols = "entity_type, entity_id, category_id, score_c, product_c, logistics_c, aftersales_c, claims_c, " + ", ".join(
        COUNTS
    ) + ", flash_sale_restricted, as_of_ts"  # fmt: skip
    async with transaction(sm) as s:
        as_of = await s.scalar(
            text("SELECT as_of_ts FROM trust_scores GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")
        )
        other = await s.scalar(text("SELECT count(*) FROM trust_scores WHERE as_of_ts <> :t"), {"t": as_of})
        await s.execute(text("DROP TABLE IF EXISTS bench_scores_incremental"))
        await s.execute(text(f"CREATE TABLE bench_scores_incremental AS SELECT {cols} FROM trust_scores "
                             "WHERE as_of_ts = :t"), {"t": as_of})  # fmt: skip
    await trust.recompute_all(sm, now=dt.datetime.fromtimestamp(as_of, dt.UTC))
    async with transaction(sm) as s:
        fresh = f"SELECT {cols} FROM trust_scores WHERE as_of_ts = :t"
        differ = await s.scalar(text(
            f"SELECT count(*) FROM ((SELECT {cols} FROM bench_scores_incremental EXCEPT {fresh}) "
            f"UNION ALL ({fresh} EXCEPT SELECT {cols} FROM bench_scores_incremental)) d"
        ), {"t": as_of})  # fmt: skip
        compared = await s.scalar(text("SELECT count(*) FROM bench_scores_incremental"))
        await s.execute(text("DROP TABLE bench_scores_incremental"))
    return {"compared": compared, "differ": differ, "read_in_full": other}


# --- the run ----------------------------------------------------------------------------------


def _pct(xs: list[float], q: float) -> float:
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=10_000_000)
    parser.add_argument("--shops", type=int, default=100_000)
    parser.add_argument("--creators", type=int, default=50_000)
    parser.add_argument("--buyers", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=5000, help="orders changed for the incremental run")
    parser.add_argument("--samples", type=int, default=200, help="single events timed one by one")
    parser.add_argument(
        "--batch", type=int, default=500, help="orders per refresh_dirty call (the job's batch)"
    )
    parser.add_argument("--database", default=DB_NAME, help="the database to (re)create")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="reuse a kept database generated with the same sizes (skips generation)")  # fmt: skip
    parser.add_argument("--generate-only", action="store_true",
                        help="generate (or --reuse) and derive the facts, then stop (implies --keep)")  # fmt: skip
    parser.add_argument("--no-rebuild", action="store_true",
                        help="with --reuse: keep the facts a previous run derived (derives them only if none)")  # fmt: skip
    parser.add_argument("--facts", choices=("sql", "service"), default="sql",
                        help="derive the facts set-based in SQL, verified against derive_facts (sql), or with "
                             "trust.service.rebuild_facts (service: about an hour at 10M orders)")  # fmt: skip
    parser.add_argument("--verify", type=int, default=2000,
                        help="orders whose SQL-derived facts are compared with derive_facts (0: all of them)")  # fmt: skip
    a = parser.parse_args()

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.table import Table

    from trustlive import migrate
    from trustlive.config import normalise_database_url

    console = Console()
    raw_url = urlsplit(ADMIN_URL)._replace(path=f"/{a.database}").geturl()
    url = normalise_database_url(raw_url)
    sizes = {"orders": a.orders, "shops": a.shops, "creators": a.creators, "buyers": a.buyers}
    keep = a.keep or a.generate_only

    def bar() -> Progress:
        return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=console, transient=True)  # fmt: skip

    async def kept_sizes() -> dict[str, int] | None:
        import asyncpg

        conn = await asyncpg.connect(ADMIN_URL)
        try:
            note = await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", a.database
            )
        finally:
            await conn.close()
        return json.loads(note) if note else None

    generate_s = None
    counts: dict[str, Any] = {}
    reused = a.reuse and asyncio.run(kept_sizes()) == sizes
    if reused:
        console.print(f"reusing {a.database} ({a.orders:,} orders)")
        migrate.upgrade(url)
    else:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{a.database}" WITH (FORCE)'))
        asyncio.run(_admin(f'CREATE DATABASE "{a.database}"'))
        migrate.upgrade(url)
        console.print(f"generating {a.orders:,} orders, {a.shops:,} shops, {a.creators:,} creators, "
                      f"{a.buyers:,} buyers ...")  # fmt: skip
        t0 = time.perf_counter()
        with bar() as progress:
            counts, phases = asyncio.run(_generate(raw_url, a, progress))
        generate_s = time.perf_counter() - t0
        asyncio.run(_admin(f"COMMENT ON DATABASE \"{a.database}\" IS '{json.dumps(sizes)}'"))
        console.print(
            f"generated in {generate_s:.1f} s: " + ", ".join(f"{k} {v:,}" for k, v in counts.items())
        )
        console.print("  of which " + ", ".join(f"{k} {v:.1f} s" for k, v in phases.items()))
    if a.no_rebuild and not reused:
        console.print("--no-rebuild: a new database has no facts to keep; deriving them")
    try:
        with bar() as progress:
            f = asyncio.run(_facts(url, raw_url, a, progress, derive=not (reused and a.no_rebuild)))
        if f["note"]:
            console.print(f["note"])
        if f["derive_facts_sql_s"] is not None:
            console.print(f"facts derived in SQL in {f['derive_facts_sql_s']:.1f} s: {f['facts']:,} lines, "
                          f"{f['derive_facts_sql_s'] / max(1, f['facts']) * 1e6:.2f} s per million "
                          f"(then VACUUM ANALYZE trust_facts, {f['vacuum_facts_s']:.1f} s)")  # fmt: skip
            console.print(f"facts verified: {f['verified'][0]:,} orders ({f['verified'][1]:,} lines) identical "
                          "to derive_facts")  # fmt: skip
        elif f["rebuild_facts_s"] is not None:
            console.print(
                f"facts derived by rebuild_facts in {f['rebuild_facts_s']:.1f} s: {f['facts']:,} lines"
            )
        else:
            console.print(f"facts kept: {f['facts']:,} lines")
        if a.generate_only:
            print(json.dumps({
                "orders": a.orders, "generate_s": None if generate_s is None else round(generate_s, 1), **counts,
                "facts": f["facts"], **{k: None if f[k] is None else round(f[k], 2)
                                        for k in ("derive_facts_sql_s", "rebuild_facts_s")},
            }))  # fmt: skip
            return
        with bar() as progress:
            m = {**f, **asyncio.run(_measure(url, raw_url, a, progress))}
    finally:
        if not keep:
            asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{a.database}" WITH (FORCE)'))

    entities = m["entities"]
    scored = sum(e["scored"] for e in entities.values())
    rows = sum(e["rows"] for e in entities.values())
    table = Table(title=f"trust scores, {a.orders:,} orders")
    for col in ("entity", "rows", "scored", "new", "median score", "flash-sale restricted"):
        table.add_column(col, justify="right")
    for kind, e in entities.items():
        median = "-" if e["median_c"] is None else f"{e['median_c'] / 100:.2f}"
        table.add_row(kind, f"{e['rows']:,}", f"{e['scored']:,}", f"{e['rows'] - e['scored']:,}", median,
                      f"{e['restricted']:,}")  # fmt: skip
    console.print(table)
    full1, full2 = m["full_recompute_1_s"], m["full_recompute_2_s"]
    inc_ms = m["incremental_s"] / max(1, m["events"]) * 1000
    queue_ms = m["queue_s"] / max(1, m["events"]) * 1000
    singles = m["singles"]
    p50, p99 = statistics.median(singles) * 1000, _pct(singles, 0.99)
    timings = Table(title="timings")
    for col in ("what", "time", "per unit"):
        timings.add_column(col, justify="right")
    if m["rebuild_facts_s"] is not None:
        timings.add_row("rebuild_facts", f"{m['rebuild_facts_s']:.1f} s",
                        f"{m['rebuild_facts_s'] / max(1, m['facts']) * 1e6:.2f} us / fact ({m['facts']:,})")  # fmt: skip
    if m["derive_facts_sql_s"] is not None:
        timings.add_row("facts in SQL (verified)", f"{m['derive_facts_sql_s']:.1f} s",
                        f"{m['derive_facts_sql_s'] / max(1, m['facts']) * 1e6:.2f} us / fact ({m['facts']:,})")  # fmt: skip
    timings.add_row("recompute_all, first", f"{full1:.1f} s", f"{full1 / max(1, rows) * 1e6:.1f} us / entity")
    timings.add_row(
        "recompute_all, second", f"{full2:.1f} s", f"{full2 / max(1, rows) * 1e6:.1f} us / entity"
    )
    timings.add_row(f"refresh_dirty x{m['batches']} ({a.batch} a batch)", f"{m['incremental_s']:.2f} s",
                    f"{inc_ms:.3f} ms / event ({m['events']:,})")  # fmt: skip
    timings.add_row("queueing those events", f"{m['queue_s'] * 1000:.1f} ms", f"{queue_ms:.4f} ms / event")
    timings.add_row(f"single events (limit 1), {len(singles)}", f"p50 {p50:.2f} ms", f"p99 {p99:.2f} ms")
    console.print(timings)
    print("events: " + ", ".join(f"{k.replace('_', ' ')} {v:,}" for k, v in m["mix"].items()))
    per_entity_ms = full2 / max(1, rows) * 1000
    print(
        f"incremental per event / full recompute per entity: {inc_ms:.3f} / {per_entity_ms:.4f} ms = "
        f"{inc_ms / per_entity_ms:.0f}x; a full recompute costs as much as {full2 * 1000 / inc_ms:,.0f} events"
    )
    if m["autovacuum"] != "on":
        print("(the server runs without autovacuum: the trust tables were VACUUM ANALYZEd before each measured "
              "phase" + (", and trust_facts ANALYZEd every 20 s during the rebuild" if m["rebuild_facts_s"] else "")
              + (", and after the facts' derivation" if m["derive_facts_sql_s"] is not None else "")
              + ", as autovacuum would)")  # fmt: skip
    check = m["check"]
    print(f"incremental = recompute: {check['compared']:,} score rows after the refreshes compared with a "
          f"recompute from scratch with the same windows, {check['differ']:,} differ"
          + (f" ({check['read_in_full']:,} rows read in full by a refresh, as of its own time, not compared)"
             if check["read_in_full"] else ""))  # fmt: skip
    print(f"targets: full recompute <= 30 s ({full2:.1f} s), incremental <= 5 ms per event ({inc_ms:.3f} ms)")
    print(json.dumps({
        "orders": a.orders, "full_recompute_s": round(full1, 2), "incremental_ms_per_event": round(inc_ms, 3),
        "full_recompute_2_s": round(full2, 2), "reused": generate_s is None,
        "rebuild_facts_s": None if m["rebuild_facts_s"] is None else round(m["rebuild_facts_s"], 2),
        "derive_facts_sql_s": None if m["derive_facts_sql_s"] is None else round(m["derive_facts_sql_s"], 2),
        "facts_verified_orders": None if m["verified"] is None else m["verified"][0], "single_event_p50_ms": round(p50, 2),
        "single_event_p99_ms": round(p99, 2), "queue_ms_per_event": round(queue_ms, 4),
        "shops": entities.get("shop", {}).get("rows", 0), "creators": entities.get("creator", {}).get("rows", 0),
        "products": entities.get("product", {}).get("rows", 0), "entities_scored": scored,
        "incremental_rows_compared": check["compared"], "incremental_rows_differ": check["differ"],
        "events": m["events"], "batch": a.batch, "facts": m["facts"], "generate_s": None if generate_s is None else round(generate_s, 1),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
