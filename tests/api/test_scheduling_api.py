"""Programs, slots and appointments through the JSON API: every verb allowed and refused, S2 (no IDOR, the
denial audited), S3 (no state set directly, unknown fields refused), problem+json everywhere."""

import datetime as dt
import json
from types import MappingProxyType

import pytest
from sqlalchemy import event, func, select

from hub.api.programs import instant
from hub.models import (
    PROGRAM_DEFAULTS,
    Appointment,
    AppointmentState,
    AuditEvent,
    PlaceKind,
    ProgramKind,
    Role,
    SessionProgram,
    Slot,
    SlotState,
)
from hub.schemas.scheduling import SlotOut
from scheduling import board
from tests import factories
from tests.api.test_patients_api import assert_problem, last_audit
from tests.factories import MONDAY_14H
from tests.web.test_group_session_pages import book_session_of_four
from workflows import appointments

# A Monday morning, a week before the session, frozen before any row is made.
pytestmark = pytest.mark.usefixtures("clock")

PROGRAM = {
    "name": "Téléconsultation cardiologie CH Périgueux",
    "kind": "assisted_teleconsultation",
    "rrule": "FREQ=WEEKLY;BYDAY=MO",
    "first_day": "2026-11-16",
    "time_of_day": "14:00",
    "slot_count": 3,
    "slot_minutes": 15,
    "accompaniment_before_minutes": 20,
    "accompaniment_after_minutes": 25,
}
CHECK_IN = {
    "identity_method": "document",
    "patient_location": "Cabinet infirmier, Vergt",
    "callback_phone": "0612345678",
}
CHECKLIST = {"camera": True, "sound": True, "light": True, "privacy": True}


def booking(t, slot, **extra) -> dict:
    return {"slot_id": slot.id, "patient_id": t.patient.id, "place_kind": "lieu_dedie"} | extra


# --- programs and slots -----------------------------------------------------------------------------------


def test_coordinator_creates_a_program_and_reads_its_slots(api_as, territory):
    client = api_as(territory.coordinator)
    created = client.post("/api/v1/programs", json=PROGRAM | {"performer_id": territory.cardiologist.id})
    assert created.status_code == 201, created.get_json()
    program = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/programs/{program['id']}")
    assert (program["rrule"], program["time_of_day"], program["zone"]) == (
        "FREQ=WEEKLY;BYDAY=MO",
        "14:00",
        "Europe/Paris",
    )
    assert client.get(created.headers["Location"]).get_json()["name"] == PROGRAM["name"]
    listed = client.get("/api/v1/programs").get_json()
    assert program["id"] in [p["id"] for p in listed["items"]] and listed["total"] >= 1

    week = client.get(f"/api/v1/programs/{program['id']}/slots?from=2026-11-23&to=2026-11-29").get_json()
    assert week["total"] == 3
    assert [s["starts_at"] for s in week["items"]] == [
        "2026-11-23T13:00:00+00:00",
        "2026-11-23T13:15:00+00:00",
        "2026-11-23T13:30:00+00:00",
    ]
    assert {s["state"] for s in week["items"]} == {"free"}
    horizon = client.get(f"/api/v1/programs/{program['id']}/slots?per_page=200").get_json()
    assert horizon["total"] == 3 * 12, "12 weeks of Mondays from now"


def test_a_program_takes_the_configured_zone(api_as, app, monkeypatch, territory):
    """The zone comes from the configuration (HUB_TIMEZONE), not from the code."""
    monkeypatch.setitem(app.config, "HUB", MappingProxyType(dict(app.config["HUB"]) | {"TIMEZONE": "America/Cayenne"}))
    client = api_as(territory.coordinator)
    created = client.post("/api/v1/programs", json=PROGRAM | {"performer_id": territory.cardiologist.id})
    assert created.status_code == 201, created.get_json()
    program = created.get_json()
    assert program["zone"] == "America/Cayenne"
    week = client.get(f"/api/v1/programs/{program['id']}/slots?from=2026-11-23&to=2026-11-29").get_json()
    assert week["items"][0]["starts_at"] == "2026-11-23T17:00:00+00:00", "14:00 in Cayenne (UTC-3)"


def test_a_program_sent_without_its_optional_fields_takes_the_program_defaults(api_as, territory):
    required = {key: PROGRAM[key] for key in ("name", "kind", "rrule", "first_day", "time_of_day")}
    sizes = {"slot_count": 2, "slot_minutes": 20}
    created = api_as(territory.coordinator).post(
        "/api/v1/programs", json=required | sizes | {"performer_id": territory.cardiologist.id}
    )
    assert created.status_code == 201, created.get_json()
    program = created.get_json()
    assert {key: program[key] for key in PROGRAM_DEFAULTS} == PROGRAM_DEFAULTS | sizes


def test_a_program_row_made_without_them_takes_the_same_defaults(db_session, territory):
    sizes = {"slot_count": 2, "slot_minutes": 20}
    program = SessionProgram(
        cpts_id=territory.cpts.id,
        name="Séances",
        kind=ProgramKind.ASSISTED_TELECONSULTATION,
        performer_id=territory.cardiologist.id,
        rrule="FREQ=WEEKLY;BYDAY=MO",
        start_local=dt.datetime(2026, 11, 16, 14),
        zone="Europe/Paris",
        valid_from=dt.date(2026, 11, 16),
        **sizes,
    )
    db_session.add(program)
    db_session.flush()
    assert {key: getattr(program, key) for key in PROGRAM_DEFAULTS} == PROGRAM_DEFAULTS | sizes


def test_slot_states_follow_the_appointments(api_as, db_session, territory, visit):
    client = api_as(territory.coordinator)
    url = (
        f"/api/v1/programs/{territory.program.id}/slots?from=2026-11-23T14:00:00%2B01:00&to=2026-11-23T15:00:00%2B01:00"
    )
    [item] = client.get(url).get_json()["items"]
    assert (item["state"], item["appointment_id"]) == ("proposed", visit.id)
    appointments.confirm(db_session, territory.idel_user, visit)
    db_session.commit()
    assert client.get(url).get_json()["items"][0]["state"] == "confirmed"
    appointments.cancel(db_session, territory.coordinator, visit, reason="Hospitalisé")
    db_session.commit()
    assert item["seats_left"] == 0 and item["participants"] == [
        {"appointment_id": visit.id, "patient_id": visit.patient_id, "state": "proposed"}
    ]
    freed = {"state": "free", "appointment_id": None, "seats_left": 1, "participants": []}
    assert client.get(url).get_json()["items"][0] == item | freed


@pytest.mark.parametrize("capacity", [1, 3])
@pytest.mark.parametrize("state", list(SlotState))
@pytest.mark.parametrize(
    "holders", [(), (AppointmentState.PROPOSED,), (AppointmentState.CONFIRMED,) * 3], ids=["empty", "one", "full"]
)
def test_a_listed_slot_s_state_is_the_board_s(capacity, state, holders):
    """The API's listing and the planning (SlotView) say a slot's state by one rule, board.slot_state."""
    participants = [board.Participant(n, n, holder) for n, holder in enumerate(holders, start=1)]
    row = (1, 1, None, None, None, 0, False, state)
    listed = board._listed(row, participants, capacity)
    holder = participants[0].state if participants else None
    assert listed.state == board.slot_state(state, capacity, len(participants), holder)


def test_slot_list_runs_a_constant_number_of_queries(api_as, db_session, engine, territory):
    client = api_as(territory.coordinator)
    start = MONDAY_14H.astimezone(dt.UTC)
    for n in range(12):
        slot = factories.slot(db_session, territory.program, start + dt.timedelta(minutes=15 * n))
        if n < 2 or n >= 4:
            patient = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
            appointments.book(
                db_session, territory.coordinator, slot=slot, patient=patient, place_kind=PlaceKind.DEDICATED_PLACE
            )
    db_session.commit()

    def statements(per_page):
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            body = client.get(f"/api/v1/programs/{territory.program.id}/slots?from=2026-11-23&per_page={per_page}")
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        assert body.status_code == 200
        return len(seen)

    statements(1)  # the token's first use is recorded once: an UPDATE that later calls skip
    assert statements(2) == statements(12)


def _listing_statements(engine, client, url) -> tuple[list[str], dict]:
    seen: list[str] = []
    listener = lambda *args: seen.append(" ".join(args[2].split()[:4]))  # noqa: E731
    event.listen(engine, "before_cursor_execute", listener)
    try:
        response = client.get(url)
    finally:
        event.remove(engine, "before_cursor_execute", listener)
    assert response.status_code == 200, response.get_json()
    return [s for s in seen if not s.startswith(("SAVEPOINT", "RELEASE"))], response.get_json()


def test_the_slot_list_is_a_light_read_of_three_statements(api_as, db_session, engine, territory, visit):
    """The token, the program, the page with its total and holding appointments (P7): on main it was six — a
    transaction, the user's rows, the program's entity, a count, the slots, their appointments with patients."""
    client = api_as(territory.coordinator)
    url = f"/api/v1/programs/{territory.program.id}/slots?from=2026-11-23&to=2026-11-23"
    client.get(url)  # the token's first use is recorded once
    seen, body = _listing_statements(engine, client, url)
    assert [s.split()[0] for s in seen] == ["SELECT"] * 3, seen
    assert body["total"] == 1 and body["items"][0]["appointment_id"] == visit.id
    # A page past the end has no row to carry the total: one more statement counts it.
    seen, body = _listing_statements(engine, client, url + "&page=3")
    assert len(seen) == 4 and (body["items"], body["total"]) == ([], 1)


def test_the_slot_list_answers_what_slotout_dumped_of_the_planning_views(api_as, db_session, territory):
    """Same JSON as before the listing read Core rows: SlotOut's dump of board.program_slots' views, page by page,
    over every state a slot shows (free, held, confirmed, freed by a cancellation, cancelled, a group's seats)."""
    t, start = territory, MONDAY_14H.astimezone(dt.UTC)

    def patient():
        row = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
        factories.in_care_team(db_session, row, t.idel)  # the visit is offered to the IDEL, who may confirm it
        return row

    factories.slot(db_session, t.program, start)
    hours = [start + dt.timedelta(hours=2 * n) for n in range(1, 5)]
    factories.visit(db_session, t, hours[0], patient_row=patient())
    factories.visit(db_session, t, hours[1], state=AppointmentState.CONFIRMED, patient_row=patient())
    freed = factories.visit(db_session, t, hours[2], patient_row=patient())
    appointments.cancel(db_session, t.coordinator, freed, reason="Hospitalisé")
    factories.slot(db_session, t.program, hours[3]).state = SlotState.CANCELLED
    group_slot, _patients = book_session_of_four(db_session, t)
    db_session.commit()
    client = api_as(t.coordinator)
    window = (
        instant(dt.date(2026, 11, 23), t.program.zone, end=False),
        instant(dt.date(2026, 11, 29), t.program.zone, end=True),
    )
    for program_id, per_page, pages in ((t.program.id, 2, 4), (group_slot.program_id, 1, 2)):
        for page in range(1, pages + 1):
            body = client.get(
                f"/api/v1/programs/{program_id}/slots?from=2026-11-23&to=2026-11-29&page={page}&per_page={per_page}"
            ).get_json()
            views, total = board.program_slots(db_session, program_id, *window, page=page, per_page=per_page)
            expected = {"items": SlotOut().dump(views, many=True), "page": page, "per_page": per_page, "total": total}
            assert body == json.loads(json.dumps(expected)), (program_id, page)
    states = [
        i["state"] for i in client.get(f"/api/v1/programs/{t.program.id}/slots?from=2026-11-23").get_json()["items"]
    ]
    assert states == ["free", "proposed", "confirmed", "free", "cancelled"]


def test_program_input_is_checked_and_nothing_saved(api_as, db_session, territory):
    client = api_as(territory.coordinator)
    before = db_session.scalar(select(func.count()).select_from(SessionProgram))
    base = PROGRAM | {"performer_id": territory.cardiologist.id}
    body = assert_problem(client.post("/api/v1/programs", json=base | {"rrule": "FREQ=HOURLY"}), 422)
    assert "rrule" in body["errors"]
    # "²" is a digit for str.isdigit, not for int(): this rule used to be a 500.
    body = assert_problem(client.post("/api/v1/programs", json=base | {"rrule": "FREQ=WEEKLY;INTERVAL=²"}), 422)
    assert "INTERVAL" in body["errors"]["rrule"]
    body = assert_problem(client.post("/api/v1/programs", json=base | {"slot_count": 0, "time_of_day": "25:00"}), 422)
    assert body["errors"]["slot_count"] == "Entre 1 et 40." and "Heure invalide" in body["errors"]["time_of_day"]
    body = assert_problem(client.post("/api/v1/programs", json=base | {"performer_id": territory.idel.id}), 422)
    assert "ne peut pas réaliser" in body["errors"]["performer_id"]
    body = assert_problem(client.post("/api/v1/programs", json=base | {"is_active": False}), 422)
    assert body["errors"]["is_active"] == "Champ inconnu ou non modifiable."
    assert db_session.scalar(select(func.count()).select_from(SessionProgram)) == before


def test_patch_changes_the_whole_series(api_as, db_session, territory):
    client = api_as(territory.coordinator)
    url = client.post("/api/v1/programs", json=PROGRAM | {"performer_id": territory.cardiologist.id}).headers[
        "Location"
    ]
    changed = client.patch(url, json={"slot_count": 2, "time_of_day": "15:00"})
    assert changed.status_code == 200, changed.get_json()
    body = changed.get_json()
    assert (body["slot_count"], body["time_of_day"]) == (2, "15:00")
    assert body["slots"]["created"] == 2 * 12 and body["slots"]["booked_no_longer_fitting"] == []
    week = client.get(f"{url}/slots?from=2026-11-23&to=2026-11-23").get_json()["items"]
    assert [s["starts_at"] for s in week] == ["2026-11-23T14:00:00+00:00", "2026-11-23T14:15:00+00:00"]
    assert assert_problem(client.patch(url, json={"performer_id": territory.idel.id}), 422)["errors"] == {
        "performer_id": "Champ inconnu ou non modifiable."
    }
    assert "_schema" in assert_problem(client.patch(url, json={}), 422)["errors"]
    assert "rrule" in assert_problem(client.patch(url, json={"rrule": "n'importe quoi"}), 422)["errors"]


@pytest.mark.parametrize(
    "query, field",
    [("from=2026-11-23T14:00:00", "from"), ("from=lundi", "from"), ("from=2026-11-30&to=2026-11-23", "to")],
)
def test_slot_window_parameters_are_checked(api_as, territory, query, field):
    body = assert_problem(
        api_as(territory.coordinator).get(f"/api/v1/programs/{territory.program.id}/slots?{query}"), 422
    )
    assert field in body["errors"]


def test_programs_are_the_coordinators_and_per_cpts(api_as, db_session, territory):
    assert_problem(api_as(territory.idel_user).get("/api/v1/programs"), 403)
    stranger = factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR)
    assert_problem(api_as(stranger).get(f"/api/v1/programs/{territory.program.id}"), 404)
    assert_problem(api_as(stranger).get(f"/api/v1/programs/{territory.program.id}/slots"), 404)
    assert territory.program.id not in [p["id"] for p in api_as(stranger).get("/api/v1/programs").get_json()["items"]]


# --- stopping a series ------------------------------------------------------------------------------------


def test_stopping_the_series_cancels_its_future_appointments(api_as, db_session, territory, slot, visit):
    free = factories.slot(db_session, territory.program, slot.ends_at)
    free_id = free.id
    db_session.commit()
    client = api_as(territory.coordinator)
    stopped = client.post(f"/api/v1/programs/{territory.program.id}/cancel", json={"reason": "Fin du partenariat"})
    assert stopped.status_code == 200, stopped.get_json()
    body = stopped.get_json()
    assert (body["id"], body["is_active"], body["appointments_cancelled"]) == (territory.program.id, False, 1)
    db_session.expire_all()
    assert db_session.get(Appointment, visit.id).state is AppointmentState.CANCELLED
    assert db_session.get(Slot, slot.id).state is SlotState.CANCELLED  # kept: its appointment's history
    assert db_session.get(Slot, free_id) is None
    assert last_audit(db_session).action == "program.cancel_series"
    again = assert_problem(client.post(f"/api/v1/programs/{territory.program.id}/cancel", json={"reason": "x"}), 409)
    assert again["detail"] == "Cette série est déjà arrêtée."


@pytest.mark.parametrize(
    "body, field", [({}, "reason"), ({"reason": "   "}, "reason"), ({"reason": "Fin", "is_active": True}, "is_active")]
)
def test_stopping_needs_a_reason_and_nothing_changes_without(api_as, db_session, territory, visit, body, field):
    response = api_as(territory.coordinator).post(f"/api/v1/programs/{territory.program.id}/cancel", json=body)
    assert field in assert_problem(response, 422)["errors"]
    db_session.expire_all()
    assert db_session.get(SessionProgram, territory.program.id).is_active
    assert db_session.get(Appointment, visit.id).state is AppointmentState.PROPOSED


def test_only_the_cpts_coordinators_stop_a_series(api_as, db_session, territory, visit):
    url = f"/api/v1/programs/{territory.program.id}/cancel"
    stranger = factories.user(db_session, factories.cpts(db_session), Role.COORDINATOR)
    assert_problem(api_as(stranger).post(url, json={"reason": "Fin"}), 404)
    assert_problem(api_as(territory.idel_user).post(url, json={"reason": "Fin"}), 403)
    assert_problem(
        api_as(factories.user(db_session, territory.cpts, Role.ADMIN)).post(url, json={"reason": "Fin"}), 403
    )
    db_session.expire_all()
    assert db_session.get(SessionProgram, territory.program.id).is_active
    assert db_session.get(Appointment, visit.id).state is AppointmentState.PROPOSED


# --- booking ----------------------------------------------------------------------------------------------


def test_booking_proposes_the_visit_to_the_patients_own_idel(api_as, db_session, territory, slot):
    response = api_as(territory.coordinator).post("/api/v1/appointments", json=booking(territory, slot))
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/appointments/{body['id']}")
    assert (body["state"], body["fhir_status"], body["accompanying_id"]) == ("proposed", "pending", territory.idel.id)
    assert body["participants"] == [
        {"role": "patient", "actor": {"type": "Patient", "id": territory.patient.id}, "status": "accepted"},
        {
            "role": "performer",
            "actor": {"type": "Practitioner", "id": territory.cardiologist.id},
            "status": "needs-action",
        },
        {"role": "accompanying", "actor": {"type": "Practitioner", "id": territory.idel.id}, "status": "needs-action"},
    ]
    assert body["accompaniment_starts_at"] == "2026-11-23T12:40:00+00:00"
    assert last_audit(db_session).action == "appointment.book"


def test_a_taken_slot_is_a_409_naming_the_resource(api_as, db_session, territory, slot, visit):
    other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
    response = api_as(territory.coordinator).post(
        "/api/v1/appointments",
        json=booking(territory, slot, patient_id=other.id, accompanying_id=territory.other_idel.id),
    )
    body = assert_problem(response, 409)
    resource = {"kind": "professional", "id": territory.cardiologist.id, "label": territory.cardiologist.full_name}
    assert body["resource"] == resource
    assert body["starts_at"] == "2026-11-23T13:00:00+00:00" and "déjà réservé" in body["detail"]


def test_booking_refuses_what_a_caller_may_not_set(api_as, db_session, territory, slot):
    client = api_as(territory.coordinator)
    body = assert_problem(client.post("/api/v1/appointments", json=booking(territory, slot, state="confirmed")), 422)
    assert body["errors"] == {"state": "Champ inconnu ou non modifiable."}
    body = assert_problem(client.post("/api/v1/appointments", json=booking(territory, slot, place_kind="lune")), 422)
    assert "place_kind" in body["errors"]
    assert db_session.scalar(select(func.count()).select_from(Appointment)) == 0


def test_ids_swapped_in_the_body_are_404_and_audited(api_as, db_session, territory, slot):
    other_cpts = factories.cpts(db_session)
    stranger = factories.coordinator(db_session, other_cpts)
    assert_problem(api_as(stranger).post("/api/v1/appointments", json=booking(territory, slot)), 404)
    event = last_audit(db_session)
    assert (event.action, event.outcome, event.target_id) == ("appointment.book", "denied", str(territory.patient.id))
    foreign_slot = factories.slot(
        db_session, factories.program(db_session, other_cpts), MONDAY_14H.astimezone(dt.UTC) + dt.timedelta(hours=1)
    )
    body = assert_problem(
        api_as(territory.coordinator).post("/api/v1/appointments", json=booking(territory, foreign_slot)), 404
    )
    assert body["detail"] == "Créneau introuvable."
    assert_problem(api_as(territory.idel_user).post("/api/v1/appointments", json=booking(territory, slot)), 403)
    assert db_session.scalar(select(func.count()).select_from(Appointment)) == 0


# --- the verbs, allowed and refused -----------------------------------------------------------------------

VERBS = {
    "confirm": {},
    "decline": {"reason": "Tournée complète"},
    "check-in": CHECK_IN,
    "checklist": CHECKLIST,
    "complete": {},
    "degrade": {"reason": "Coupure de la vidéo"},
    "no-show": {},
    "cancel": {"reason": "Le patient est hospitalisé"},
}


@pytest.mark.parametrize("verb", [*VERBS, "reassign"])
def test_an_idel_with_no_offer_gets_404_and_the_denial_is_audited(api_as, db_session, territory, visit, verb):
    body = VERBS.get(verb, {"accompanying_id": territory.other_idel.id})
    response = api_as(territory.other_idel_user).post(f"/api/v1/appointments/{visit.id}/{verb}", json=body)
    assert_problem(response, 403 if verb in ("cancel", "reassign") else 404)
    event = last_audit(db_session)
    assert event.outcome == "denied" and event.actor_user_id == territory.other_idel_user.id
    if verb not in ("cancel", "reassign"):
        assert (event.action, event.target_type, event.target_id) == (
            f"appointment.{verb.replace('-', '_')}",
            "appointments",
            str(visit.id),
        )
    assert db_session.get(Appointment, visit.id).state is AppointmentState.PROPOSED


def test_reading_an_appointment(api_as, db_session, territory, visit):
    assert api_as(territory.idel_user).get(f"/api/v1/appointments/{visit.id}").status_code == 200
    assert last_audit(db_session).action == "appointment.read"
    assert api_as(territory.coordinator).get(f"/api/v1/appointments/{visit.id}").status_code == 200
    cardiologist = factories.user(
        db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist
    )
    assert api_as(cardiologist).get(f"/api/v1/appointments/{visit.id}").status_code == 200
    assert_problem(api_as(territory.other_idel_user).get(f"/api/v1/appointments/{visit.id}"), 404)
    assert_problem(
        api_as(factories.user(db_session, territory.cpts, Role.ADMIN)).get(f"/api/v1/appointments/{visit.id}"), 403
    )
    assert_problem(api_as(territory.coordinator).get("/api/v1/appointments/999999"), 404)


def test_the_visit_from_confirmation_to_done(api_as, db_session, territory, visit, clock):
    idel = api_as(territory.idel_user)
    url = f"/api/v1/appointments/{visit.id}"
    confirmed = idel.post(f"{url}/confirm")
    assert confirmed.status_code == 200, confirmed.get_json()
    assert {p["role"]: p["status"] for p in confirmed.get_json()["participants"]} == {
        "patient": "accepted",
        "performer": "accepted",
        "accompanying": "accepted",
    }
    assert_problem(idel.post(f"{url}/confirm", json={}), 409)  # already confirmed
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=15))
    body = assert_problem(idel.post(f"{url}/check-in", json={}), 422)
    assert set(body["errors"]) == {"identity_method", "patient_location", "callback_phone"}
    assert "rappeler" in body["errors"]["callback_phone"]
    assert (
        "callback_phone"
        in assert_problem(idel.post(f"{url}/check-in", json=CHECK_IN | {"callback_phone": "12"}), 422)["errors"]
    )
    body = assert_problem(idel.post(f"{url}/checklist", json={"camera": True}), 422)
    assert set(body["errors"]) == {"sound", "light", "privacy"}
    saved = idel.post(f"{url}/checklist", json=CHECKLIST).get_json()
    assert saved["checklist"] == CHECKLIST | {"adult_present": False} and saved["checklist_saved_at"] is not None
    assert idel.post(f"{url}/check-in", json=CHECK_IN).get_json()["state"] == "checked_in"
    assert "pas encore commencé" in assert_problem(idel.post(f"{url}/complete"), 422)["detail"]
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=15))
    done = idel.post(f"{url}/complete")
    assert (done.get_json()["state"], done.get_json()["fhir_status"]) == ("done", "fulfilled")


def test_decline_returns_to_the_coordinator_who_reassigns(api_as, db_session, territory, visit):
    url = f"/api/v1/appointments/{visit.id}"
    body = assert_problem(api_as(territory.idel_user).post(f"{url}/decline", json={}), 422)
    assert body["errors"]["reason"] == "Ce champ est obligatoire."
    declined = api_as(territory.idel_user).post(f"{url}/decline", json={"reason": "Tournée complète ce lundi"})
    assert declined.get_json()["state"] == "declined" and declined.get_json()["accompanying_id"] is None
    coordinator = api_as(territory.coordinator)
    assert coordinator.get(url).get_json()["declined_reason"] == "Tournée complète ce lundi"
    assert_problem(coordinator.post(f"{url}/reassign", json={}), 422)
    reassigned = coordinator.post(f"{url}/reassign", json={"accompanying_id": territory.other_idel.id})
    assert (reassigned.get_json()["state"], reassigned.get_json()["accompanying_id"]) == (
        "proposed",
        territory.other_idel.id,
    )
    assert api_as(territory.other_idel_user).post(f"{url}/confirm").get_json()["state"] == "confirmed"


def test_degraded_mode_and_no_show(api_as, db_session, territory, slot, visit, clock):
    url = f"/api/v1/appointments/{visit.id}"
    idel = api_as(territory.idel_user)
    idel.post(f"{url}/confirm")
    assert "après l'heure" in assert_problem(idel.post(f"{url}/no-show"), 422)["detail"]
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=10))
    assert idel.post(f"{url}/no-show").get_json()["state"] == "no_show"

    second = factories.slot(db_session, territory.program, slot.starts_at + dt.timedelta(minutes=30))
    other = factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator)
    created = api_as(territory.coordinator).post(
        "/api/v1/appointments",
        json=booking(territory, second, patient_id=other.id, accompanying_id=territory.other_idel.id),
    )
    url = created.headers["Location"]
    other_idel = api_as(territory.other_idel_user)
    other_idel.post(f"{url}/confirm")
    other_idel.post(f"{url}/check-in", json=CHECK_IN)
    assert "reason" in assert_problem(other_idel.post(f"{url}/degrade", json={}), 422)["errors"]
    assert other_idel.post(f"{url}/degrade", json={"reason": "Vidéo coupée"}).get_json()["state"] == "degraded"


def test_performer_runs_the_session_but_does_not_answer_for_the_idel(api_as, db_session, territory, visit):
    cardiologist = api_as(
        factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist)
    )
    url = f"/api/v1/appointments/{visit.id}"
    assert_problem(cardiologist.post(f"{url}/confirm"), 404)
    api_as(territory.idel_user).post(f"{url}/confirm")
    assert cardiologist.post(f"{url}/check-in", json=CHECK_IN).get_json()["state"] == "checked_in"
    assert_problem(cardiologist.post(f"{url}/cancel", json={"reason": "x"}), 403)


def test_cancel_releases_the_slot(api_as, db_session, territory, visit):
    coordinator = api_as(territory.coordinator)
    url = f"/api/v1/appointments/{visit.id}"
    assert "reason" in assert_problem(coordinator.post(f"{url}/cancel", json={}), 422)["errors"]
    cancelled = coordinator.post(f"{url}/cancel", json={"reason": "Le patient est hospitalisé"}).get_json()
    assert (cancelled["state"], cancelled["is_late_cancellation"], cancelled["fhir_status"]) == (
        "cancelled",
        False,
        "cancelled",
    )
    assert_problem(coordinator.post(f"{url}/confirm"), 409)


def test_a_professional_cannot_set_a_state_directly(api_as, db_session, territory, visit):
    idel = api_as(territory.idel_user)
    url = f"/api/v1/appointments/{visit.id}"
    body = assert_problem(idel.post(f"{url}/confirm", json={"state": "done"}), 422)
    assert body["errors"] == {"state": "Champ inconnu ou non modifiable."}
    body = assert_problem(
        idel.post(f"{url}/check-in", json=CHECK_IN | {"identity_checked_at": "2026-11-01T10:00:00Z"}), 422
    )
    assert "identity_checked_at" in body["errors"]
    assert assert_problem(idel.patch(url, json={"state": "done"}), 405)["status"] == 405
    assert db_session.get(Appointment, visit.id).state is AppointmentState.PROPOSED


def test_admin_is_refused_every_verb(api_as, db_session, territory, visit):
    admin = api_as(factories.user(db_session, territory.cpts, Role.ADMIN))
    for verb, body in VERBS.items():
        assert_problem(admin.post(f"/api/v1/appointments/{visit.id}/{verb}", json=body), 403)
    assert db_session.scalar(
        select(func.count())
        .select_from(AuditEvent)
        .where(AuditEvent.outcome == "denied", AuditEvent.actor_user_id.is_not(None))
    ) >= len(VERBS)


def test_openapi_documents_the_scheduling_api(client):
    document = client.get("/api/v1/openapi.json").get_json()
    book = document["paths"]["/appointments"]["post"]
    (key,) = [p for p in book["parameters"] if p["name"] == "Idempotency-Key"]
    assert key["in"] == "header" and key["schema"]["maxLength"] == 200
    assert "201" in book["responses"]
    assert "200" in document["paths"]["/appointments/{appointment_id}/confirm"]["post"]["responses"]
    assert {p["name"] for p in document["paths"]["/programs/{program_id}/slots"]["get"]["parameters"]} >= {"from", "to"}
    stop = document["paths"]["/programs/{program_id}/cancel"]["post"]
    assert "200" in stop["responses"] and "appointments_cancelled" in str(document["components"]["schemas"])
