"""French display of dates, times and amounts, in the territory's zone."""

import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

NBSP = "\u00a0"
NARROW_NBSP = "\u202f"
UNITS = (("Ko", 1024), ("Mo", 1024**2), ("Go", 1024**3))
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


def number(value: int) -> str:
    """A count the French way: `1 234` (narrow no-break space between thousands)."""
    return f"{value:,}".replace(",", NARROW_NBSP)


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


def _french_digits(phone: str | None) -> str | None:
    """The ten digits of a French number (`0612345678`) however it was typed (spaces, dots, `+33`), else None."""
    compact = "".join(c for c in phone or "" if c not in " .-\u00a0")
    if compact.startswith("+33") and len(compact) == 12:
        compact = "0" + compact[3:]
    return compact if len(compact) == 10 and compact.isdigit() and compact.startswith("0") else None


def french_phone(phone: str | None) -> str:
    """`06 12 34 56 78`; a number that is not French is shown as typed."""
    digits = _french_digits(phone)
    if digits is None:
        return phone or ""
    return " ".join(digits[i : i + 2] for i in range(0, 10, 2))


def tel_uri(phone: str | None) -> str:
    """`tel:+33612345678` (RFC 3966, what a phone dials from a link); a number that is not French, as typed."""
    digits = _french_digits(phone)
    return f"tel:+33{digits[1:]}" if digits else "tel:" + "".join(c for c in phone or "" if c in "+0123456789")


def file_size(size: int | None) -> str:
    """`812 octets`, `22,5 Ko`, `1,2 Mo`: a file's size in French units (1 Ko = 1 024 octets), a comma for decimals."""
    if size is None:
        return "—"
    if size < 1024:
        return f"{size}{NBSP}octet{'s' if size > 1 else ''}"
    # The unit in which the rounded figure stays under 1 024 (1 048 575 octets read « 1,0 Mo », not « 1024,0 Ko »).
    unit, scale = next((u, s) for u, s in UNITS if round(size / s, 1) < 1024 or u == UNITS[-1][0])
    return f"{size / scale:.1f}".replace(".", ",") + NBSP + unit
