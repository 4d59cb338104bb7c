#!/usr/bin/env python3
"""Helpers of run.sh: parse wrk output, prepare large databases, and write the report.

  report.py wrk < wrk-output                 -> "rps=.. p50_ms=.. p99_ms=.. errors=.."
  report.py lost-adds DB RESULTS             -> compares units in the database with successful adds
  report.py fill DB N                        -> makes the database hold N carts (1 line each)
  report.py age DB                           -> makes the filled carts 100 days idle
  report.py report RESULTS_DIR DOCS_DIR      -> docs/BENCHMARKS.md tables + docs/benchmarks.svg
"""
import math
import os
import re
import sqlite3
import statistics
import sys
import time

FILL_USER = "bench-fill"


def ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(text):
    out = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", text)
    out["rps"] = float(m.group(1)) if m else 0.0
    for pct in ("50", "99"):
        m = re.search(r"^\s+%s(?:\.000)?%%\s+([\d.]+)(us|ms|s)\b" % pct, text, re.M)
        out["p%s_ms" % pct] = round(ms(m.group(1), m.group(2)), 2) if m else float("nan")
    m = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    out["bad_status"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    out["sock_errors"] = sum(int(x) for x in m.groups()) if m else 0
    m = re.search(r"^\s+Latency\s+[\d.]+\w+\s+[\d.]+\w+\s+([\d.]+)(us|ms|s)", text, re.M)
    out["max_ms"] = round(ms(m.group(1), m.group(2)), 2) if m else float("nan")
    return out


def results(path):
    rows = []
    with open(path) as f:
        for line in f:
            if line.startswith("RESULT "):
                rows.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
    return rows


def rss(path):
    with open(path) as f:
        return [dict(kv.split("=", 1) for kv in line.split()[1:]) for line in f if line.startswith("RSS ")]


def connect(db):
    con = sqlite3.connect(db, timeout=60)
    con.execute("PRAGMA busy_timeout = 60000")
    return con


def lost_adds(db, result_file):
    ok = sum(int(r["requests"]) - int(r["bad_status"]) for r in results(result_file) if r["scenario"] == "c_add_post")
    con = connect(db)
    units = con.execute("SELECT COALESCE(SUM(quantity), 0) FROM cart_items").fetchone()[0]
    # load.sh fills three carts first: 10 + 100 + 10 single units.
    added = units - 120
    conns = int(os.environ.get("CONNS", "32"))
    runs = sum(1 for r in results(result_file) if r["scenario"] == "c_add_post")
    verdict = "none lost" if added >= ok else "LOST %d" % (ok - added)
    print("ADDS acknowledged=%d in_database=%d in_flight_at_stop_max=%d verdict=%s" % (ok, added, conns * runs, verdict))


def fill(db, n):
    con = connect(db)
    have = con.execute("SELECT COUNT(*) FROM cart_carts WHERE user_id = ?", (FILL_USER,)).fetchone()[0]
    todo = n - have
    if todo <= 0:
        return
    now = int(time.time())
    start = time.time()
    with con:
        first = con.execute("SELECT COALESCE(MAX(id), 0) FROM cart_carts").fetchone()[0]
        con.execute(
            "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < ?) "
            "INSERT INTO cart_carts (created_at, updated_at, user_id) SELECT ?, ?, ? FROM k",
            (todo, now, now, FILL_USER),
        )
        con.execute(
            "INSERT INTO cart_items (cart_id, product_kind, product_id, quantity, unit_price_cents) "
            "SELECT id, 'book', 1, 1, 1099 FROM cart_carts WHERE id > ? AND user_id = ?",
            (first, FILL_USER),
        )
    print("FILL carts=%d seconds=%.1f" % (n, time.time() - start), file=sys.stderr)


def age(db):
    con = connect(db)
    with con:
        con.execute("UPDATE cart_carts SET updated_at = updated_at - 100 * 86400 WHERE user_id = ?", (FILL_USER,))


def mean(rows, scenario, key):
    vals = [float(r[key]) for r in rows if r["scenario"] == scenario and r.get(key) not in (None, "na")]
    return statistics.mean(vals) if vals else float("nan")


SCENARIOS = [
    ("a_cart10_get", "cart page, 10 lines"),
    ("b_cart100_get", "cart page, 100 lines"),
    ("c_add_post", "add to cart"),
    ("d_floor_get", "trivial page / healthz"),
]


def svg_chart(django, shop, path):
    width, height, left, top, bar = 860, 300, 190, 30, 16
    vmax = max([mean(shop, s, "rps") for s, _ in SCENARIOS] + [1.0])
    scale = lambda v: 0 if not v or v != v or v <= 1 else (math.log10(v) / math.log10(vmax)) * (width - left - 170)
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (width, height),
        '<rect width="100%" height="100%" fill="white"/>',
        '<text x="10" y="18" font-weight="bold">Requests per second on one 2-core machine (log scale)</text>',
    ]
    y = top + 10
    for s, label in SCENARIOS:
        parts.append('<text x="10" y="%d">%s</text>' % (y + 20, label))
        for rows, colour, name in ((django, "#f59e0b", "django-cart"), (shop, "#2563eb", "axum-cart")):
            v = mean(rows, s, "rps")
            w = scale(v)
            parts.append('<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y, w, bar, colour))
            parts.append('<text x="%.1f" y="%d">%s %s</text>' % (left + w + 6, y + 12, name, "n/a" if v != v else "{:,.0f}".format(v)))
            y += bar + 4
        y += 22
    parts.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(parts) + "\n")


def fmt(v, digits=0):
    if v != v:
        return "n/a"
    return "{:,.{d}f}".format(v, d=digits)


def report(results_dir, docs_dir):
    django = results(os.path.join(results_dir, "django.txt")) if os.path.exists(os.path.join(results_dir, "django.txt")) else []
    shop = results(os.path.join(results_dir, "shop-sqlite.txt"))
    pg_path = os.path.join(results_dir, "shop-postgres.txt")
    pg = results(pg_path) if os.path.exists(pg_path) else []
    lines = []
    header = open(os.path.join(results_dir, "shop-sqlite.txt")).read().splitlines()
    for h in header:
        if h.startswith("# machine") or h.startswith("# cpu"):
            lines.append("- " + h[2:])
    lines += ["", "| Scenario | django-cart req/s | axum-cart req/s | ratio | django p50 / p99 ms | axum-cart p50 / p99 ms | CPU ms/req django / axum-cart |", "|---|---|---|---|---|---|---|"]
    for s, label in SCENARIOS:
        d, a = mean(django, s, "rps"), mean(shop, s, "rps")
        ratio = a / d if d == d and d else float("nan")
        lines.append("| %s | %s | %s | %s× | %s / %s | %s / %s | %s / %s |" % (
            label, fmt(d), fmt(a), fmt(ratio, 1),
            fmt(mean(django, s, "p50_ms"), 1), fmt(mean(django, s, "p99_ms"), 1),
            fmt(mean(shop, s, "p50_ms"), 2), fmt(mean(shop, s, "p99_ms"), 2),
            fmt(mean(django, s, "srv_cpu_ms_req"), 2), fmt(mean(shop, s, "srv_cpu_ms_req"), 3)))
    floor = mean(shop, "d_floor_get", "rps")
    lines += ["", "Cart page (10 lines) as a share of the same server's `/healthz`: %s%%." % fmt(100 * mean(shop, "a_cart10_get", "rps") / floor if floor else float("nan"), 1)]
    mem_d = sum(int(r.get("peak_kb", 0)) for r in rss(os.path.join(results_dir, "django.txt"))) if django else 0
    mem_a = sum(int(r.get("peak_kb", 0)) for r in rss(os.path.join(results_dir, "shop-sqlite.txt")))
    lines.append("Peak memory (VmHWM, summed over processes): django-cart %s MB, axum-cart %s MB." % (fmt(mem_d / 1024, 1), fmt(mem_a / 1024, 1)))
    for line in open(os.path.join(results_dir, "shop-sqlite.txt")):
        if line.startswith("ADDS "):
            lines.append("No lost adds: `%s`." % line.strip())
    if pg:
        lines += ["", "### The same load on PostgreSQL", "", "| Scenario | req/s | p50 ms | p99 ms | CPU ms/req |", "|---|---|---|---|---|"]
        for s, label in SCENARIOS:
            lines.append("| %s | %s | %s | %s | %s |" % (label, fmt(mean(pg, s, "rps")), fmt(mean(pg, s, "p50_ms"), 2), fmt(mean(pg, s, "p99_ms"), 2), fmt(mean(pg, s, "srv_cpu_ms_req"), 3)))
    growth = os.path.join(results_dir, "growth.txt")
    if os.path.exists(growth):
        lines += ["", "### How cost grows", "", "| Measure | Result |", "|---|---|"]
        for line in open(growth):
            if line.startswith("GROWTH "):
                lines.append("| %s | %s |" % tuple(line[7:].strip().split(" ", 1)))
            elif line.startswith("Successfully") or line.startswith("No carts"):
                lines.append("| clean output | %s |" % line.strip())
    svg_chart(django, shop, os.path.join(docs_dir, "benchmarks.svg"))
    table = "\n".join(lines)
    doc = os.path.join(docs_dir, "BENCHMARKS.md")
    text = open(doc).read() if os.path.exists(doc) else "<!-- bench:start -->\n<!-- bench:end -->\n"
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    before, rest = text.split(start, 1)
    _, after = rest.split(end, 1)
    with open(doc, "w") as f:
        f.write(before + start + "\n" + table + "\n" + end + after)


def main():
    cmd = sys.argv[1]
    if cmd == "wrk":
        r = parse_wrk(sys.stdin.read())
        print(" ".join("%s=%s" % kv for kv in r.items()))
    elif cmd == "lost-adds":
        lost_adds(sys.argv[2], sys.argv[3])
    elif cmd == "fill":
        fill(sys.argv[2], int(sys.argv[3]))
    elif cmd == "age":
        age(sys.argv[2])
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit("unknown command " + cmd)


if __name__ == "__main__":
    main()
