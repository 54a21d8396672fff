"""Recurrence of session programs: an RRULE expanded in the territory's wall time, minus its exceptions.

Pure functions (no Flask, no database). The rule is expanded by dateutil on naive local wall times, then each
wall time is placed on the time line with zoneinfo, so a Monday 14:00 program stays at 14:00 across DST changes.
Everything that decides whether an occurrence exists (UNTIL, EXDATE, windows) is compared as UTC instants.
"""

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import holidays
from dateutil.rrule import rrulebase, rrulestr

UTC = dt.UTC

DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
WEEKDAY_CODES = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")

_FREQUENCIES = ("DAILY", "WEEKLY", "MONTHLY", "YEARLY")
_SUB_DAILY = ("HOURLY", "MINUTELY", "SECONDLY")
_SUPPORTED_PARTS = frozenset({
    "FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST",
    "BYDAY", "BYMONTHDAY", "BYMONTH", "BYSETPOS", "BYHOUR", "BYMINUTE", "BYSECOND",
})  # fmt: skip
_UNSUPPORTED_PARTS = frozenset({"BYYEARDAY", "BYWEEKNO"})
_INTEGER_RANGES = {
    "BYMONTH": (1, 12, False),
    "BYMONTHDAY": (1, 31, True),
    "BYSETPOS": (1, 366, True),
    "BYHOUR": (0, 23, False),
    "BYMINUTE": (0, 59, False),
    "BYSECOND": (0, 59, False),
}
_BYDAY_ITEM = re.compile(r"^(?P<ordinal>[+-]?\d{1,2})?(?P<day>MO|TU|WE|TH|FR|SA|SU)$")
_UNTIL_VALUE = re.compile(r"^(?P<date>\d{8})(?:T(?P<time>\d{6})(?P<utc>Z)?)?$")
_ONCE_A_DAY = "Une séance ne peut pas se répéter plus d'une fois par jour."
# A rule that can never match makes dateutil loop up to year 9999 before giving up. The Gregorian calendar repeats
# every 400 years, so probing the rule from the same start moved to the last centuries proves in bounded time
# whether the start is its first occurrence, at most ~800 years of dateutil iterations, for garbage rules only.
_CALENDAR_CYCLE_YEARS = 400
_MAX_INTERVAL = 999
_MAX_COUNT = 99_999
_UNTIL_YEARS = (1900, 2999)
_LEAP_YEAR_MONTH_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_NEXT_OCCURRENCES_HORIZON = dt.timedelta(days=10 * 366)
_PARSE_PROBE_START = dt.datetime(2026, 1, 5, 14, 0)  # noqa: DTZ001 -- a naive wall time, as dateutil expands them


class InvalidRecurrence(ValueError):
    """A recurrence rule, start or exception list that cannot describe a session program (French message)."""


class NonExistentLocalTime(ValueError):
    """A wall time that the zone skips (spring-forward gap), refused where the caller asked to be strict."""


@dataclass(frozen=True)
class Recurrence:
    """A session program's recurrence: an RRULE from a naive local DTSTART in `zone`, and its exceptions.

    Construction checks the rule (see `parse_rrule`, which normalises `rrule`), the zone, the closed periods,
    and that `start` is the rule's first occurrence (RFC 5545 leaves an unsynchronised DTSTART undefined).
    """

    rrule: str
    start: dt.datetime
    zone: str
    exdates: tuple[dt.datetime, ...] = ()
    skip_public_holidays: bool = True
    closed_periods: tuple[tuple[dt.date, dt.date], ...] = ()

    def __post_init__(self) -> None:
        if self.start.tzinfo is not None:
            raise InvalidRecurrence("Le début d'une récurrence est une heure locale, sans fuseau horaire.")
        if self.start.microsecond:
            raise InvalidRecurrence("Le début d'une récurrence se donne à la seconde près.")
        _zone(self.zone)
        object.__setattr__(self, "rrule", parse_rrule(self.rrule))
        object.__setattr__(self, "start", self.start.replace(fold=0))
        object.__setattr__(self, "exdates", tuple(self.exdates))
        object.__setattr__(self, "closed_periods", tuple((first, last) for first, last in self.closed_periods))
        for first, last in self.closed_periods:
            if first > last:
                raise InvalidRecurrence(
                    f"Période de fermeture invalide : le {_french_date(first)} est après le {_french_date(last)}."
                )
        _check_synchronised(self.rrule, self.start)


@dataclass(frozen=True)
class Occurrence:
    """One occurrence: `local_start` is the wall time the rule produced, `start` the UTC instant it means.

    `adjusted` is True when the wall time did not exist (DST gap) and `start` was moved forward by the gap.
    """

    local_start: dt.datetime
    start: dt.datetime
    adjusted: bool = False


class _Compiled(NamedTuple):
    rule: rrulebase  # an rrule: rrulestr gives a set only for several rules or exceptions
    until_at: dt.datetime | None


# Validation


def parse_rrule(text: str) -> str:
    """Check an RRULE value (an optional "RRULE:" prefix is dropped) and return it normalised (upper case).

    Refused with `InvalidRecurrence`: garbage, unknown or unsupported parts (BYYEARDAY, BYWEEKNO), frequencies
    finer than a day (also several BYHOUR/BYMINUTE/BYSECOND values), UNTIL together with COUNT, values out of range
    and BYDAY ordinals where RFC 5545 forbids them (DAILY, WEEKLY).
    """
    value = text.strip().upper().removeprefix("RRULE:")
    parts = _split(value)
    _check_parts(parts)
    try:
        rrulestr(_dateutil_rule(parts), dtstart=_PARSE_PROBE_START)
    except (ValueError, TypeError) as error:  # pragma: no cover -- the checks above should leave dateutil nothing
        raise _invalid(f"« {text.strip()} »") from error
    return _join_parts(parts)


def _invalid(detail: str) -> InvalidRecurrence:
    return InvalidRecurrence(f"Règle de récurrence invalide : {detail}.")


def _split(value: str) -> dict[str, str]:
    if not value or "\n" in value:
        raise _invalid(f"« {value} »")
    parts: dict[str, str] = {}
    for item in value.split(";"):
        key, equals, part_value = item.partition("=")
        if not equals or not key or not part_value:
            raise _invalid(f"« {item} » n'est pas de la forme NOM=VALEUR")
        if key in parts:
            raise _invalid(f"{key} apparaît deux fois")
        parts[key] = part_value
    return parts


def _join_parts(parts: dict[str, str]) -> str:
    return ";".join(f"{key}={value}" for key, value in parts.items())


def _check_parts(parts: dict[str, str]) -> None:
    for key in parts:
        if key in _UNSUPPORTED_PARTS:
            raise _invalid(f"{key} n'est pas pris en charge")
        if key not in _SUPPORTED_PARTS:
            raise _invalid(f"partie inconnue {key}")
    freq = parts.get("FREQ")
    if freq in _SUB_DAILY:
        raise InvalidRecurrence(_ONCE_A_DAY)
    if freq not in _FREQUENCIES:
        raise _invalid("FREQ doit valoir DAILY, WEEKLY, MONTHLY ou YEARLY")
    if "UNTIL" in parts and "COUNT" in parts:
        raise InvalidRecurrence(
            "Une récurrence a soit une date de fin (UNTIL), soit un nombre de séances (COUNT), pas les deux."
        )
    for key, most in (("INTERVAL", _MAX_INTERVAL), ("COUNT", _MAX_COUNT)):
        # ASCII digits: "²" passes str.isdigit() and then fails int().
        if key in parts and not (parts[key].isascii() and parts[key].isdigit() and 1 <= int(parts[key]) <= most):
            raise _invalid(f"{key} doit être un entier entre 1 et {most}")
    for key in ("BYHOUR", "BYMINUTE", "BYSECOND"):
        if key in parts and "," in parts[key]:
            raise InvalidRecurrence(_ONCE_A_DAY)
    for key, (low, high, signed) in _INTEGER_RANGES.items():
        if key in parts:
            _check_integers(key, parts[key], low=low, high=high, signed=signed)
    if "UNTIL" in parts:
        _until_value(parts["UNTIL"])
    if "BYDAY" in parts:
        _check_byday(parts["BYDAY"], freq)
    if "WKST" in parts and parts["WKST"] not in WEEKDAY_CODES:
        raise _invalid("WKST doit être un jour (MO…SU)")
    if freq == "WEEKLY" and "BYMONTHDAY" in parts:
        raise _invalid("BYMONTHDAY ne va pas avec FREQ=WEEKLY")
    if "BYMONTH" in parts and "BYMONTHDAY" in parts and not _some_month_has_the_day(parts):
        raise _invalid(f"aucun mois de BYMONTH={parts['BYMONTH']} n'a de jour BYMONTHDAY={parts['BYMONTHDAY']}")
    if "BYSETPOS" in parts and not any(key.startswith("BY") and key != "BYSETPOS" for key in parts):
        raise _invalid("BYSETPOS demande une autre partie BYxxx")


def _check_integers(key: str, value: str, *, low: int, high: int, signed: bool) -> None:
    for item in value.split(","):
        if not re.fullmatch(r"[+-]?\d{1,3}", item):
            raise _invalid(f"{key}={value}")
        number = int(item)
        magnitude = abs(number) if signed else number
        if not low <= magnitude <= high or (number < 0 and not signed):
            raise _invalid(f"{key}={value} hors limites")


def _some_month_has_the_day(parts: dict[str, str]) -> bool:
    months = [int(month) for month in parts["BYMONTH"].split(",")]
    days = [abs(int(day)) for day in parts["BYMONTHDAY"].split(",")]
    return any(day <= _LEAP_YEAR_MONTH_DAYS[month - 1] for month in months for day in days)


def _check_byday(value: str, freq: str) -> None:
    for item in value.split(","):
        match = _BYDAY_ITEM.match(item)
        if match is None:
            raise _invalid(f"BYDAY={value}")
        if match["ordinal"] is None:
            continue
        ordinal = int(match["ordinal"])
        limit = {"MONTHLY": 5, "YEARLY": 53}.get(freq)
        if limit is None:
            raise _invalid(f"BYDAY={value} : un rang ({item}) ne va qu'avec FREQ=MONTHLY ou YEARLY")
        if not 1 <= abs(ordinal) <= limit:
            raise _invalid(f"BYDAY={value} hors limites")


@functools.lru_cache(maxsize=4096)
def _check_synchronised(rule_text: str, start: dt.datetime) -> None:
    parts = _split(rule_text)
    parts.pop("COUNT", None)
    shift = _CALENDAR_CYCLE_YEARS * ((dt.MAXYEAR - _CALENDAR_CYCLE_YEARS - start.year) // _CALENDAR_CYCLE_YEARS)
    probe_start = start.replace(year=start.year + shift)
    first = next(iter(rrulestr(_dateutil_rule(parts), dtstart=probe_start)), None)
    if first is None:
        raise InvalidRecurrence(f"La règle {rule_text} ne produit aucune séance.")
    if first != probe_start:
        raise InvalidRecurrence(
            f"Le début ({DAYS[start.weekday()]} {_french_date(start.date())}) ne suit pas la règle {rule_text} :"
            " la première séance doit être le début lui-même."
        )


# Time zone


def _zone(zone: str) -> ZoneInfo:
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise InvalidRecurrence(f"Fuseau horaire inconnu : {zone}.") from error


def localise(wall: dt.datetime, zone: str, *, strict: bool) -> dt.datetime:
    """The UTC instant of a naive wall time in `zone`.

    An ambiguous time (autumn fold) means its first occurrence unless `wall.fold` is 1. A non-existent time
    (spring gap) raises `NonExistentLocalTime` when `strict`, otherwise moves forward by the gap, as RFC 5545
    §3.3.5 says (02:30 on 29 March 2026 in Paris becomes 03:30 local, 01:30Z).
    """
    tz = _zone(zone)
    instant, adjusted = _localise(wall, tz)
    if adjusted and strict:
        change = "passage à l'heure d'été" if instant.astimezone(tz).dst() else "changement d'heure"
        raise NonExistentLocalTime(f"L'heure {wall:%H:%M} n'existe pas le {_french_date(wall.date())} ({change}).")
    return instant


def _localise(wall: dt.datetime, tz: ZoneInfo) -> tuple[dt.datetime, bool]:
    if wall.tzinfo is not None:
        raise ValueError(f"A wall time is naive, got {wall!r}")
    aware = wall.replace(tzinfo=tz)
    instant = aware.astimezone(UTC)
    if instant.astimezone(tz).replace(tzinfo=None) == wall:
        return instant, False
    # In a gap, fold=0 applies the offset from before the gap: the time moves forward by the gap's length.
    return wall.replace(tzinfo=tz, fold=0).astimezone(UTC), True


def _as_utc(value: dt.datetime, name: str) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, got {value!r}")
    return value.astimezone(UTC)


def overlaps(a_start: dt.datetime, a_end: dt.datetime, b_start: dt.datetime, b_end: dt.datetime) -> bool:
    """Whether the half-open intervals [a_start, a_end) and [b_start, b_end) share an instant.

    Bounds must be aware; they are compared in UTC, because Python compares two datetimes of the same zone
    by wall time, which is wrong inside the autumn fold. Back-to-back intervals do not overlap.
    """
    a0, a1 = _as_utc(a_start, "a_start"), _as_utc(a_end, "a_end")
    b0, b1 = _as_utc(b_start, "b_start"), _as_utc(b_end, "b_end")
    if a1 <= a0 or b1 <= b0:
        raise ValueError("An interval must end after it starts")
    return a0 < b1 and b0 < a1


# Expansion


def occurrences(recurrence: Recurrence, *, window_start: dt.datetime, window_end: dt.datetime) -> list[Occurrence]:
    """The occurrences whose UTC start lies in [window_start, window_end), sorted; the bounds must be aware.

    COUNT counts the rule's occurrences before exceptions (RFC 5545: EXDATE removes from the set), UNTIL is
    inclusive and compared as an instant; EXDATEs, French public holidays (when skipped) and closed periods
    (whole local days) are then removed.
    """
    low, high = _as_utc(window_start, "window_start"), _as_utc(window_end, "window_end")
    if high <= low:
        return []
    tz = _zone(recurrence.zone)
    compiled = _compile(recurrence.rrule, recurrence.start, recurrence.zone)
    walls = compiled.rule.between(_wall_bound(low, tz, days=-1), _wall_bound(high, tz, days=1), inc=True)
    excluded = _excluded_instants(recurrence, tz)
    found = (_occurrence(wall, tz) for wall in walls)
    kept = [occ for occ in found if low <= occ.start < high and _is_kept(recurrence, compiled, occ, excluded)]
    return sorted(kept, key=lambda occ: (occ.start, occ.local_start))


def next_occurrences(recurrence: Recurrence, *, after: dt.datetime, count: int) -> list[Occurrence]:
    """At most `count` occurrences starting strictly after the aware instant `after`, sorted.

    Looks at most ten years ahead, so a rule whose every occurrence is excluded ends the search.
    """
    if count < 0:
        raise ValueError("count must not be negative")
    after_utc = _as_utc(after, "after")
    tz = _zone(recurrence.zone)
    compiled = _compile(recurrence.rrule, recurrence.start, recurrence.zone)
    search_from = _wall_bound(after_utc, tz, days=-1)
    search_to = _wall_bound(after_utc, tz, days=_NEXT_OCCURRENCES_HORIZON.days)
    excluded = _excluded_instants(recurrence, tz)
    found: list[Occurrence] = []
    for wall in compiled.rule.xafter(search_from, inc=True):
        if len(found) >= count or wall > search_to:
            break
        occ = _occurrence(wall, tz)
        if occ.start > after_utc and _is_kept(recurrence, compiled, occ, excluded):
            found.append(occ)
    return sorted(found, key=lambda occ: (occ.start, occ.local_start))


def _wall(instant: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    return instant.astimezone(tz).replace(tzinfo=None)


def _wall_bound(instant: dt.datetime, tz: ZoneInfo, *, days: int) -> dt.datetime:
    """The naive wall time `days` away from an instant, for searching: clamped at the ends of the calendar."""
    try:
        return _wall(instant + dt.timedelta(days=days), tz)
    except OverflowError:
        return dt.datetime.max if days > 0 else dt.datetime.min  # noqa: DTZ901 -- naive wall-time bounds


def _occurrence(wall: dt.datetime, tz: ZoneInfo) -> Occurrence:
    wall = wall.replace(fold=0)
    instant, adjusted = _localise(wall, tz)
    return Occurrence(local_start=wall, start=instant, adjusted=adjusted)


def _excluded_instants(recurrence: Recurrence, tz: ZoneInfo) -> frozenset[dt.datetime]:
    return frozenset(
        _localise(exdate, tz)[0] if exdate.tzinfo is None else _as_utc(exdate, "exdate")
        for exdate in recurrence.exdates
    )


def _is_kept(recurrence: Recurrence, compiled: _Compiled, occ: Occurrence, excluded: frozenset[dt.datetime]) -> bool:
    day = occ.local_start.date()
    if compiled.until_at is not None and occ.start > compiled.until_at:
        return False
    if occ.start in excluded:
        return False
    if recurrence.skip_public_holidays and day in _public_holidays(day.year):
        return False
    return not any(first <= day <= last for first, last in recurrence.closed_periods)


def public_holidays(year: int) -> frozenset[dt.date]:
    """The French public holidays of a year (what `skip_public_holidays` skips)."""
    return _public_holidays(year)


@functools.lru_cache(maxsize=64)
def _public_holidays(year: int) -> frozenset[dt.date]:
    return frozenset(holidays.France(years=year))


@functools.lru_cache(maxsize=4096)
def _compile(rule_text: str, start: dt.datetime, zone: str) -> _Compiled:
    """The dateutil rule on naive wall times, and the exact UNTIL bound to apply afterwards.

    dateutil refuses a UTC UNTIL with a naive DTSTART and would compare a wall time with it anyway; the rule is
    given a naive UNTIL one day later than the bound's local wall time (so it ends), and the exact bound is applied
    to each occurrence's instant. A DATE UNTIL is exact as a wall time: the end of that local day.
    """
    parts = _split(rule_text)
    until_at = None
    if "UNTIL" in parts:
        bound = _until_bound(parts["UNTIL"], _zone(zone))
        if isinstance(bound, dt.datetime):
            until_at = bound
            last_wall = _wall(until_at, _zone(zone)) + dt.timedelta(days=1)
        else:
            last_wall = dt.datetime.combine(bound, dt.time(23, 59, 59))
        parts["UNTIL"] = f"{last_wall:%Y%m%dT%H%M%S}"
    rule = rrulestr(_join_parts(parts), dtstart=start)
    return _Compiled(rule=rule, until_at=until_at)


def _dateutil_rule(parts: dict[str, str]) -> str:
    """The rule without UNTIL, which dateutil cannot take in UTC with a naive DTSTART; applied separately."""
    return _join_parts({key: value for key, value in parts.items() if key != "UNTIL"})


def _until_value(value: str) -> tuple[dt.date, dt.time | None, bool]:
    """UNTIL as (date, time or None for a DATE, whether the time is UTC)."""
    match = _UNTIL_VALUE.match(value)
    try:
        if match is None:
            raise ValueError(value)
        day = dt.datetime.strptime(match["date"], "%Y%m%d").date()  # noqa: DTZ007 -- a calendar date only
        if not _UNTIL_YEARS[0] <= day.year <= _UNTIL_YEARS[1]:
            raise ValueError(value)
        clock = None
        if match["time"] is not None:
            clock = dt.datetime.strptime(match["time"], "%H%M%S").time()  # noqa: DTZ007 -- a clock time only
    except ValueError as error:
        raise _invalid(f"UNTIL={value} (attendu AAAAMMJJ ou AAAAMMJJTHHMMSSZ)") from error
    return day, clock, bool(match["utc"])


def _until_bound(value: str, tz: ZoneInfo) -> dt.datetime | dt.date:
    """UNTIL as a UTC instant (a datetime) for a DATE-TIME, or as the last local day (a date) for a DATE; inclusive
    either way.

    A floating DATE-TIME (no Z; RFC 5545 wants UTC once DTSTART has a zone) is read as a wall time in the zone.
    """
    day, clock, is_utc = _until_value(value)
    if clock is None:
        return day
    wall = dt.datetime.combine(day, clock)
    if is_utc:
        return wall.replace(tzinfo=UTC)
    return _localise(wall, tz)[0]


# French description


_ORDINALS = {
    1: "premier", 2: "deuxième", 3: "troisième", 4: "quatrième", 5: "cinquième", -1: "dernier", -2: "avant-dernier",
}  # fmt: skip
_SMALL_NUMBERS = {2: "deux", 3: "trois", 4: "quatre"}
_WORKING_WEEK = ["MO", "TU", "WE", "TH", "FR"]
_DESCRIBABLE = frozenset({"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "WKST"})


def describe(recurrence: Recurrence) -> str:
    """A short French description for the UI ("Chaque lundi à 14 h 00"); "Règle : …" for uncommon rules."""
    parts = _split(recurrence.rrule)
    pattern = _describe_pattern(parts, recurrence.start) if set(parts) <= _DESCRIBABLE else None
    if pattern is None:
        return f"Règle : {recurrence.rrule}"
    start = recurrence.start
    text = pattern.format(at=f"à {start.hour} h {start.minute:02d}")
    if "COUNT" in parts:
        count = int(parts["COUNT"])
        text += f" ({count} séance{'s' if count > 1 else ''})"
    if "UNTIL" in parts:
        bound = _until_bound(parts["UNTIL"], _zone(recurrence.zone))
        last_day = bound.astimezone(_zone(recurrence.zone)).date() if isinstance(bound, dt.datetime) else bound
        text += f", jusqu'au {_french_date(last_day)}"
    return text


def _describe_pattern(parts: dict[str, str], start: dt.datetime) -> str | None:
    interval = int(parts.get("INTERVAL", "1"))
    describe_frequency = {"DAILY": _describe_daily, "WEEKLY": _describe_weekly, "MONTHLY": _describe_monthly}
    describer = describe_frequency.get(parts["FREQ"], _describe_yearly)
    return describer(parts, start, interval)


def _describe_daily(parts: dict[str, str], start: dt.datetime, interval: int) -> str | None:
    if "BYMONTHDAY" in parts:
        return None
    if "BYDAY" in parts:
        return _describe_weekly(parts, start, interval) if interval == 1 else None
    if interval == 1:
        return "Chaque jour {at}"
    if interval == 2:
        return "Un jour sur deux {at}"
    return f"Tous les {interval} jours {{at}}"


def _describe_weekly(parts: dict[str, str], start: dt.datetime, interval: int) -> str | None:
    codes = parts["BYDAY"].split(",") if "BYDAY" in parts else [WEEKDAY_CODES[start.weekday()]]
    codes = sorted(set(codes), key=WEEKDAY_CODES.index)
    days = [DAYS[WEEKDAY_CODES.index(code)] for code in codes]
    if interval == 1:
        if codes == _WORKING_WEEK:
            return "Chaque jour du lundi au vendredi {at}"
        return f"Chaque {_french_list(days)} {{at}}"
    if len(days) == 1 and interval in _SMALL_NUMBERS:
        return f"Un {days[0]} sur {_SMALL_NUMBERS[interval]} {{at}}"
    every = (
        f"Une semaine sur {_SMALL_NUMBERS[interval]}"
        if interval in _SMALL_NUMBERS
        else f"Toutes les {interval} semaines"
    )
    return f"{every}, le {_french_list(days, article='le ')}, {{at}}"


def _describe_monthly(parts: dict[str, str], start: dt.datetime, interval: int) -> str | None:
    if "BYDAY" in parts and "BYMONTHDAY" in parts:
        return None
    if "BYDAY" in parts:
        match = _BYDAY_ITEM.match(parts["BYDAY"])
        if match is None or match["ordinal"] is None or int(match["ordinal"]) not in _ORDINALS:
            return None
        day = f"Le {_ORDINALS[int(match['ordinal'])]} {DAYS[WEEKDAY_CODES.index(match['day'])]}"
    else:
        if "," in parts.get("BYMONTHDAY", ""):
            return None
        month_day = int(parts.get("BYMONTHDAY", start.day))
        if month_day < -1:
            return None
        day = "Le dernier jour" if month_day == -1 else f"Le {'1er' if month_day == 1 else month_day}"
    if interval == 1:
        return f"{day} du mois {{at}}" if "BYDAY" in parts or month_day == -1 else f"{day} de chaque mois {{at}}"
    every = f"un mois sur {_SMALL_NUMBERS[interval]}" if interval in _SMALL_NUMBERS else f"tous les {interval} mois"
    return f"{day} du mois, {every}, {{at}}"


def _describe_yearly(parts: dict[str, str], start: dt.datetime, interval: int) -> str | None:
    if interval != 1 or "BYDAY" in parts or "BYMONTHDAY" in parts:
        return None
    day = "1er" if start.day == 1 else str(start.day)
    return f"Chaque année le {day} {MONTHS[start.month - 1]} {{at}}"


def _french_list(words: list[str], *, article: str = "") -> str:
    items = [words[0], *(article + word for word in words[1:])]
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + " et " + items[-1]


def _french_date(value: dt.date) -> str:
    day = "1er" if value.day == 1 else str(value.day)
    return f"{day} {MONTHS[value.month - 1]} {value.year}"
