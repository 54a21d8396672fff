"""Issue 16, item 7: the list of patients without a médecin traitant as an indicator — its size now, the entries
of the period, the delay from entry to a médecin traitant (mean and median) — counted by hand (on the page and in
the API: tests/api/test_gp_search_indicator_api.py)."""

import datetime as dt

from hub.models import ConsentMethod, GpSearch, GpSearchState, Profession
from tests import ZONE, factories
from tests.factories import PARIS
from workflows import indicators
from workflows.indicators import Period, Scope

DECEMBER = Period(2026, 12, ZONE)


def paris(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS).astimezone(dt.UTC)


def entry(db, t, entered_at, *, state=GpSearchState.WAITING, closed_at=None, gp=None):
    search = GpSearch(
        cpts_id=t.cpts.id,
        patient_id=factories.patient(db, t.cpts).id,
        state=state,
        consent_on=entered_at.date(),
        consent_method=ConsentMethod.ORAL,
        entered_at=entered_at,
        entered_by_user_id=t.coordinator.id,
        closed_at=closed_at,
        gp_id=gp.id if gp else None,
    )
    db.add(search)
    db.flush()
    return search


def play(db, t):
    """Two patients waiting (one entered in November), and in December: three found a médecin traitant through the
    hub after 4, 10 and 13 days, one found one elsewhere, one withdrew; one found in November does not count."""
    gp = factories.professional(db, t.cpts, Profession.GENERAL_PRACTITIONER)
    matched = GpSearchState.MATCHED
    entry(db, t, paris(2026, 11, 20, 10))
    entry(db, t, paris(2026, 12, 1, 0, 30))  # 00:30 on 1 December, Paris time: in December
    entry(db, t, paris(2026, 12, 1, 9), state=matched, closed_at=paris(2026, 12, 5, 9), gp=gp)
    entry(db, t, paris(2026, 11, 25, 9), state=matched, closed_at=paris(2026, 12, 5, 9), gp=gp)
    entry(db, t, paris(2026, 12, 10, 9), state=matched, closed_at=paris(2026, 12, 23, 9), gp=gp)
    entry(db, t, paris(2026, 12, 2, 9), state=GpSearchState.FOUND_ELSEWHERE, closed_at=paris(2026, 12, 3, 9))
    entry(db, t, paris(2026, 12, 2, 9), state=GpSearchState.WITHDRAWN, closed_at=paris(2026, 12, 4, 9))
    entry(db, t, paris(2026, 10, 2, 9), state=matched, closed_at=paris(2026, 11, 30, 22), gp=gp)  # 23:00 Paris
    factories.patient(db, factories.cpts(db))  # another CPTS counts nothing here


def test_the_list_indicator_against_hand_counted_values(db_session, territory):
    play(db_session, territory)
    found = {i.key: i for i in indicators.compute(db_session, Scope(territory.cpts.id, DECEMBER))}
    assert found["liste_sans_medecin_traitant"].rows == (
        ("En attente aujourd'hui", 2),
        ("Inscriptions dans la période", 5),
        ("Médecins traitants trouvés dans la période", 3),
        ("Délai moyen jusqu'au médecin traitant (jours)", 9.0),
        ("Délai médian jusqu'au médecin traitant (jours)", 10.0),
    )
    assert "patients_sans_medecin_traitant" in found, "the indicator of patients seen stays"


def test_an_empty_list_shows_no_delay(db_session, territory):
    found = {i.key: i for i in indicators.compute(db_session, Scope(territory.cpts.id, DECEMBER))}
    assert found["liste_sans_medecin_traitant"].rows[2:] == (
        ("Médecins traitants trouvés dans la période", 0),
        ("Délai moyen jusqu'au médecin traitant (jours)", None),
        ("Délai médian jusqu'au médecin traitant (jours)", None),
    )
