"""What a usage row costs the gateway: the store's batched insert (one driver-level executemany per
batch) beside the SQLAlchemy Core insert it replaced, per database, in one run.

The gateway writes one usage row per request from the same process (and, on SQLite, the same core)
that serves requests, so the CPU time of a row is taken from the request rate. Reported per row:
CPU time of this process (all threads: aiosqlite works in one of its own) and wall time.

    .venv/bin/python benchmarks/usage_writes.py [--rows 20000] [--batch 2000] [--backends sqlite,postgresql,mariadb]

PostgreSQL and MariaDB are the local services (SERVERS below): a scratch database is created on each
and dropped at the end; a backend that cannot be reached is reported and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from flotilla.store import Store, UsageRecord
from flotilla.store.usage_ops import insert_many, usage_row

# Servers to create a scratch database on (dropped at the end).
SERVERS = {
    "postgresql": "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres",
    "mariadb": "mysql+aiomysql://root@127.0.0.1:3306/test",
}
_ids = itertools.count()


def records(n: int) -> list[UsageRecord]:
    return [
        UsageRecord(
            request_id=f"bench-{next(_ids):012d}", token_name="students", model="chat", replica="chat-0",
            status_code=200, outcome="ok", stream=bool(i % 2), prompt_tokens=120, completion_tokens=16,
            queue_wait_ms=0.4, ttft_ms=12.5, duration_ms=31.25,
        )
        for i in range(n)
    ]


async def core_insert_many(conn, batch: Sequence[UsageRecord]) -> None:
    """The previous implementation, kept here as the reference: a Core INSERT with ON CONFLICT,
    each value through its column type's bind processing."""
    from sqlalchemy.dialects import mysql, postgresql, sqlite

    from flotilla.store.schema import usage

    dialect = conn.dialect.name
    if dialect == "postgresql":
        statement = postgresql.insert(usage).on_conflict_do_nothing(index_elements=["request_id"])
    elif dialect == "sqlite":
        statement = sqlite.insert(usage).on_conflict_do_nothing(index_elements=["request_id"])
    else:
        statement = mysql.insert(usage)
        statement = statement.on_duplicate_key_update(request_id=statement.inserted.request_id)
    await conn.execute(statement, [usage_row(r) for r in batch])


async def measure(store: Store, write: Callable[..., Awaitable[None]], rows: int, batch: int) -> dict:
    data = records(rows)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for start in range(0, rows, batch):
        async with store.engine.begin() as conn:
            await write(conn, data[start : start + batch])
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"cpu_us_per_row": cpu / rows * 1e6, "wall_us_per_row": wall / rows * 1e6}


async def scratch_database(server: str, name: str, create: bool) -> str:
    engine = create_async_engine(server, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.exec_driver_sql(f"{'CREATE' if create else 'DROP'} DATABASE {name}")
    finally:
        await engine.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


async def run_backend(name: str, tmp: Path, rows: int, batch: int, rounds: int) -> dict | None:
    scratch = f"flotilla_usage_bench_{os.getpid()}"
    try:
        url = f"sqlite:///{tmp}/usage.db" if name == "sqlite" else await scratch_database(SERVERS[name], scratch, True)
        store = await Store.open(url)
    except Exception as exc:  # noqa: BLE001 - a backend that is not running is skipped, with the reason
        print(f"{name}: skipped ({type(exc).__name__}: {exc})")
        return None
    try:
        await measure(store, insert_many, batch, batch)  # warm up: connections, statement caches
        results: dict[str, list[dict]] = {"core (before)": [], "driver executemany (after)": []}
        for _ in range(rounds):  # alternate, so a noisy moment hits both alike
            results["core (before)"].append(await measure(store, core_insert_many, rows, batch))
            results["driver executemany (after)"].append(await measure(store, insert_many, rows, batch))
        return {
            way: {key: min(r[key] for r in runs) for key in runs[0]} for way, runs in results.items()
        }
    finally:
        await store.close()
        if name != "sqlite":
            await scratch_database(SERVERS[name], scratch, False)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=20000, help="rows per measurement")
    parser.add_argument("--batch", type=int, default=2000, help="rows per transaction (the recorder's batch)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the best of each is shown")
    parser.add_argument("--backends", default="sqlite,postgresql,mariadb")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flotilla-usage-bench-"))
    print(f"usage rows: {args.rows} per measurement in batches of {args.batch}, best of {args.rounds}")
    print(f"{'backend':12}{'way':30}{'CPU us/row':>12}{'wall us/row':>13}")
    for name in args.backends.split(","):
        result = await run_backend(name, tmp, args.rows, args.batch, args.rounds)
        for way, figures in (result or {}).items():
            print(f"{name:12}{way:30}{figures['cpu_us_per_row']:12.1f}{figures['wall_us_per_row']:13.1f}")


if __name__ == "__main__":
    import uvloop

    uvloop.run(main())
