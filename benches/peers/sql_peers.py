"""SQL peers of the side-by-side benchmark: DuckDB, SQLite and PostgreSQL.

Run by the Rust harness (benches/peers/queries.rs and ingest.rs); prints one
JSON document on stdout, progress on stderr.

  sql_peers.py load SYSTEM --dir DIR --users CSV --events CSV [--pg-host H --pg-port P]
      Creates the system's tables from the exported CSV files, timing the
      events load with its (event, ts, user_id) index maintained: PostgreSQL
      COPY with synchronous_commit on, per 1000 rows and (bulk_seconds) all at
      once; SQLite WAL, synchronous=FULL, one transaction per 1000 rows;
      DuckDB CREATE TABLE AS read_csv (sorted by event, ts).
      Prints {"events": N, "seconds": S[, "bulk_seconds": B]}.

  sql_peers.py query SYSTEM --dir DIR --plan PLAN.json --runs N [--pg-host H --pg-port P]
      PLAN.json is [{"id", "sql", "ids"}]: "sql" selects the user ids of the
      answer. For each query: the sorted id list is fetched once and
      checksummed, then the count form (or, when "ids" is true, the id list)
      is timed: the first run on a fresh connection ("cold"), one untimed
      warm-up, N timed runs. Prints [{"id", "count", "checksum", "cold_ms",
      "warm_ms": [...]}].
"""

import argparse
import csv
import hashlib
import json
import os
import sqlite3
import struct
import sys
import time

BATCH_ROWS = 1000
COPY_CHUNK_BYTES = 1 << 20
DUCKDB_THREADS = 2

EVENT_COLUMNS = "user_id BIGINT, seq BIGINT, ts BIGINT, event TEXT, category TEXT, amount DOUBLE PRECISION, product_id TEXT, payment_mode TEXT"
USER_COLUMNS = (
    "user_id BIGINT PRIMARY KEY, city TEXT, country TEXT, platform TEXT, language TEXT, "
    "acquisition_source TEXT, signup TEXT, ltv DOUBLE PRECISION, age DOUBLE PRECISION, "
    "timezone TEXT, push_subscribed BOOLEAN, holdout DOUBLE PRECISION"
)


def log(message):
    print(f"sql_peers: {message}", file=sys.stderr, flush=True)


def checksum(ids):
    """SHA-256 of the sorted ids as little-endian u32, first 16 hex digits (as the Rust side)."""
    digest = hashlib.sha256()
    for user_id in sorted(ids):
        digest.update(struct.pack("<I", user_id))
    return digest.hexdigest()[:16]


# ---------------------------------------------------------------- connections


def connect(system, args):
    if system == "duckdb":
        import duckdb

        conn = duckdb.connect(os.path.join(args.dir, "duckdb.db"))
        conn.execute(f"SET threads={DUCKDB_THREADS}")
        return conn
    if system == "sqlite":
        conn = sqlite3.connect(os.path.join(args.dir, "sqlite.db"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA cache_size=-2000000")  # 2 GB page cache
        conn.execute("PRAGMA mmap_size=17179869184")
        return conn
    if system == "postgres":
        import psycopg

        conn = psycopg.connect(
            host=args.pg_host, port=args.pg_port, user="postgres", dbname="postgres", autocommit=True
        )
        conn.execute("SET max_parallel_workers_per_gather = 1")
        return conn
    raise SystemExit(f"unknown system {system!r}")


def fetch(conn, sql):
    return conn.execute(sql).fetchall()


# ---------------------------------------------------------------- loading


def load_duckdb(args):
    path = os.path.join(args.dir, "duckdb.db")
    if os.path.exists(path):
        os.remove(path)
    conn = connect("duckdb", args)
    types = "{'user_id':'UINTEGER','seq':'UBIGINT','ts':'BIGINT','event':'VARCHAR','category':'VARCHAR','amount':'DOUBLE','product_id':'VARCHAR','payment_mode':'VARCHAR'}"
    conn.execute(
        "CREATE TABLE users AS SELECT * FROM read_csv(?, header=true, columns={"
        "'user_id':'UINTEGER','city':'VARCHAR','country':'VARCHAR','platform':'VARCHAR',"
        "'language':'VARCHAR','acquisition_source':'VARCHAR','signup':'VARCHAR','ltv':'DOUBLE',"
        "'age':'DOUBLE','timezone':'VARCHAR','push_subscribed':'BOOLEAN','holdout':'DOUBLE'})",
        [args.users],
    )
    started = time.perf_counter()
    conn.execute(
        f"CREATE TABLE events AS SELECT * FROM read_csv(?, header=true, columns={types}) ORDER BY event, ts",
        [args.events],
    )
    conn.execute("CHECKPOINT")
    seconds = time.perf_counter() - started
    rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    return rows, seconds, {}


def load_sqlite(args):
    path = os.path.join(args.dir, "sqlite.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    conn = connect("sqlite", args)
    conn.execute(f"CREATE TABLE users ({USER_COLUMNS.replace('BOOLEAN', 'INTEGER')})")
    conn.execute(f"CREATE TABLE events ({EVENT_COLUMNS.replace('DOUBLE PRECISION', 'REAL')})")
    conn.execute("CREATE INDEX events_event_ts_user ON events (event, ts, user_id)")
    with open(args.users, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO users VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            ([*r[:10], 1 if r[10] == "true" else 0, r[11]] for r in reader),
        )
        conn.execute("COMMIT")
    rows = 0
    started = time.perf_counter()
    with open(args.events, newline="") as f:
        reader = csv.reader(f)
        next(reader)
        batch = []
        for r in reader:
            # INTEGER and REAL column affinity converts the numeric text.
            batch.append((r[0], r[1], r[2], r[3], r[4] or None, r[5] or None, r[6] or None, r[7] or None))
            if len(batch) == BATCH_ROWS:
                conn.execute("BEGIN")
                conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", batch)
                conn.execute("COMMIT")
                rows += len(batch)
                batch = []
        if batch:
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?)", batch)
            conn.execute("COMMIT")
            rows += len(batch)
    seconds = time.perf_counter() - started
    conn.execute("ANALYZE")
    conn.close()
    return rows, seconds, {}


def load_postgres(args):
    """Times two loads: COPY in 1000-row transactions (each committed, the same
    acknowledgement contract as Nudge's batches) into `events`, which the queries
    use, and one COPY of the whole file into a scratch table (bulk load)."""
    conn = connect("postgres", args)
    for table in ("events", "events_bulk", "users"):
        conn.execute(f"DROP TABLE IF EXISTS {table}")
    conn.execute(f"CREATE TABLE users ({USER_COLUMNS})")
    copy_file(conn, "users", args.users)
    timings = {}
    # The bulk table goes first and is dropped before the batched load, to bound the disk used.
    for table, batched in (("events_bulk", False), ("events", True)):
        conn.execute(f"CREATE TABLE {table} ({EVENT_COLUMNS})")
        conn.execute(f"CREATE INDEX {table}_event_ts_user ON {table} (event, ts, user_id)")
        started = time.perf_counter()
        if batched:
            copy_batches(conn, table, args.events)
        else:
            copy_file(conn, table, args.events)
        timings[table] = time.perf_counter() - started
        log(f"postgres: {'batched' if batched else 'bulk'} COPY took {timings[table]:.1f} s")
        if not batched:
            conn.execute(f"DROP TABLE {table}")
            conn.execute("CHECKPOINT")
    conn.execute("VACUUM ANALYZE events")
    conn.execute("VACUUM ANALYZE users")
    rows = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    return rows, timings["events"], {"bulk_seconds": timings["events_bulk"]}


def copy_file(conn, table, path):
    # One COPY in one transaction (autocommit commits it, synchronous_commit=on).
    with conn.cursor() as cur:
        with cur.copy(f"COPY {table} FROM STDIN (FORMAT csv, HEADER true)") as copy:
            with open(path, "rb") as f:
                while chunk := f.read(COPY_CHUNK_BYTES):
                    copy.write(chunk)


def copy_batches(conn, table, path):
    # One COPY per 1000 rows, each its own committed transaction.
    with conn.cursor() as cur, open(path, "rb") as f:
        f.readline()
        while True:
            lines = [line for line in (f.readline() for _ in range(BATCH_ROWS)) if line]
            if not lines:
                break
            with cur.copy(f"COPY {table} FROM STDIN (FORMAT csv)") as copy:
                copy.write(b"".join(lines))


# ---------------------------------------------------------------- queries


def run_queries(system, args):
    with open(args.plan) as f:
        plan = json.load(f)
    results = []
    for query in plan:
        sql = query["sql"]
        timed = sql if query["ids"] else f"SELECT count(*) FROM ({sql}) AS answer"
        conn = connect(system, args)
        started = time.perf_counter()
        first = fetch(conn, timed)
        cold_ms = (time.perf_counter() - started) * 1000
        ids = [row[0] for row in fetch(conn, sql)]
        count = len(ids) if query["ids"] else first[0][0]
        if len(ids) != count or len(set(ids)) != len(ids):
            raise SystemExit(f"{system} {query['id']}: {len(ids)} ids listed, count says {count}")
        fetch(conn, timed)  # warm-up
        warm = []
        for _ in range(args.runs):
            started = time.perf_counter()
            fetch(conn, timed)
            warm.append((time.perf_counter() - started) * 1000)
        conn.close()
        log(f"{system} {query['id']}: {count} users, cold {cold_ms:.1f} ms, warm median {sorted(warm)[len(warm) // 2]:.1f} ms")
        results.append({"id": query["id"], "count": count, "checksum": checksum(ids), "cold_ms": cold_ms, "warm_ms": warm})
    return results


def versions():
    import duckdb
    import psycopg

    return {"duckdb": duckdb.__version__, "sqlite": sqlite3.sqlite_version, "psycopg": psycopg.__version__,
            "python": sys.version.split()[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["load", "query", "versions"])
    parser.add_argument("system", nargs="?", choices=["duckdb", "sqlite", "postgres"])
    parser.add_argument("--dir")
    parser.add_argument("--users")
    parser.add_argument("--events")
    parser.add_argument("--plan")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--pg-host")
    parser.add_argument("--pg-port", type=int)
    args = parser.parse_args()
    if args.command == "versions":
        out = versions()
    elif args.command == "load":
        loader = {"duckdb": load_duckdb, "sqlite": load_sqlite, "postgres": load_postgres}[args.system]
        rows, seconds, extra = loader(args)
        log(f"{args.system}: loaded {rows} events in {seconds:.1f} s")
        out = {"events": rows, "seconds": seconds, **extra}
    else:
        out = run_queries(args.system, args)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
