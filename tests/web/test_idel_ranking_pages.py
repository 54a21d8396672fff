"""Issue 16, item 6, on the appointment's page: the coordinator who reassigns a visit sees the free IDELs in the
order they are offered, each with why it ranks there."""

import datetime as dt

import pytest

from hub.models import PlaceKind
from tests import factories
from tests.factories import MONDAY_14H, NOW
from tests.workflows.test_idel_ranking import CHALAGNAC, given_visits, nurse
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")  # the page ranks by the visits of the clock's month


def test_the_appointment_page_ranks_the_free_idels_with_their_reasons(auth, db_session, territory):
    t = territory
    first = nurse(db_session, t, CHALAGNAC, "Aubert")
    second = nurse(db_session, t, CHALAGNAC, "Blanc")
    given_visits(db_session, t, first, 3)
    slot = factories.slot(db_session, t.program, MONDAY_14H.astimezone(dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    appointments.decline(db_session, t.idel_user, appointment, reason="Tournée complète", now=NOW)
    db_session.commit()
    auth.login(t.coordinator)

    page = auth.client.get(f"/planning/appointments/{appointment.id}").get_data(as_text=True)

    ranking = page.split('class="small ranking"', 1)[1].split("</ol>", 1)[0]
    names = [t.other_idel.full_name, second.full_name, first.full_name]
    assert [ranking.index(name) for name in names] == sorted(ranking.index(name) for name in names)
    assert t.idel.full_name not in ranking, "she declined this visit"
    assert f"{t.idel.full_name}, IDEL du patient, a refusé cette visite." in page
    assert f"{t.other_idel.full_name}</strong> — Vergt : 0,0\u00a0km · 0 visite ce mois" in ranking
    assert f"{first.full_name}</strong> — Chalagnac : 5,8\u00a0km · 3 visites ce mois · 0 proposition" in ranking
