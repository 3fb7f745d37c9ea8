"""Report boundaries as the CLI accepts them: ISO 8601 times or ages such as 30m, 1h, 7d, 2w."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_point_in_time(text: str, now: datetime | None = None) -> datetime:
    """'1h' means one hour before `now`; an ISO time without a zone is taken as UTC."""
    value = text.strip()
    age = _AGE.match(value.lower())
    if age:
        seconds = float(age.group(1)) * _UNIT_SECONDS[age.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{text!r} is neither an age (30m, 1h, 7d, 2w) nor an ISO time (2025-01-31 or 2025-01-31T12:00:00Z)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
