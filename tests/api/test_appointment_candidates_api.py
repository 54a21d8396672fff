"""Issue 16, item 6: GET /api/v1/appointments/<id>/candidates gives the appointment page's ranking as JSON."""

import datetime as dt

import pytest

from hub.models import PlaceKind
from tests import factories
from tests.factories import MONDAY_14H, NOW
from tests.workflows.test_idel_ranking import CHALAGNAC, given_visits, nurse
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")  # ranked by the visits of the clock's month


def test_the_same_ranking_through_the_api(api_as, db_session, territory):
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

    found = api_as(t.coordinator).get(f"/api/v1/appointments/{appointment.id}/candidates").get_json()

    assert [i["professional_id"] for i in found["items"]] == [t.other_idel.id, second.id, first.id]
    assert found["own_idel_note"] == f"{t.idel.full_name}, IDEL du patient, a refusé cette visite."
    assert (found["items"][2]["visits_this_month"], found["items"][2]["reason"]) == (
        3,
        "5,8\u00a0km · 3 visites ce mois · 0 proposition en attente",
    )
    assert api_as(t.idel_user).get(f"/api/v1/appointments/{appointment.id}/candidates").status_code == 403
