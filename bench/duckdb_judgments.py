#!/usr/bin/env python3
"""The analyst's baseline: per-shop judgment counts of R1-R3 with DuckDB SQL.

Loads the JSON Lines workload with read_json (explicit columns, file order
kept), then computes, as of T, for every shop the number of judgments that
exist (R3), revoked ones included:

  deadline  = coalesce(ship_by, paid.at + 48 h)                      (R1)
  T_k       = deadline + (k - 1) * 24 h, k = 1..3                    (R3)
  judgment k exists iff T_k <= as_of, T_k < paid.at + 150 days, and the
  order is not resolved at T_k, where resolved at t means             (R2)
    (a) a shipped/tracking_uploaded event with at <= t whose tracking_no has
        no tracking_rejected (with at <= as_of) for the same order, or
    (b) the refunds with at <= t add up to at least the paid amount.

Like ingest, it keeps the first line of each event_id (exact duplicates and
id conflicts) and the first paid of each order, in file order. Only events
with at <= as_of exist. The load and the query are timed apart.

With --ours FILE (the JSON Lines of `penalty export orders --format jsonl`),
it also checks, shop by shop, that judgments + revoked_judgments summed over
our rows equals DuckDB's count, prints OK or the mismatches, and exits 1 on a
mismatch. Prints one JSON object on stdout.
"""

import argparse
import json
import sys
import time
from collections import defaultdict

import duckdb

COLUMNS = {
    "event_id": "VARCHAR",
    "type": "VARCHAR",
    "at": "TIMESTAMPTZ",
    "order_id": "VARCHAR",
    "shop_id": "VARCHAR",
    "amount_fen": "BIGINT",
    "ship_by": "TIMESTAMPTZ",
    "tracking_no": "VARCHAR",
    "judgment": "INTEGER",
}

QUERY = """
WITH first_line AS (                       -- ingest: the first line of an event_id
    SELECT * FROM events
    QUALIFY row_number() OVER (PARTITION BY event_id ORDER BY line) = 1
),
e AS (SELECT * FROM first_line WHERE ts <= $as_of::TIMESTAMPTZ),
paid AS (                                  -- ingest: the first paid of an order
    SELECT order_id, shop_id, ts AS paid_at, amount_fen,
           coalesce(ship_by, ts + INTERVAL 48 HOUR) AS deadline
    FROM first_line WHERE type = 'paid'
    QUALIFY row_number() OVER (PARTITION BY order_id ORDER BY line) = 1
),
rejected AS (
    SELECT DISTINCT order_id, tracking_no FROM e WHERE type = 'tracking_rejected'
),
shipped AS (                               -- R2 (a): the first valid shipment
    SELECT s.order_id, min(s.ts) AS ts
    FROM e s ANTI JOIN rejected r
      ON s.order_id = r.order_id AND s.tracking_no = r.tracking_no
    WHERE s.type IN ('shipped', 'tracking_uploaded')
    GROUP BY s.order_id
),
refund_sums AS (                           -- refunds with at <= t, ties included
    SELECT r.order_id, r.ts,
           sum(r.amount_fen) OVER (PARTITION BY r.order_id ORDER BY r.ts
                                   RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS total
    FROM e r WHERE r.type = 'refunded'
),
refunded AS (                              -- R2 (b): the first full refund
    SELECT s.order_id, min(s.ts) AS ts
    FROM refund_sums s JOIN paid p ON p.order_id = s.order_id
    WHERE s.total >= p.amount_fen
    GROUP BY s.order_id
),
orders AS (
    SELECT p.*, least(coalesce(s.ts, 'infinity'::TIMESTAMPTZ),
                      coalesce(f.ts, 'infinity'::TIMESTAMPTZ)) AS resolved_at
    FROM paid p
    LEFT JOIN shipped s ON s.order_id = p.order_id
    LEFT JOIN refunded f ON f.order_id = p.order_id
    WHERE p.paid_at <= $as_of::TIMESTAMPTZ
),
judgments AS (                             -- R3
    SELECT o.shop_id, o.deadline + (k.k - 1) * INTERVAL 24 HOUR AS t_k, o.paid_at, o.resolved_at
    FROM orders o CROSS JOIN (SELECT unnest([1, 2, 3]) AS k) k
)
SELECT shop_id, count(*) AS judgments
FROM judgments
WHERE t_k <= $as_of::TIMESTAMPTZ
  AND t_k < paid_at + INTERVAL 150 DAY
  AND resolved_at > t_k
GROUP BY shop_id
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("jsonl")
    parser.add_argument("--as-of", required=True)
    parser.add_argument("--ours", help="penalty export orders --format jsonl output")
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: its default)")
    args = parser.parse_args()

    con = duckdb.connect()
    if args.threads:
        con.execute(f"SET threads = {args.threads}")
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
    columns = "{" + ", ".join(f"'{k}': '{v}'" for k, v in COLUMNS.items()) + "}"

    start = time.perf_counter()
    # preserve_insertion_order (the default) keeps file order, so the row
    # number is the line number: what "first" means for ingest.
    con.execute(
        f"""CREATE TABLE events AS
            SELECT row_number() OVER () AS line, * RENAME ("at" AS ts)
            FROM read_json(?, format = 'newline_delimited', columns = {columns})""",
        [args.jsonl],
    )
    load_s = time.perf_counter() - start
    rows = con.execute("SELECT count(*) FROM events").fetchone()[0]

    start = time.perf_counter()
    result = con.execute(QUERY, {"as_of": args.as_of}).fetchall()
    query_s = time.perf_counter() - start

    duck = {shop: n for shop, n in result if n}
    output = {
        "duckdb_version": duckdb.__version__,
        "threads": int(threads),
        "lines": rows,
        "load_s": load_s,
        "query_s": query_s,
        "shops_with_judgments": len(duck),
        "judgments": sum(duck.values()),
    }

    ok = True
    if args.ours:
        ours = defaultdict(int)
        with open(args.ours, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                ours[row["shop_id"]] += row["judgments"] + row["revoked_judgments"]
        ours = {shop: n for shop, n in ours.items() if n}
        mismatches = [
            {"shop_id": shop, "ours": ours.get(shop, 0), "duckdb": duck.get(shop, 0)}
            for shop in sorted(set(ours) | set(duck))
            if ours.get(shop, 0) != duck.get(shop, 0)
        ]
        ok = not mismatches
        output["ours_judgments"] = sum(ours.values())
        output["counts_equal"] = ok
        output["mismatches"] = mismatches[:20]
        output["mismatched_shops"] = len(mismatches)
        print(
            "per-shop judgment counts: OK, equal for all %d shops with judgments" % len(duck)
            if ok
            else "per-shop judgment counts: MISMATCH in %d shops, e.g. %s"
            % (len(mismatches), mismatches[:5]),
            file=sys.stderr,
        )
    print(json.dumps(output))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
