"""Issue 16, item 7: the fragility score of a patient without a médecin traitant, rule by rule (the table in
workflows/gp_matching.py)."""

import datetime as dt

import pytest

from hub.models import GpSearch, Patient
from workflows.gp_matching import Priority, fragility

TODAY = dt.date(2026, 12, 4)


def search(*, age_days_short=0, age=50, **criteria) -> GpSearch:
    """An entry of a patient `age` years old today (a day short of it with `age_days_short=1`)."""
    born = TODAY.replace(year=TODAY.year - age) + dt.timedelta(days=age_days_short)
    values = {"has_ald": False, "chronic_conditions": "", "is_isolated": False} | criteria
    return GpSearch(patient=Patient(birth_date=born), **values)


@pytest.mark.parametrize(
    ("age", "short", "points"),
    [(64, 0, 0), (65, 1, 0), (65, 0, 1), (74, 0, 1), (75, 0, 2), (84, 0, 2), (85, 1, 2), (85, 0, 3), (101, 0, 3)],
)
def test_age_counts_from_the_birth_date(age, short, points):
    assert fragility(search(age=age, age_days_short=short), TODAY).score == points


@pytest.mark.parametrize(
    ("days_ago", "points"), [(0, 3), (90, 3), (91, 1), (180, 1), (181, 0), (-3, 0)]
)  # a date in the future counts nothing
def test_a_recent_hospitalisation(days_ago, points):
    found = fragility(search(hospitalised_on=TODAY - dt.timedelta(days=days_ago)), TODAY)
    assert found.score == points
    assert bool(found.reasons) is bool(points)


def test_conditions_count_one_each_up_to_three_and_are_named():
    four = "bpco cancer diabete insuffisance_cardiaque"
    found = fragility(search(chronic_conditions=four), TODAY)
    assert found.score == 3
    assert found.reasons == ["BPCO ou insuffisance respiratoire", "Cancer en cours de traitement", "Diabète",
                             "Insuffisance cardiaque"]  # fmt: skip


@pytest.mark.parametrize(
    ("criteria", "score", "priority"),
    [
        ({}, 0, Priority.LOW),
        ({"is_isolated": True, "other_fragility": "Aidant épuisé"}, 3, Priority.LOW),
        ({"has_ald": True, "is_isolated": True}, 4, Priority.MEDIUM),
        ({"has_ald": True, "is_isolated": True, "chronic_conditions": "bpco cancer"}, 6, Priority.MEDIUM),
        ({"has_ald": True, "is_isolated": True, "chronic_conditions": "bpco cancer diabete"}, 7, Priority.HIGH),
    ],
)
def test_the_priority_thresholds(criteria, score, priority):
    found = fragility(search(**criteria), TODAY)
    assert (found.score, found.priority) == (score, priority)
