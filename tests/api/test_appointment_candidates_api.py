"""Issue 16, item 6: GET /api/v1/appointments/<id>/candidates gives the appointment page's ranking as JSON."""

import datetime as dt
import json

import pytest
from sqlalchemy import event, select

from hub.models import Allocation, AllocationResource, AuditEvent, PlaceKind, Role, VisitOffer, VisitOfferState
from hub.schemas.referrals import AppointmentCandidatesOut, candidates_out
from tests import factories
from tests.factories import MONDAY_14H, NOW
from tests.queries import forbid_lazy_loads, orm_executions
from tests.workflows.test_idel_ranking import BERGERAC, CHALAGNAC, COURSAC, VERGT, given_visits, nurse, pending_offers
from workflows import accompaniment, appointments

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


def _as_before(session, appointment) -> dict:
    """What the route answered when it read its facts one by one (the own IDEL, the declined offers, the pool, the
    busy ones, the visits, the pending offers: six statements), through the ranking's other entry point."""
    own = appointments.own_idel(session, appointment.patient)
    declined = set(
        session.scalars(
            select(VisitOffer.professional_id).where(
                VisitOffer.appointment_id == appointment.id, VisitOffer.state == VisitOfferState.DECLINED
            )
        )
    )
    ranking = appointments.ranked_idels(session, appointment, exclude=declined, own_id=own.id if own else None, now=NOW)
    left_out = ranking.left_out | dict.fromkeys(declined, "a refusé cette visite")
    note = None if own is not None and own.id == appointment.accompanying_id else accompaniment.own_note(own, left_out)
    body = {"appointment_id": appointment.id, "own_idel_note": note, "items": ranking.candidates}
    return json.loads(json.dumps(AppointmentCandidatesOut().dump(body)))


@pytest.fixture
def crowded(db_session, territory):
    """Nurses in every case the ranking tells apart: visits given, offers pending, busy at the visit, not working
    that day, not serving the patient's commune at home; and two booked visits, one at the patient's home."""
    t = territory
    given_visits(db_session, t, nurse(db_session, t, CHALAGNAC, "Aubert"), 3)
    pending_offers(db_session, t, nurse(db_session, t, CHALAGNAC, "Blanc"), 2)
    nurse(db_session, t, VERGT, "Weekend", working_days="67")
    nurse(db_session, t, COURSAC, "Serre", served_communes=CHALAGNAC)
    busy = nurse(db_session, t, VERGT, "Occupée")
    start = MONDAY_14H.astimezone(dt.UTC)
    held = factories.slot(db_session, t.program, start + dt.timedelta(days=7))
    db_session.add(
        Allocation(
            slot_id=held.id,
            resource_kind=AllocationResource.PROFESSIONAL,
            resource_id=busy.id,
            starts_at=start - dt.timedelta(hours=1),
            ends_at=start + dt.timedelta(hours=1),
        )
    )
    visits = []
    for place, hour in ((PlaceKind.DEDICATED_PLACE, 0), (PlaceKind.HOME, 3)):
        slot = factories.slot(db_session, t.program, start + dt.timedelta(hours=hour))
        patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator, commune_insee=VERGT)
        factories.in_care_team(db_session, patient, t.idel)
        visits.append(
            appointments.book(db_session, t.coordinator, slot=slot, patient=patient, place_kind=place, now=NOW)
        )
    db_session.commit()
    return visits


def test_the_candidates_answer_what_the_ranking_answered_before(api_as, db_session, territory, crowded):
    t = territory
    client = api_as(t.coordinator)
    for appointment in crowded:
        found = client.get(f"/api/v1/appointments/{appointment.id}/candidates").get_json()
        assert found == _as_before(db_session, appointment)
        assert found["items"] and found["own_idel_note"] is None  # the own IDEL holds the visit: she is asked
    # The own IDEL declines: the note says so; then she no longer accompanies teleconsultations at all.
    appointments.decline(db_session, t.idel_user, crowded[0], reason="Tournée complète", now=NOW)
    db_session.commit()
    found = client.get(f"/api/v1/appointments/{crowded[0].id}/candidates").get_json()
    assert found == _as_before(db_session, crowded[0]) and "a refusé cette visite" in found["own_idel_note"]
    t.idel.accompanies_teleconsultation = False
    db_session.commit()
    for appointment in crowded:
        assert client.get(f"/api/v1/appointments/{appointment.id}/candidates").get_json() == _as_before(
            db_session, appointment
        )


def test_the_candidates_are_a_light_read_of_three_statements_whatever_the_pool(
    api_as, db_session, engine, territory, crowded
):
    """The token with the appointment, its patient's commune and its program's zone, the pool with every fact of the
    ranking, the audit row (P7): on main it was ten — a transaction, the user's rows and six statements of facts;
    then four, the appointment through the ORM. No ORM statement nor entity, no lazy load."""
    t = territory
    client = api_as(t.coordinator)
    url = f"/api/v1/appointments/{crowded[1].id}/candidates"

    def statements() -> list[str]:
        seen: list[str] = []
        listener = lambda *args: seen.append(args[2].split()[0])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            with forbid_lazy_loads(), orm_executions() as (executed, loaded):
                assert client.get(url).status_code == 200
            assert not [s for s in executed if s.is_select] and not loaded, (executed, loaded)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return [s for s in seen if s not in ("SAVEPOINT", "RELEASE")]

    statements()  # the token's first use is recorded once
    assert statements() == ["SELECT", "SELECT", "INSERT"]
    for n in range(4):
        given_visits(db_session, t, nurse(db_session, t, BERGERAC, f"Renfort {n}"), 1)
    db_session.commit()
    assert statements() == ["SELECT", "SELECT", "INSERT"]


def test_the_candidates_answer_is_the_schema_s_dump_in_its_order(db_session, territory, crowded):
    """candidates_out builds what AppointmentCandidatesOut dumped, keys in the same order, items too."""
    appointments.decline(db_session, territory.idel_user, crowded[0], reason="Tournée complète", now=NOW)
    for appointment in crowded:
        suggestions = accompaniment.for_appointment(db_session, appointment, now=NOW)
        body = {
            "appointment_id": appointment.id,
            "own_idel_note": suggestions.own_note,
            "items": suggestions.candidates,
        }
        expected = AppointmentCandidatesOut().dump(body)
        built = candidates_out(appointment.id, suggestions)
        assert built == expected and list(built) == list(expected)
        assert expected["items"] and [list(i) for i in built["items"]] == [list(i) for i in expected["items"]]


def test_the_candidates_of_another_cpts_s_visit_are_not_found_and_the_refusal_audited(
    api_as, db_session, territory, crowded
):
    """The rule on the plain row is appointment_for's: a 404 audited as the reassignment's refusal, for another
    CPTS's coordinator and for an id that does not exist; the visit's own coordinator audited as before."""
    stranger = factories.user(db_session, factories.cpts(db_session, name="Autre CPTS"), Role.COORDINATOR)
    db_session.commit()
    visit = crowded[0].id
    for user, appointment_id in ((stranger, visit), (territory.coordinator, visit + 1000)):
        response = api_as(user).get(f"/api/v1/appointments/{appointment_id}/candidates")
        assert response.status_code == 404, response.get_json()
        refused = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
        assert (refused.action, refused.outcome, refused.target_id) == (
            "appointment.reassign",
            "denied",
            str(appointment_id),
        )
    assert api_as(territory.coordinator).get(f"/api/v1/appointments/{visit}/candidates").status_code == 200
    audited = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert (audited.action, audited.target_type, audited.target_id, audited.cpts_id, audited.actor_user_id) == (
        "appointment.candidates",
        "appointments",
        str(visit),
        territory.cpts.id,
        territory.coordinator.id,
    )
