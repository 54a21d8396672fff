"""Recurrence of session programs: T1–T5 of docs/guarantees.md (Europe/Paris), holidays, closed periods, wording."""

import dataclasses
import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from scheduling.recurrence import (
    InvalidRecurrence,
    NonExistentLocalTime,
    Recurrence,
    describe,
    localise,
    next_occurrences,
    occurrences,
    overlaps,
    parse_rrule,
)
from tests import ZONE

PARIS = ZoneInfo("Europe/Paris")
UTC = dt.UTC
MONDAY_1400 = dt.datetime(2026, 1, 5, 14, 0)


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=UTC)


def paris(*args: int, fold: int = 0) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS, fold=fold)


def wall(*args: int) -> dt.datetime:
    return dt.datetime(*args)


def expand(recurrence: Recurrence, first: dt.date, last: dt.date) -> list:
    """Occurrences over whole Paris days, first to last inclusive."""
    return occurrences(
        recurrence,
        window_start=paris(first.year, first.month, first.day),
        window_end=paris(last.year, last.month, last.day) + dt.timedelta(days=1),
    )


def local_days(found: list) -> list[dt.date]:
    return [occ.local_start.date() for occ in found]


def weekly_monday(**options) -> Recurrence:
    return Recurrence("FREQ=WEEKLY;BYDAY=MO", MONDAY_1400, **({"zone": ZONE} | options))


# T1: the wall time is kept across both changes.


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (dt.date(2026, 3, 23), utc(2026, 3, 23, 13, 0)),
        (dt.date(2026, 3, 30), utc(2026, 3, 30, 12, 0)),
        (dt.date(2026, 10, 19), utc(2026, 10, 19, 12, 0)),
        (dt.date(2026, 10, 26), utc(2026, 10, 26, 13, 0)),
    ],
)
def test_t1_weekly_monday_keeps_14h_local(day, expected):
    (occ,) = expand(weekly_monday(), day, day)
    assert occ.start == expected
    assert occ.start.tzinfo is UTC
    assert occ.local_start == dt.datetime.combine(day, dt.time(14, 0))
    assert not occ.adjusted


def test_t1_every_occurrence_of_the_year_is_at_14h_paris():
    found = expand(weekly_monday(), dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert {occ.start.astimezone(PARIS).time() for occ in found} == {dt.time(14, 0)}
    assert {occ.start.utcoffset() for occ in found} == {dt.timedelta(0)}
    assert {occ.start.hour for occ in found} == {12, 13}


# T2: a non-existent local time moves forward; a single slot at such a time is refused when strict.


def test_t2_daily_0230_moves_to_0330_on_the_spring_change():
    recurrence = Recurrence("FREQ=DAILY", wall(2026, 3, 27, 2, 30), zone=ZONE)
    found = expand(recurrence, dt.date(2026, 3, 27), dt.date(2026, 3, 30))
    assert [(occ.local_start, occ.start, occ.adjusted) for occ in found] == [
        (wall(2026, 3, 27, 2, 30), utc(2026, 3, 27, 1, 30), False),
        (wall(2026, 3, 28, 2, 30), utc(2026, 3, 28, 1, 30), False),
        (wall(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 30), True),
        (wall(2026, 3, 30, 2, 30), utc(2026, 3, 30, 0, 30), False),
    ]
    assert found[2].start.astimezone(PARIS).replace(tzinfo=None) == wall(2026, 3, 29, 3, 30)


def test_t2_strict_localise_refuses_a_non_existent_time():
    with pytest.raises(NonExistentLocalTime) as raised:
        localise(wall(2026, 3, 29, 2, 30), "Europe/Paris", strict=True)
    assert str(raised.value) == "L'heure 02:30 n'existe pas le 29 mars 2026 (passage à l'heure d'été)."
    assert isinstance(raised.value, ValueError)


@pytest.mark.parametrize(
    ("local", "expected"),
    [
        (wall(2026, 3, 29, 2, 30), utc(2026, 3, 29, 1, 30)),
        (wall(2026, 3, 29, 2, 0), utc(2026, 3, 29, 1, 0)),
        (wall(2026, 3, 29, 1, 59), utc(2026, 3, 29, 0, 59)),
        (wall(2026, 3, 29, 3, 0), utc(2026, 3, 29, 1, 0)),
    ],
)
def test_t2_lenient_localise_moves_forward_by_the_gap(local, expected):
    assert localise(local, "Europe/Paris", strict=False) == expected


def test_t2_strict_localise_accepts_an_existing_time():
    assert localise(wall(2026, 3, 29, 3, 30), "Europe/Paris", strict=True) == utc(2026, 3, 29, 1, 30)


def test_localise_refuses_an_aware_datetime():
    with pytest.raises(ValueError, match="naive"):
        localise(paris(2026, 3, 29, 3, 30), "Europe/Paris", strict=True)


# T3: an ambiguous time means its first occurrence; half-open intervals compared as instants.


def test_t3_daily_0230_on_the_autumn_change_is_the_first_occurrence():
    recurrence = Recurrence("FREQ=DAILY", wall(2026, 10, 24, 2, 30), zone=ZONE)
    found = expand(recurrence, dt.date(2026, 10, 24), dt.date(2026, 10, 26))
    assert [occ.start for occ in found] == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    assert not any(occ.adjusted for occ in found)


def test_t3_the_two_0230s_are_one_hour_apart():
    first = localise(wall(2026, 10, 25, 2, 30), "Europe/Paris", strict=True)
    second = localise(wall(2026, 10, 25, 2, 30).replace(fold=1), "Europe/Paris", strict=True)
    assert first == utc(2026, 10, 25, 0, 30)
    assert second - first == dt.timedelta(hours=1)


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (
            (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0)),
            (utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30)),
            False,
        ),
        (
            (utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 30)),
            (utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 2, 0)),
            True,
        ),
        # The same instants written in Paris time, inside the fold.
        (
            (paris(2026, 10, 25, 2, 30), paris(2026, 10, 25, 2, 0, fold=1)),
            (paris(2026, 10, 25, 2, 0, fold=1), paris(2026, 10, 25, 2, 30, fold=1)),
            False,
        ),
        # Same-zone Python comparison uses wall times and would see an overlap here (02:15 < 02:45).
        (
            (paris(2026, 10, 25, 2, 30), paris(2026, 10, 25, 2, 45)),
            (paris(2026, 10, 25, 2, 15, fold=1), paris(2026, 10, 25, 2, 50, fold=1)),
            False,
        ),
        (
            (paris(2026, 10, 25, 2, 30), paris(2026, 10, 25, 2, 45)),
            (utc(2026, 10, 25, 0, 40), utc(2026, 10, 25, 2)),
            True,
        ),
    ],
)
def test_t3_half_open_intervals(a, b, expected):
    assert overlaps(*a, *b) is expected
    assert overlaps(*b, *a) is expected


@pytest.mark.parametrize(
    "bounds",
    [
        (wall(2026, 1, 5, 14), utc(2026, 1, 5, 14), utc(2026, 1, 5, 13), utc(2026, 1, 5, 15)),
        (utc(2026, 1, 5, 14), utc(2026, 1, 5, 14), utc(2026, 1, 5, 13), utc(2026, 1, 5, 15)),
        (utc(2026, 1, 5, 14), utc(2026, 1, 5, 15), utc(2026, 1, 5, 16), utc(2026, 1, 5, 15)),
    ],
)
def test_overlaps_refuses_naive_or_empty_intervals(bounds):
    with pytest.raises(ValueError, match=r"aware|end after"):
        overlaps(*bounds)


# T4: EXDATE in any form removes the occurrence at that instant, also after a DST change.


@pytest.mark.parametrize(
    "exdate",
    [
        paris(2026, 11, 2, 14, 0),
        utc(2026, 11, 2, 13, 0),
        wall(2026, 11, 2, 14, 0),
    ],
    ids=["tzid-paris", "utc", "naive-local"],
)
def test_t4_exdate_removes_the_occurrence_after_the_autumn_change(exdate):
    found = expand(weekly_monday(exdates=(exdate,)), dt.date(2026, 10, 19), dt.date(2026, 11, 16))
    assert local_days(found) == [
        dt.date(2026, 10, 19),
        dt.date(2026, 10, 26),
        dt.date(2026, 11, 9),
        dt.date(2026, 11, 16),
    ]


@pytest.mark.parametrize(
    "exdate",
    [paris(2026, 4, 13, 14, 0), utc(2026, 4, 13, 12, 0), wall(2026, 4, 13, 14, 0)],
    ids=["tzid-paris", "utc", "naive-local"],
)
def test_t4_exdate_removes_the_occurrence_after_the_spring_change(exdate):
    found = expand(weekly_monday(exdates=(exdate,)), dt.date(2026, 4, 13), dt.date(2026, 4, 20))
    assert local_days(found) == [dt.date(2026, 4, 20)]


@pytest.mark.parametrize(
    "exdate",
    [utc(2026, 4, 13, 14, 0), utc(2026, 4, 13, 13, 0), paris(2026, 4, 13, 13, 0), wall(2026, 4, 13, 15, 0)],
)
def test_t4_exdate_at_another_instant_removes_nothing(exdate):
    found = expand(weekly_monday(exdates=(exdate,)), dt.date(2026, 4, 13), dt.date(2026, 4, 20))
    assert local_days(found) == [dt.date(2026, 4, 13), dt.date(2026, 4, 20)]


def test_t4_exdate_on_a_moved_occurrence_removes_it():
    recurrence = Recurrence("FREQ=DAILY", wall(2026, 3, 27, 2, 30), exdates=(paris(2026, 3, 29, 3, 30),), zone=ZONE)
    found = expand(recurrence, dt.date(2026, 3, 28), dt.date(2026, 3, 30))
    assert local_days(found) == [dt.date(2026, 3, 28), dt.date(2026, 3, 30)]


# T5: COUNT and UNTIL as RFC 5545 says, across DST.


def test_t5_count_gives_ten_occurrences_across_the_spring_change():
    recurrence = Recurrence(
        "FREQ=WEEKLY;BYDAY=MO;COUNT=10", wall(2026, 3, 9, 14, 0), skip_public_holidays=False, zone=ZONE
    )
    found = expand(recurrence, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    assert len(found) == 10
    assert local_days(found)[0] == dt.date(2026, 3, 9)
    assert local_days(found)[-1] == dt.date(2026, 5, 11)
    assert {occ.local_start.time() for occ in found} == {dt.time(14, 0)}
    assert {occ.start.hour for occ in found} == {13, 12}


def test_t5_count_counts_the_rule_before_exceptions():
    recurrence = Recurrence(
        "FREQ=WEEKLY;BYDAY=MO;COUNT=10", wall(2026, 3, 9, 14, 0), exdates=(wall(2026, 3, 16, 14, 0),), zone=ZONE
    )
    found = expand(recurrence, dt.date(2026, 1, 1), dt.date(2026, 12, 31))
    # 16 March (EXDATE) and 6 April (Easter Monday) are removed from the ten, not replaced.
    assert len(found) == 8
    assert local_days(found)[-1] == dt.date(2026, 5, 11)


def test_t5_count_holds_for_a_window_far_from_the_start():
    recurrence = Recurrence("FREQ=WEEKLY;BYDAY=MO;COUNT=10", wall(2026, 3, 9, 14, 0), zone=ZONE)
    assert local_days(expand(recurrence, dt.date(2026, 5, 1), dt.date(2026, 6, 30))) == [
        dt.date(2026, 5, 4),
        dt.date(2026, 5, 11),
    ]


@pytest.mark.parametrize(
    ("until", "last_day"),
    [
        ("20260330T120000Z", dt.date(2026, 3, 30)),
        ("20260330T115959Z", dt.date(2026, 3, 23)),
        ("20261026T130000Z", dt.date(2026, 10, 26)),
        ("20261026T125959Z", dt.date(2026, 10, 19)),
        ("20260330", dt.date(2026, 3, 30)),
        ("20260329", dt.date(2026, 3, 23)),
        ("20260330T140000", dt.date(2026, 3, 30)),
        ("20260330T135959", dt.date(2026, 3, 23)),
    ],
)
def test_t5_until_is_inclusive_and_compared_as_an_instant(until, last_day):
    recurrence = Recurrence(f"FREQ=WEEKLY;BYDAY=MO;UNTIL={until}", wall(2026, 3, 9, 14, 0), zone=ZONE)
    found = expand(recurrence, dt.date(2026, 3, 1), dt.date(2026, 12, 31))
    assert local_days(found)[0] == dt.date(2026, 3, 9)
    assert local_days(found)[-1] == last_day


@pytest.mark.parametrize(
    ("until", "last_day"),
    [("20261025T003000Z", dt.date(2026, 10, 25)), ("20261025T002959Z", dt.date(2026, 10, 24))],
)
def test_t5_until_inside_the_autumn_fold(until, last_day):
    recurrence = Recurrence(f"FREQ=DAILY;UNTIL={until}", wall(2026, 10, 20, 2, 30), zone=ZONE)
    assert local_days(expand(recurrence, dt.date(2026, 10, 20), dt.date(2026, 10, 31)))[-1] == last_day


# Public holidays and closed periods.


def test_monday_program_skips_easter_and_whit_monday():
    days = local_days(expand(weekly_monday(), dt.date(2026, 4, 1), dt.date(2026, 5, 31)))
    assert days == [dt.date(2026, 4, d) for d in (13, 20, 27)] + [dt.date(2026, 5, d) for d in (4, 11, 18)]


def test_public_holidays_are_back_when_not_skipped():
    days = local_days(expand(weekly_monday(skip_public_holidays=False), dt.date(2026, 4, 1), dt.date(2026, 5, 31)))
    assert days == [dt.date(2026, 4, d) for d in (6, 13, 20, 27)] + [dt.date(2026, 5, d) for d in (4, 11, 18, 25)]


def test_daily_program_skips_christmas_and_new_year():
    recurrence = Recurrence("FREQ=DAILY", wall(2026, 12, 20, 9, 0), zone=ZONE)
    days = local_days(expand(recurrence, dt.date(2026, 12, 20), dt.date(2027, 1, 3)))
    assert dt.date(2026, 12, 25) not in days
    assert dt.date(2027, 1, 1) not in days
    assert len(days) == 13


def test_closed_periods_remove_whole_local_days_inclusively():
    recurrence = weekly_monday(closed_periods=((dt.date(2026, 8, 3), dt.date(2026, 8, 10)),))
    days = local_days(expand(recurrence, dt.date(2026, 7, 27), dt.date(2026, 8, 17)))
    assert days == [dt.date(2026, 7, 27), dt.date(2026, 8, 17)]


# Other rules.


def test_every_other_monday():
    recurrence = Recurrence("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", MONDAY_1400, zone=ZONE)
    assert local_days(expand(recurrence, dt.date(2026, 1, 1), dt.date(2026, 2, 28))) == [
        dt.date(2026, 1, 5),
        dt.date(2026, 1, 19),
        dt.date(2026, 2, 2),
        dt.date(2026, 2, 16),
    ]


def test_first_monday_of_the_month():
    recurrence = Recurrence("FREQ=MONTHLY;BYDAY=1MO", MONDAY_1400, zone=ZONE)
    days = local_days(expand(recurrence, dt.date(2026, 1, 1), dt.date(2026, 6, 30)))
    # 6 April is the first Monday but Easter Monday.
    assert days == [
        dt.date(2026, 1, 5),
        dt.date(2026, 2, 2),
        dt.date(2026, 3, 2),
        dt.date(2026, 5, 4),
        dt.date(2026, 6, 1),
    ]


def test_last_friday_of_the_month():
    recurrence = Recurrence("FREQ=MONTHLY;BYDAY=-1FR", wall(2026, 1, 30, 9, 0), zone=ZONE)
    days = local_days(expand(recurrence, dt.date(2026, 1, 1), dt.date(2026, 4, 30)))
    assert days == [dt.date(2026, 1, 30), dt.date(2026, 2, 27), dt.date(2026, 3, 27), dt.date(2026, 4, 24)]


def test_the_window_is_half_open():
    found = occurrences(weekly_monday(), window_start=utc(2026, 3, 23, 13, 0), window_end=utc(2026, 3, 30, 12, 0))
    assert [occ.start for occ in found] == [utc(2026, 3, 23, 13, 0)]


def test_an_empty_or_inverted_window_has_nothing():
    assert occurrences(weekly_monday(), window_start=utc(2026, 3, 30), window_end=utc(2026, 3, 23)) == []


def test_the_window_must_be_aware():
    with pytest.raises(ValueError, match="aware"):
        occurrences(weekly_monday(), window_start=wall(2026, 3, 1), window_end=utc(2026, 4, 1))


def test_a_window_before_the_start_has_nothing():
    assert expand(weekly_monday(), dt.date(2025, 1, 1), dt.date(2026, 1, 4)) == []


def test_next_occurrences_start_strictly_after_and_skip_exceptions():
    found = next_occurrences(weekly_monday(), after=utc(2026, 3, 30, 12, 0), count=3)
    assert local_days(found) == [dt.date(2026, 4, 13), dt.date(2026, 4, 20), dt.date(2026, 4, 27)]
    assert found[0].start == utc(2026, 4, 13, 12, 0)


def test_next_occurrences_stop_with_the_rule():
    recurrence = Recurrence("FREQ=WEEKLY;BYDAY=MO;COUNT=3", MONDAY_1400, zone=ZONE)
    assert len(next_occurrences(recurrence, after=utc(2026, 1, 1), count=5)) == 3
    assert next_occurrences(recurrence, after=utc(2026, 1, 1), count=0) == []


def test_next_occurrences_end_when_every_occurrence_is_excluded():
    christmas = Recurrence("FREQ=YEARLY", wall(2026, 12, 25, 10, 0), zone=ZONE)
    assert next_occurrences(christmas, after=utc(2026, 1, 1), count=1) == []
    kept = dataclasses.replace(christmas, skip_public_holidays=False)
    assert local_days(next_occurrences(kept, after=utc(2026, 1, 1), count=2)) == [
        dt.date(2026, 12, 25),
        dt.date(2027, 12, 25),
    ]


def test_next_occurrences_refuse_a_negative_count():
    with pytest.raises(ValueError, match="count"):
        next_occurrences(weekly_monday(), after=utc(2026, 1, 1), count=-1)


def test_a_hundred_weekly_programs_over_a_year():
    programs = [
        Recurrence("FREQ=WEEKLY;BYDAY=MO", wall(2026, 1, 5, 8, 0) + dt.timedelta(minutes=5 * i), zone=ZONE)
        for i in range(100)
    ]
    total = sum(len(expand(program, dt.date(2026, 1, 1), dt.date(2026, 12, 31))) for program in programs)
    # 52 Mondays in 2026, of which Easter Monday and Whit Monday are public holidays.
    assert total == 100 * (52 - 2)


# Description.


@pytest.mark.parametrize(
    ("rule", "start", "expected"),
    [
        ("FREQ=WEEKLY;BYDAY=MO", MONDAY_1400, "Chaque lundi à 14 h 00"),
        ("FREQ=WEEKLY", MONDAY_1400, "Chaque lundi à 14 h 00"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO", MONDAY_1400, "Un lundi sur deux à 14 h 00"),
        ("FREQ=WEEKLY;INTERVAL=6;BYDAY=MO", MONDAY_1400, "Toutes les 6 semaines, le lundi, à 14 h 00"),
        ("FREQ=WEEKLY;BYDAY=TH,MO", MONDAY_1400, "Chaque lundi et jeudi à 14 h 00"),
        ("FREQ=WEEKLY;BYDAY=MO,TU,TH", MONDAY_1400, "Chaque lundi, mardi et jeudi à 14 h 00"),
        ("FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,TH", MONDAY_1400, "Une semaine sur deux, le lundi et le jeudi, à 14 h 00"),
        ("FREQ=WEEKLY;BYDAY=MO,TU,WE,TH,FR", wall(2026, 1, 5, 9, 5), "Chaque jour du lundi au vendredi à 9 h 05"),
        ("FREQ=MONTHLY;BYDAY=1MO", MONDAY_1400, "Le premier lundi du mois à 14 h 00"),
        ("FREQ=MONTHLY;BYDAY=-1FR", wall(2026, 1, 30, 9, 0), "Le dernier vendredi du mois à 9 h 00"),
        ("FREQ=MONTHLY;INTERVAL=2;BYDAY=1MO", MONDAY_1400, "Le premier lundi du mois, un mois sur deux, à 14 h 00"),
        ("FREQ=MONTHLY;BYMONTHDAY=15", wall(2026, 1, 15, 14), "Le 15 de chaque mois à 14 h 00"),
        ("FREQ=MONTHLY", wall(2026, 1, 1, 14), "Le 1er de chaque mois à 14 h 00"),
        ("FREQ=MONTHLY;BYMONTHDAY=-1", wall(2026, 1, 31, 14), "Le dernier jour du mois à 14 h 00"),
        ("FREQ=DAILY", wall(2026, 1, 5, 8, 30), "Chaque jour à 8 h 30"),
        ("FREQ=DAILY;INTERVAL=2", wall(2026, 1, 5, 8, 30), "Un jour sur deux à 8 h 30"),
        ("FREQ=DAILY;INTERVAL=3", wall(2026, 1, 5, 8, 30), "Tous les 3 jours à 8 h 30"),
        ("FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR", wall(2026, 1, 5, 8, 30), "Chaque jour du lundi au vendredi à 8 h 30"),
        ("FREQ=YEARLY", wall(2026, 1, 5, 8, 30), "Chaque année le 5 janvier à 8 h 30"),
        ("FREQ=WEEKLY;BYDAY=MO;COUNT=10", MONDAY_1400, "Chaque lundi à 14 h 00 (10 séances)"),
        (
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20261231T225959Z",
            MONDAY_1400,
            "Chaque lundi à 14 h 00, jusqu'au 31 décembre 2026",
        ),
        ("FREQ=WEEKLY;BYDAY=MO;UNTIL=20260601", MONDAY_1400, "Chaque lundi à 14 h 00, jusqu'au 1er juin 2026"),
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=2", wall(2026, 1, 12, 14), "Règle : FREQ=MONTHLY;BYDAY=MO;BYSETPOS=2"),
        ("FREQ=MONTHLY;BYDAY=1MO,3MO", MONDAY_1400, "Règle : FREQ=MONTHLY;BYDAY=1MO,3MO"),
        ("FREQ=MONTHLY;BYDAY=3MO", wall(2026, 1, 19, 14), "Le troisième lundi du mois à 14 h 00"),
        ("FREQ=MONTHLY;BYDAY=-3MO", wall(2026, 1, 12, 14), "Règle : FREQ=MONTHLY;BYDAY=-3MO"),
        ("FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13", wall(2026, 2, 13, 14), "Règle : FREQ=MONTHLY;BYDAY=FR;BYMONTHDAY=13"),
        ("FREQ=MONTHLY;BYMONTHDAY=1,15", wall(2026, 1, 1, 14), "Règle : FREQ=MONTHLY;BYMONTHDAY=1,15"),
        ("FREQ=MONTHLY;BYMONTHDAY=-2", wall(2026, 1, 30, 14), "Règle : FREQ=MONTHLY;BYMONTHDAY=-2"),
        ("FREQ=MONTHLY;INTERVAL=6;BYMONTHDAY=15", wall(2026, 1, 15, 14), "Le 15 du mois, tous les 6 mois, à 14 h 00"),
        ("FREQ=DAILY;BYMONTHDAY=1", wall(2026, 1, 1, 14), "Règle : FREQ=DAILY;BYMONTHDAY=1"),
        ("FREQ=DAILY;INTERVAL=2;BYDAY=MO", MONDAY_1400, "Règle : FREQ=DAILY;INTERVAL=2;BYDAY=MO"),
        ("FREQ=YEARLY;INTERVAL=2", MONDAY_1400, "Règle : FREQ=YEARLY;INTERVAL=2"),
        ("FREQ=WEEKLY;BYDAY=MO;BYHOUR=14", MONDAY_1400, "Règle : FREQ=WEEKLY;BYDAY=MO;BYHOUR=14"),
        ("FREQ=YEARLY;BYMONTH=1", MONDAY_1400, "Règle : FREQ=YEARLY;BYMONTH=1"),
    ],
)
def test_describe(rule, start, expected):
    assert describe(Recurrence(rule, start, zone=ZONE)) == expected


# Validation.


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FREQ=WEEKLY;BYDAY=MO", "FREQ=WEEKLY;BYDAY=MO"),
        (" rrule:freq=weekly;interval=2;byday=mo ", "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO"),
        ("FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20261231T230000Z", "FREQ=MONTHLY;BYDAY=-1FR;UNTIL=20261231T230000Z"),
    ],
)
def test_parse_rrule_normalises(text, expected):
    assert parse_rrule(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "invalide"),
        ("garbage", "invalide"),
        ("BYDAY=MO", "FREQ"),
        ("FREQ=FORTNIGHTLY", "FREQ"),
        ("FREQ=WEEKLY;BYDAY=XX", "BYDAY"),
        ("FREQ=WEEKLY;FOO=1", "inconnue"),
        ("FREQ=WEEKLY;BYDAY=MO;BYDAY=TU", "deux fois"),
        ("FREQ=WEEKLY;INTERVAL=0", "INTERVAL"),
        ("FREQ=WEEKLY;INTERVAL=99999999999999999999", "INTERVAL"),
        ("FREQ=WEEKLY;COUNT=-1", "COUNT"),
        ("FREQ=YEARLY;BYMONTH=JAN", "BYMONTH"),
        ("FREQ=MONTHLY;BYMONTH=2;BYMONTHDAY=30", "aucun mois"),
        ("FREQ=DAILY;BYMONTH=4,6;BYMONTHDAY=31,-31", "aucun mois"),
        ("FREQ=WEEKLY;UNTIL=99991231T235959Z", "UNTIL"),
        ("FREQ=WEEKLY;BYDAY=1MO", "rang"),
        ("FREQ=MONTHLY;BYDAY=6MO", "hors limites"),
        ("FREQ=MONTHLY;BYMONTHDAY=32", "hors limites"),
        ("FREQ=YEARLY;BYMONTH=13", "hors limites"),
        ("FREQ=DAILY;BYHOUR=24", "hors limites"),
        ("FREQ=YEARLY;BYWEEKNO=20", "pas pris en charge"),
        ("FREQ=WEEKLY;BYMONTHDAY=3", "BYMONTHDAY"),
        ("FREQ=WEEKLY;BYSETPOS=1", "BYSETPOS"),
        ("FREQ=WEEKLY;UNTIL=2026-12-31", "UNTIL"),
        ("FREQ=WEEKLY;UNTIL=20261331", "UNTIL"),
        ("FREQ=WEEKLY;WKST=XX", "WKST"),
        ("FREQ=WEEKLY;", "NOM=VALEUR"),
        ("FREQ=WEEKLY;BYDAY=MO;COUNT=5;UNTIL=20261231T230000Z", "pas les deux"),
    ],
)
def test_parse_rrule_refuses(text, message):
    with pytest.raises(InvalidRecurrence, match=message):
        parse_rrule(text)


@pytest.mark.parametrize(
    "text",
    [
        "FREQ=HOURLY",
        "FREQ=MINUTELY;INTERVAL=30",
        "FREQ=SECONDLY",
        "FREQ=DAILY;BYHOUR=9,14",
        "FREQ=WEEKLY;BYMINUTE=0,30",
    ],
)
def test_parse_rrule_refuses_more_than_once_a_day(text):
    with pytest.raises(InvalidRecurrence) as raised:
        parse_rrule(text)
    assert str(raised.value) == "Une séance ne peut pas se répéter plus d'une fois par jour."


@pytest.mark.parametrize(
    ("rule", "start", "message"),
    [
        ("FREQ=WEEKLY;BYDAY=MO", paris(2026, 1, 5, 14), "sans fuseau"),
        ("FREQ=WEEKLY;BYDAY=MO", wall(2026, 1, 5, 14, 0, 0, 5), "seconde"),
        ("FREQ=WEEKLY;BYDAY=TU", MONDAY_1400, "ne suit pas la règle"),
        ("FREQ=MONTHLY;BYDAY=1MO", wall(2026, 1, 12, 14), "ne suit pas la règle"),
        # Rules that never match: dateutil alone would search up to year 9999.
        ("FREQ=MONTHLY;BYDAY=MO;BYSETPOS=6", wall(2026, 1, 5, 14), "aucune séance"),
        ("FREQ=MONTHLY;BYMONTH=2", wall(2026, 1, 30, 14), "aucune séance"),
        ("FREQ=HOURLY", MONDAY_1400, "plus d'une fois par jour"),
    ],
)
def test_recurrence_refuses(rule, start, message):
    with pytest.raises(InvalidRecurrence, match=message):
        Recurrence(rule, start, zone=ZONE)


def test_recurrence_refuses_an_unknown_zone_and_an_inverted_closed_period():
    with pytest.raises(InvalidRecurrence, match="Fuseau"):
        weekly_monday(zone="Europe/Nowhere")
    with pytest.raises(InvalidRecurrence, match="fermeture"):
        weekly_monday(closed_periods=((dt.date(2026, 8, 31), dt.date(2026, 8, 1)),))


def test_recurrence_normalises_its_rule():
    assert Recurrence("rrule:freq=weekly;byday=mo", MONDAY_1400, zone=ZONE).rrule == "FREQ=WEEKLY;BYDAY=MO"


def test_a_leap_day_rule_is_accepted():
    recurrence = Recurrence("FREQ=YEARLY", wall(2028, 2, 29, 10, 0), zone=ZONE)
    assert local_days(expand(recurrence, dt.date(2028, 1, 1), dt.date(2032, 12, 31))) == [
        dt.date(2028, 2, 29),
        dt.date(2032, 2, 29),
    ]


def test_another_zone():
    recurrence = Recurrence("FREQ=WEEKLY;BYDAY=MO", MONDAY_1400, zone="Indian/Reunion", skip_public_holidays=False)
    (occ,) = occurrences(recurrence, window_start=utc(2026, 7, 6), window_end=utc(2026, 7, 7))
    assert occ.start == utc(2026, 7, 6, 10, 0)


def test_windows_at_the_ends_of_the_calendar():
    far = Recurrence("FREQ=WEEKLY;BYDAY=MO;COUNT=3", MONDAY_1400, zone=ZONE)
    end = dt.datetime.max.replace(tzinfo=UTC)
    assert occurrences(far, window_start=end - dt.timedelta(days=2), window_end=end) == []
    assert len(occurrences(far, window_start=dt.datetime.min.replace(tzinfo=UTC), window_end=utc(2026, 1, 12))) == 1
    assert next_occurrences(far, after=end - dt.timedelta(days=2), count=1) == []
