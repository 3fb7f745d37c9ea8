"""Tokens and spec shared by the gateway tests."""

STAFF = "staff-secret-0001"
STUDENTS = "students-secret-0001"
PEERS = ("peer-a-secret-0001", "peer-b-secret-0001")


def spec_for(model_opts: dict | None = None, **gateway_opts) -> dict:
    return {
        "models": [{"name": "chat", "engine": "sim", "maxConcurrency": 4, **(model_opts or {})}],
        "gateway": {
            "tokens": [
                {"name": "staff", "token": STAFF, "priority": 10, "threshold": 50},
                {"name": "students", "token": STUDENTS, "priority": 1, "threshold": 50},
                {"name": "peer-a", "token": PEERS[0], "priority": 5, "threshold": 50},
                {"name": "peer-b", "token": PEERS[1], "priority": 5, "threshold": 50},
            ],
            "authRefreshS": 0.5,
            "usageFlushS": 0.2,
            **gateway_opts,
        },
    }


def usage_rows(db, group_by=("token_name", "model"), at_least=1, timeout=10.0) -> list[dict]:
    """Usage summary rows from a gateway's SQLite store, once `at_least` requests are written."""
    import asyncio
    import time

    from flotilla.store import Store

    async def summary():
        store = await Store.open(f"sqlite:///{db}", migrate=False)
        try:
            return await store.usage_summary(group_by=group_by)
        finally:
            await store.close()

    deadline = time.monotonic() + timeout
    while True:
        rows = asyncio.run(summary())
        if sum(r["requests"] for r in rows) >= at_least or time.monotonic() > deadline:
            return rows
        time.sleep(0.2)
