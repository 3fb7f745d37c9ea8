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
