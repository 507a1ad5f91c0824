#!/usr/bin/env python3
"""bench/bigdb.py — generate a large PostgreSQL database for the snapshot benchmarks.

Shared by bench/snapshot_bench.py and bench/restore_bench.py (bench/snapshot.sh and
bench/restore.sh); usable alone to build or drop the database:

    python3 bench/bigdb.py create [--size-mb 1024] [--db dbsafe_bench_big] [--pg-url URL]
    python3 bench/bigdb.py drop   [--db dbsafe_bench_big] [--pg-url URL]

The database is a small shop: five tables with integer, bigint, numeric, double, boolean,
date, timestamptz, text, text[] and jsonb columns, primary keys, unique and secondary
indexes, and foreign keys. Every value is computed server-side from generate_series and
hash functions (deterministic: the same size gives the same data), the tables are filled
two at a time on two connections, the indexes and foreign keys are added after the data,
then VACUUM (FREEZE, ANALYZE) and a CHECKPOINT leave nothing for the first reader to
write (hint bits, visibility map), so every timed run sees the same quiet database.

--size-mb is the target size of the table data (heap, without indexes and TOAST); the row
counts are scaled from measured row widths. Only the Python standard library and psql are
used.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_DB = "dbsafe_bench_big"
DEFAULT_PG_URL = (
    os.environ.get("DBSAFE_BENCH_PG_URL")
    or os.environ.get("DBSAFE_TEST_PG_URL")
    or "postgres://postgres@127.0.0.1:5432/postgres"
)


class BenchError(Exception):
    pass


def masked(url: str) -> str:
    u = urlsplit(url)
    if u.password is None:
        return url
    return urlunsplit(u._replace(netloc=u.netloc.replace(f":{u.password}@", ":***@", 1)))


def with_database(url: str, db: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{db}"))


def psql(url: str, sql: str, *, check: bool = True) -> str:
    """Runs SQL (several statements allowed) with psql; returns its unaligned output."""
    r = subprocess.run(
        ["psql", "-X", "-w", "-v", "ON_ERROR_STOP=1", "-Atq", "-d", url],
        input=sql,
        capture_output=True,
        text=True,
    )
    if check and r.returncode != 0:
        short = sql.strip().splitlines()[0][:120] if sql.strip() else sql
        raise BenchError(f"psql failed on {short!r}: {r.stderr.strip()}")
    return r.stdout.strip()


def drop_db(admin_url: str, db: str) -> None:
    psql(admin_url, f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


@dataclass
class Timed:
    """A finished command: wall seconds, peak RSS in KiB (of the largest process of the
    command's tree, as wait4 reports it; not a sum), its output."""

    secs: float
    maxrss_kib: int
    stdout: str


# GNU time measures the peak RSS without the gotcha of measuring a child of this process
# directly: Linux starts a child's peak at its parent's (Python's ~15 MiB) and keeps it
# across exec. time itself is ~2 MiB, below anything measured here.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run_timed(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Timed:
    """Runs a command under a wall clock and measures its peak RSS (GNU time when present,
    else os.wait4). Raises BenchError (with the end of stderr) on a non-zero exit."""
    rss_file = None
    full = list(cmd)
    if GNU_TIME:
        fd, rss_file = tempfile.mkstemp(prefix="dbsafe-bench-rss-")
        os.close(fd)
        full = [GNU_TIME, "-f", "%M", "-o", rss_file, *cmd]
    start = time.perf_counter()
    p = subprocess.Popen(full, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = _communicate(p)
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    maxrss = usage.ru_maxrss
    if rss_file:
        text = Path(rss_file).read_text().strip().splitlines()
        os.unlink(rss_file)
        if text and text[-1].isdigit():
            maxrss = int(text[-1])
    if p.returncode != 0:
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise BenchError(f"`{' '.join(cmd)}` exited with {p.returncode}:\n{tail}")
    return Timed(secs, maxrss, out)


def _communicate(p: subprocess.Popen) -> tuple[str, str]:
    """Reads stdout and stderr to the end without reaping the process (wait4 does that)."""
    chunks: dict[str, list[str]] = {"out": [], "err": []}

    def pump(stream, key):
        for block in iter(lambda: stream.read(65536), ""):
            chunks[key].append(block)

    threads = [threading.Thread(target=pump, args=(p.stdout, "out")),
               threading.Thread(target=pump, args=(p.stderr, "err"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return "".join(chunks["out"]), "".join(chunks["err"])


def median(values: list[float]) -> float:
    return statistics.median(values)


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def on_signals_exit() -> None:
    """SIGTERM and SIGINT become SystemExit, so `finally` blocks drop the databases."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    signal.signal(signal.SIGINT, lambda *_: sys.exit(130))


def parallelism() -> int:
    """The pg_restore --jobs dbsafe uses: the CPUs this process may run on, 2 to 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:
        n = os.cpu_count() or 2
    return max(2, min(8, n))


# ---------------------------------------------------------------------------------------
# The schema and the data.

# Heap bytes per row (measured on PostgreSQL 15 with this generator), and each table's
# share of the total: the row counts follow from --size-mb.
ROW_BYTES = {
    "customers": 150,
    "products": 316,
    "orders": 117,
    "order_items": 60,
    "events": 168,
}
SHARE = {
    "customers": 0.08,
    "products": 0.02,
    "orders": 0.30,
    "order_items": 0.35,
    "events": 0.25,
}

SCHEMA = """
SET client_min_messages = warning;
CREATE TABLE customers (
    id          bigint PRIMARY KEY,
    email       text NOT NULL,
    name        text NOT NULL,
    country     char(2) NOT NULL,
    created_at  timestamptz NOT NULL,
    balance     numeric(12, 2) NOT NULL,
    active      boolean NOT NULL,
    notes       text
);
CREATE TABLE products (
    id          integer PRIMARY KEY,
    sku         varchar(32) NOT NULL,
    title       text NOT NULL,
    description text NOT NULL,
    price       numeric(10, 2) NOT NULL,
    weight_kg   double precision NOT NULL,
    tags        text[] NOT NULL,
    released_on date NOT NULL
);
CREATE TABLE orders (
    id          bigint PRIMARY KEY,
    customer_id bigint NOT NULL,
    status      text NOT NULL,
    placed_at   timestamptz NOT NULL,
    total       numeric(12, 2) NOT NULL,
    ship_to     text NOT NULL,
    note        text
);
CREATE TABLE order_items (
    order_id    bigint NOT NULL,
    line        smallint NOT NULL,
    product_id  integer NOT NULL,
    quantity    integer NOT NULL,
    unit_price  numeric(10, 2) NOT NULL,
    discount    numeric(4, 2) NOT NULL
);
CREATE TABLE events (
    id          bigint NOT NULL,
    occurred_at timestamptz NOT NULL,
    kind        text NOT NULL,
    customer_id bigint,
    payload     jsonb NOT NULL
);
CREATE FUNCTION bench_word(k bigint) RETURNS text IMMUTABLE PARALLEL SAFE LANGUAGE sql AS $$
  SELECT (ARRAY['alpha','bravo','charlie','delta','echo','foxtrot','golf','hotel','india',
    'juliet','kilo','lima','mike','november','oscar','papa','quebec','romeo','sierra',
    'tango','uniform','victor','whiskey','xray','yankee','zulu','amber','basalt','cedar',
    'dune','ember','fjord'])[1 + (hashint8(k) & 31)]
$$;
"""


def fill_sql(table: str, n: int, n_customers: int, n_products: int, n_orders: int) -> str:
    """INSERT ... SELECT over generate_series(1, n) for one table."""
    h = "abs(hashint8(g))"  # a deterministic pseudo-random int per row
    if table == "customers":
        return f"""
INSERT INTO customers
SELECT g,
       'user' || g || '@' || bench_word(g) || '.example.com',
       initcap(bench_word(g * 3)) || ' ' || initcap(bench_word(g * 5)) || ' ' || md5(g::text),
       (ARRAY['DE','FR','US','GB','ES','IT','NL','SE','PL','JP'])[1 + {h} % 10],
       timestamptz '2020-01-01 00:00:00+00' + make_interval(secs => {h} % 150000000),
       round(({h} % 10000000) / 100.0, 2),
       {h} % 10 <> 0,
       CASE WHEN {h} % 4 = 0 THEN 'prefers ' || bench_word(g * 7) || ' delivery, '
            || bench_word(g * 11) || ' ' || bench_word(g * 13) END
FROM generate_series(1, {n}) g"""
    if table == "products":
        return f"""
INSERT INTO products
SELECT g,
       'SKU-' || lpad(g::text, 8, '0'),
       initcap(bench_word(g)) || ' ' || bench_word(g * 17) || ' ' || g,
       repeat(bench_word(g * 19) || ' ' || bench_word(g * 23) || ' ', 8) || md5(g::text)
           || ' ' || md5((g * 2)::text),
       round(({h} % 100000) / 100.0 + 1, 2),
       ({h} % 50000) / 1000.0,
       ARRAY[bench_word(g * 29), bench_word(g * 31), bench_word(g * 37)],
       date '2015-01-01' + ({h} % 3000)::int
FROM generate_series(1, {n}) g"""
    if table == "orders":
        return f"""
INSERT INTO orders
SELECT g,
       1 + {h} % {n_customers},
       (ARRAY['new','paid','packed','shipped','delivered','returned','cancelled'])[1 + {h} % 7],
       timestamptz '2021-01-01 00:00:00+00' + make_interval(secs => {h} % 120000000),
       round(({h} % 5000000) / 100.0, 2),
       g % 997 || ' ' || initcap(bench_word(g * 41)) || ' Street, ' || (10000 + {h} % 89999)
           || ' ' || initcap(bench_word(g * 43)) || 'ville',
       CASE WHEN {h} % 5 = 0 THEN 'leave at the ' || bench_word(g * 47) || ' door' END
FROM generate_series(1, {n}) g"""
    if table == "order_items":
        return f"""
INSERT INTO order_items
SELECT 1 + (g - 1) / 4,
       1 + (g - 1) % 4,
       1 + {h} % {n_products},
       1 + {h} % 9,
       round(({h} % 50000) / 100.0 + 1, 2),
       ({h} % 30) / 100.0
FROM generate_series(1, {n}) g"""
    if table == "events":
        return f"""
INSERT INTO events
SELECT g,
       timestamptz '2023-01-01 00:00:00+00' + make_interval(secs => g * 0.5),
       (ARRAY['login','view','cart','checkout','logout','search'])[1 + {h} % 6],
       CASE WHEN {h} % 8 <> 0 THEN 1 + {h} % {n_customers} END,
       jsonb_build_object('ip', '10.' || {h} % 256 || '.' || g % 256 || '.' || g % 253,
                          'agent', bench_word(g * 53) || '/' || ({h} % 100),
                          'path', '/' || bench_word(g * 59) || '/' || bench_word(g * 61),
                          'ms', {h} % 5000, 'ok', {h} % 13 <> 0)
FROM generate_series(1, {n}) g"""
    raise ValueError(table)


# Indexes and constraints, in two groups run on two connections.
AFTER = [
    [
        "ALTER TABLE order_items ADD PRIMARY KEY (order_id, line)",
        "CREATE INDEX order_items_product_idx ON order_items (product_id)",
        "CREATE UNIQUE INDEX products_sku_key ON products (sku)",
        "ALTER TABLE events ADD PRIMARY KEY (id)",
    ],
    [
        "CREATE UNIQUE INDEX customers_email_key ON customers (email)",
        "CREATE INDEX orders_customer_idx ON orders (customer_id)",
        "CREATE INDEX orders_placed_at_idx ON orders (placed_at)",
        "CREATE INDEX events_occurred_at_idx ON events (occurred_at)",
    ],
]
FOREIGN_KEYS = """
ALTER TABLE orders ADD CONSTRAINT orders_customer_fk FOREIGN KEY (customer_id) REFERENCES customers (id);
ALTER TABLE order_items ADD CONSTRAINT order_items_order_fk FOREIGN KEY (order_id) REFERENCES orders (id);
ALTER TABLE order_items ADD CONSTRAINT order_items_product_fk FOREIGN KEY (product_id) REFERENCES products (id);
"""


def row_counts(size_mb: float) -> dict[str, int]:
    total = size_mb * 1024 * 1024
    return {t: max(100, int(total * SHARE[t] / ROW_BYTES[t])) for t in ROW_BYTES}


def in_parallel(jobs: list[list[str]], url: str) -> None:
    """Runs each list of statements on its own connection, the lists at the same time."""
    errors: list[BaseException] = []

    def run(statements: list[str]) -> None:
        try:
            psql(url, "SET synchronous_commit = off;\n" + ";\n".join(statements) + ";")
        except BaseException as e:  # noqa: BLE001 - reported by the caller
            errors.append(e)

    threads = [threading.Thread(target=run, args=(j,)) for j in jobs if j]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise BenchError(str(errors[0]))


def create(admin_url: str, db: str, size_mb: float, log=print) -> str:
    """Creates database `db` (dropping any old one) with about `size_mb` MB of table data;
    returns its URL."""
    n = row_counts(size_mb)
    url = with_database(admin_url, db)
    started = time.perf_counter()
    drop_db(admin_url, db)
    psql(admin_url, f'CREATE DATABASE "{db}"')
    psql(url, SCHEMA)
    fill = {t: fill_sql(t, n[t], n["customers"], n["products"], n["orders"]) for t in n}
    log(f"bigdb: filling {db}: " + ", ".join(f"{t} {n[t]:,}" for t in n))
    # Two connections, balanced by size.
    in_parallel(
        [[fill["orders"], fill["customers"]], [fill["order_items"], fill["events"], fill["products"]]],
        url,
    )
    log("bigdb: indexes and foreign keys")
    in_parallel(AFTER, url)
    psql(url, FOREIGN_KEYS)
    log("bigdb: VACUUM (FREEZE, ANALYZE), CHECKPOINT")
    psql(url, "VACUUM (FREEZE, ANALYZE); CHECKPOINT;")
    heap, total = sizes(url)
    log(
        f"bigdb: {db} ready in {time.perf_counter() - started:.0f}s: table data {heap / 2**20:.0f} MB, "
        f"with indexes {total / 2**20:.0f} MB"
    )
    return url


def sizes(url: str) -> tuple[int, int]:
    """(heap bytes, total bytes with indexes and TOAST) of the user tables."""
    out = psql(
        url,
        "SELECT sum(pg_relation_size(c.oid)), sum(pg_total_relation_size(c.oid)) "
        "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname = 'public'",
    )
    heap, total = out.split("|")
    return int(heap), int(total)


def tables(url: str) -> list[str]:
    out = psql(
        url,
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE c.relkind = 'r' AND n.nspname = 'public' AND c.relname NOT LIKE 'dbsafe\\_%' "
        "AND c.relname <> '__diesel_schema_migrations' ORDER BY 1",
    )
    return out.split()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("action", choices=["create", "drop", "sizes"])
    p.add_argument("--db", default=DEFAULT_DB, help=f"database name ({DEFAULT_DB})")
    p.add_argument("--size-mb", type=float, default=1024, help="table data in MB (1024)")
    p.add_argument("--pg-url", default=DEFAULT_PG_URL, help="server URL (its database is only "
                   "used for CREATE/DROP DATABASE)")
    a = p.parse_args()
    try:
        if a.action == "create":
            create(a.pg_url, a.db, a.size_mb)
        elif a.action == "drop":
            drop_db(a.pg_url, a.db)
        else:
            heap, total = sizes(with_database(a.pg_url, a.db))
            print(f"table data {heap / 2**20:.0f} MB, with indexes {total / 2**20:.0f} MB")
    except BenchError as e:
        print(f"bigdb: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
