"""French display of dates, times and amounts, in the territory's zone."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

NBSP = "\u00a0"
NARROW_NBSP = "\u202f"
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip


def french_date(value: dt.date) -> str:
    """`7 décembre 2026`; a birth date reads best without the weekday."""
    if value is None:
        return ""
    day = "1er" if value.day == 1 else str(value.day)
    return f"{day} {MONTHS[value.month - 1]} {value.year}"


def french_datetime(value: dt.datetime, zone: str) -> str:
    """`lundi 7 décembre 2026, 14 h 00` in the territory's wall time."""
    if value is None:
        return ""
    local = value.astimezone(ZoneInfo(zone))
    return f"{DAYS[local.weekday()]} {french_date(local.date())}, {local.hour} h {local.minute:02d}"


def percent(share: Decimal | None, *, places: int = 1) -> str:
    """`18,6 %` (`20 %` with places=0), a no-break space before the sign; `—` when unknown."""
    if share is None:
        return "—"
    return f"{(share * 100).quantize(Decimal(1).scaleb(-places))}".replace(".", ",") + NBSP + "%"


def euros(amount: Decimal | int | float) -> str:
    """`1 234,50 €` (narrow no-break space for thousands, comma for decimals)."""
    quantised = Decimal(amount).quantize(Decimal("0.01"))
    whole, _, cents = f"{quantised:,.2f}".partition(".")
    return whole.replace(",", NARROW_NBSP) + "," + cents + NBSP + "€"


def figure(value: Decimal | float | int | str | None) -> str:
    """An indicator's figure the French way: `33,3`, an amount `510,00`; `—` when there is nothing to measure."""
    if value is None:
        return "—"
    if isinstance(value, Decimal):
        return f"{value:.2f}".replace(".", ",")
    return str(value).replace(".", ",") if isinstance(value, float) else str(value)


def waiting_since(delta: dt.timedelta) -> str:
    """`depuis 25 min`, `depuis 3 h`, `depuis 4 jours`: how long something has waited, in hours up to two days."""
    minutes = max(int(delta.total_seconds() // 60), 0)
    if minutes < 1:
        return "depuis moins d'une minute"
    if minutes < 60:
        return f"depuis {minutes} min"
    if minutes < 48 * 60:
        return f"depuis {minutes // 60} h"
    return f"depuis {minutes // (24 * 60)} jours"
