"""The coordinator's pages: programs (rule choices, series edits, occurrences, closures, stopping the series),
the week planner (states at a glance, a constant number of queries), booking a patient, reassigning the IDEL,
cancelling."""

import datetime as dt
import html
import json
import re

import pytest
from sqlalchemy import event, func, select

from hub.models import (
    PROGRAM_DEFAULTS,
    Appointment,
    AppointmentState,
    AuditEvent,
    PlaceKind,
    Profession,
    SessionProgram,
    Slot,
    SlotState,
)
from scheduling.slots import generate_slots
from tests import factories
from tests.factories import MONDAY_14H, NOW, PARIS, PROGRAM_FORM
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def coordinator(auth, territory):
    auth.login(territory.coordinator)
    return territory.coordinator


def field_error(body: str, name: str) -> str:
    """The message shown next to a field (the element its aria-describedby points to)."""
    found = re.search(rf'<div class="field-error" id="e-{re.escape(name)}">([^<]*)</div>', body)
    return html.unescape(found.group(1)) if found else ""


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def count(session, model, *where) -> int:
    return session.scalar(select(func.count()).select_from(model).where(*where))


def monday_slots(db_session, program, day=MONDAY_14H):
    start = day.astimezone(dt.UTC)
    return list(
        db_session.scalars(
            select(Slot)
            .where(
                Slot.program_id == program.id, Slot.starts_at >= start, Slot.starts_at < start + dt.timedelta(hours=1)
            )
            .order_by(Slot.starts_at)
        )
    )


def book(db_session, t, slot, *, patient=None, idel=None):
    patient = patient or factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
    return appointments.book(
        db_session, t.coordinator, slot=slot, patient=patient, place_kind=PlaceKind.DEDICATED_PLACE, accompanying=idel
    )


def created_program(db_session, auth, territory, **overrides):
    response = auth.post(
        "/planning/programs/new", PROGRAM_FORM | {"performer_id": territory.cardiologist.id} | overrides
    )
    assert response.status_code == 302, field_errors(text(response))
    return db_session.get(SessionProgram, int(response.headers["Location"].rsplit("/", 1)[1]))


def field_errors(body: str) -> dict:
    return dict(re.findall(r'<div class="field-error" id="e-([^"]+)">([^<]*)</div>', body))


# --- programs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "choice, rrule, description",
    [
        ({"rule": "weekly", "weekday": "MO"}, "FREQ=WEEKLY;BYDAY=MO", "Chaque lundi à 14 h 00"),
        ({"rule": "biweekly", "weekday": "TH"}, "FREQ=WEEKLY;INTERVAL=2;BYDAY=TH", "Un jeudi sur deux à 14 h 00"),
        ({"rule": "monthly_first", "weekday": "MO"}, "FREQ=MONTHLY;BYDAY=1MO", "Le premier lundi du mois à 14 h 00"),
        (
            {"rule": "advanced", "weekday": "", "rrule": "FREQ=MONTHLY;BYDAY=-1FR"},
            "FREQ=MONTHLY;BYDAY=-1FR",
            "Le dernier vendredi",
        ),
    ],
)
def test_a_program_is_created_from_simple_choices(auth, db_session, coordinator, territory, choice, rrule, description):
    program = created_program(db_session, auth, territory, **choice)
    assert program.rrule == rrule and program.zone == "Europe/Paris"
    page = text(auth.client.get(f"/planning/programs/{program.id}"))
    assert description in page
    assert "Annuler cette séance" in page and "Libre" in page
    listing = text(auth.client.get("/planning/programs"))
    assert program.name in listing and description in listing


def test_the_new_program_form_starts_from_the_program_defaults(auth, coordinator):
    page = text(auth.client.get("/planning/programs/new"))
    shown = dict(re.findall(r'<input[^>]* name="([a-z_]+)" type="number"\s+value="([^"]*)"', page))
    numbers = {key: value for key, value in PROGRAM_DEFAULTS.items() if not isinstance(value, bool)}
    expected = {key: "" if value is None else str(value) for key, value in numbers.items()}
    assert {key: shown.get(key) for key in numbers} == expected
    assert re.search(r'name="skip_public_holidays"[^>]* checked', page)


def test_the_program_page_shows_twelve_weeks_of_slots(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    page = text(auth.client.get(f"/planning/programs/{program.id}"))
    assert page.count("Annuler cette séance") == 12
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "every id of the page is unique"
    occurrences = re.findall(r'id="occ-\d+">([^<]*)<', page)
    assert occurrences[0] == "lundi 16 novembre 2026, 14 h 00", "this afternoon's session is still to come"
    assert occurrences[-1] == "lundi 1er février 2027, 14 h 00"
    assert "lundi 15 février 2027" not in page


@pytest.mark.parametrize(
    "changes, field, message",
    [
        ({"weekday": ""}, "weekday", "Choisissez le jour de la semaine."),
        ({"rule": "advanced", "rrule": ""}, "rrule", "Saisissez la règle"),
        ({"rule": "advanced", "rrule": "FREQ=HOURLY"}, "rrule", "plus d'une fois par jour"),
        ({"rule": "advanced", "rrule": "BYDAY=MO"}, "rrule", "Règle de récurrence invalide"),
        ({"slot_count": "0"}, "slot_count", "Entre 1 et 40."),
        ({"slot_minutes": "quinze"}, "slot_minutes", "Nombre entier attendu."),
        ({"time_of_day": "25:00"}, "time_of_day", "Heure invalide"),
        ({"first_day": "2026-02-30"}, "first_day", "Date invalide"),
        ({"name": ""}, "name", "Ce champ est obligatoire."),
        ({"valid_until": "2026-11-01"}, "valid_until", "La fin de validité précède le début."),
    ],
)
def test_bad_input_is_shown_next_to_the_field_and_nothing_is_saved(
    auth,
    db_session,
    coordinator,
    territory,
    changes,
    field,
    message,
):
    before = count(db_session, SessionProgram), count(db_session, Slot)
    response = auth.post("/planning/programs/new", PROGRAM_FORM | {"performer_id": territory.cardiologist.id} | changes)
    assert response.status_code == 422
    assert message in field_error(text(response), field)
    assert f'href="#f-{field}"' in text(response), "the summary links to the field"
    assert (count(db_session, SessionProgram), count(db_session, Slot)) == before


def test_a_performer_who_cannot_perform_is_refused(auth, db_session, coordinator, territory):
    response = auth.post("/planning/programs/new", PROGRAM_FORM | {"performer_id": territory.idel.id})
    assert response.status_code == 422
    assert "ne peut pas réaliser" in field_error(text(response), "performer_id")


def test_editing_the_whole_series(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    form = text(auth.client.get(f"/planning/programs/{program.id}/edit"))
    assert 'value="14:00"' in form and "Toute la série" in form and "Cette séance et les suivantes" in form
    response = auth.post(
        f"/planning/programs/{program.id}/edit",
        PROGRAM_FORM | {"scope": "series", "slot_count": "2", "time_of_day": "15:00"},
    )
    assert response.status_code == 302
    db_session.refresh(program)
    assert (program.slot_count, program.start_local.time()) == (2, dt.time(15))
    assert [
        s.starts_at.astimezone(PARIS).time()
        for s in monday_slots(db_session, program, MONDAY_14H + dt.timedelta(hours=1))
    ] == [
        dt.time(15),
        dt.time(15, 15),
    ]


def test_editing_this_occurrence_and_the_following_ones(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    form = text(auth.client.get(f"/planning/programs/{program.id}/edit?from_day=2026-12-07"))
    assert 'value="2026-12-07"' in form
    response = auth.post(
        f"/planning/programs/{program.id}/edit",
        PROGRAM_FORM | {"scope": "following", "from_day": "2026-12-07", "slot_count": "2"},
    )
    assert response.status_code == 302
    new = db_session.get(SessionProgram, int(response.headers["Location"].rsplit("/", 1)[1]))
    db_session.refresh(program)
    assert new.id != program.id and program.valid_until == dt.date(2026, 12, 6)
    assert (new.valid_from, new.slot_count) == (dt.date(2026, 12, 7), 2)


def test_this_and_following_needs_a_day(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    before = count(db_session, SessionProgram)
    response = auth.post(f"/planning/programs/{program.id}/edit", PROGRAM_FORM | {"scope": "following"})
    assert response.status_code == 422
    assert "Indiquez la séance" in field_error(text(response), "from_day")
    assert count(db_session, SessionProgram) == before


def test_cancelling_one_occurrence(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    occurrence = monday_slots(db_session, program)[0].occurrence_start.isoformat()
    refused = auth.post(f"/planning/programs/{program.id}/occurrences/cancel", {"occurrence": occurrence})
    assert refused.status_code == 422
    assert field_error(text(refused), "reason") == "Ce champ est obligatoire."
    assert len(monday_slots(db_session, program)) == 3
    done = auth.post(
        f"/planning/programs/{program.id}/occurrences/cancel", {"occurrence": occurrence, "reason": "Congrès"}
    )
    assert done.status_code == 302
    assert monday_slots(db_session, program) == []
    db_session.refresh(program)
    assert json.loads(program.exdates) == [MONDAY_14H.astimezone(dt.UTC).isoformat()]


def test_moving_one_occurrence(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    occurrence = monday_slots(db_session, program)[0].occurrence_start.isoformat()
    refused = auth.post(
        f"/planning/programs/{program.id}/occurrences/move",
        {"occurrence": occurrence, "new_day": "2026-11-01", "new_time": "10:00"},
    )
    assert refused.status_code == 422
    assert "futur" in field_error(text(refused), "new_day")
    moved = auth.post(
        f"/planning/programs/{program.id}/occurrences/move",
        {"occurrence": occurrence, "new_day": "2026-11-24", "new_time": "10:00"},
    )
    assert moved.status_code == 302
    tuesday = monday_slots(db_session, program, dt.datetime(2026, 11, 24, 10, tzinfo=PARIS))
    assert [s.starts_at.astimezone(PARIS).time() for s in tuesday] == [dt.time(10), dt.time(10, 15), dt.time(10, 30)]
    assert all(s.is_exception for s in tuesday)


def test_a_closure_removes_its_slots(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    refused = auth.post(
        f"/planning/programs/{program.id}/closures", {"first_day": "2026-11-30", "last_day": "2026-11-20"}
    )
    assert refused.status_code == 422 and "précède" in field_error(text(refused), "last_day")
    done = auth.post(
        f"/planning/programs/{program.id}/closures",
        {"first_day": "2026-11-20", "last_day": "2026-11-30", "reason": "Travaux"},
    )
    assert done.status_code == 302
    assert monday_slots(db_session, program) == []
    assert monday_slots(db_session, program, MONDAY_14H + dt.timedelta(days=14)) != []
    assert "Travaux" in text(auth.client.get(f"/planning/programs/{program.id}"))


def test_the_coordinator_stops_a_series(auth, db_session, coordinator, territory):
    program = created_program(db_session, auth, territory)
    appointment = book(db_session, territory, monday_slots(db_session, program)[0], patient=territory.patient)
    db_session.commit()
    url = f"/planning/programs/{program.id}"
    assert "1 rendez-vous réservé à venir sera annulé" in text(auth.client.get(url))
    refused = auth.post(f"{url}/cancel", {"reason": "  "})
    assert refused.status_code == 422
    assert field_error(text(refused), "reason") == "Ce champ est obligatoire."
    assert 'id="f-reason"' in text(refused) and "Arrêter la série" in text(refused)
    db_session.expire_all()
    assert program.is_active and count(db_session, Slot, Slot.program_id == program.id) == 3 * 12
    done = auth.post(f"{url}/cancel", {"reason": "Fin du partenariat avec le CH"})
    assert done.status_code == 302 and done.headers["Location"].endswith(url)
    shown = text(auth.client.get(url))
    assert "Série arrêtée ; 1 rendez-vous annulé(s)" in shown and "Cette série est arrêtée" in shown
    db_session.expire_all()
    assert not program.is_active
    assert db_session.get(Appointment, appointment.id).state is AppointmentState.CANCELLED
    assert count(db_session, Slot, Slot.program_id == program.id, Slot.state == SlotState.OPEN) == 0
    assert count(db_session, Slot, Slot.program_id == program.id) == 1, "only the booked slot stays, cancelled"
    assert "Arrêté" in text(auth.client.get("/planning/programs"))


# --- the week planner -------------------------------------------------------------------------------------


@pytest.fixture
def week_of_slots(db_session, territory):
    """The territory's program on Monday, Tuesday and Wednesday, ten slots a day."""
    program = territory.program
    program.rrule, program.slot_count = "FREQ=WEEKLY;BYDAY=MO,TU,WE", 10
    db_session.flush()
    generate_slots(db_session, program, now=NOW)
    start, end = MONDAY_14H.astimezone(dt.UTC), MONDAY_14H.astimezone(dt.UTC) + dt.timedelta(days=3)
    slots = list(
        db_session.scalars(
            select(Slot)
            .where(Slot.program_id == program.id, Slot.starts_at >= start, Slot.starts_at < end)
            .order_by(Slot.starts_at)
        )
    )
    assert len(slots) == 30
    return slots


def test_the_planner_shows_each_slot_state_and_the_idel(auth, db_session, coordinator, territory, week_of_slots):
    t = territory
    proposed = book(db_session, t, week_of_slots[0], patient=t.patient)
    confirmed = book(db_session, t, week_of_slots[3], idel=t.other_idel)
    appointments.confirm(db_session, t.other_idel_user, confirmed)
    declined = book(db_session, t, week_of_slots[12], idel=t.idel)
    appointments.decline(db_session, t.idel_user, declined, reason="Tournée complète ce jour-là")
    db_session.commit()
    page = text(auth.client.get("/planning?week=2026-11-25"))
    assert "semaine du lundi 23 novembre 2026" in page
    states = {int(slot_id): state for state, slot_id in re.findall(r'slot slot-(\w+)" id="creneau-(\d+)"', page)}
    assert states[week_of_slots[0].id] == "proposed" and states[week_of_slots[3].id] == "confirmed"
    assert states[week_of_slots[12].id] == "declined" and states[week_of_slots[1].id] == "free"
    assert len(states) == 30
    assert t.idel.full_name in page and t.other_idel.full_name in page
    assert "Refus : Tournée complète ce jour-là" in page
    assert "Proposé" in page and "Confirmé" in page and "Refusé par l'IDEL" in page
    assert page.count(">Réserver<") == 27
    assert f"/planning/appointments/{declined.id}#reaffecter" in page
    assert f"/planning/appointments/{proposed.id}#annuler" in page
    assert "lundi 23 novembre 2026" in page and "14 h 45" in page
    ids = re.findall(r' id="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "every id of the page is unique"


def test_the_planner_runs_a_constant_number_of_queries(
    auth,
    db_session,
    engine,
    coordinator,
    territory,
    week_of_slots,
):
    def statements() -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert auth.client.get("/planning?week=2026-11-23").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    for slot in week_of_slots[:3]:
        book(db_session, territory, slot, idel=factories.professional(db_session, territory.cpts, Profession.NURSE))
    db_session.commit()
    statements()  # warm-up: the first request of a session may touch it
    with_3 = statements()
    for slot in week_of_slots[3:]:
        book(db_session, territory, slot, idel=factories.professional(db_session, territory.cpts, Profession.NURSE))
    db_session.commit()
    with_30 = statements()
    assert count(db_session, Appointment) == 30
    assert with_3 == with_30, (with_3, with_30)


def test_the_planner_is_the_coordinators(auth, db_session, territory):
    auth.login(territory.idel_user)
    assert auth.client.get("/planning").status_code == 403
    assert auth.client.get(f"/planning/programs/{territory.program.id}").status_code == 403


def test_a_bad_week_is_reported_and_the_current_week_shown(auth, coordinator):
    response = auth.client.get("/planning?week=2026-13-01")
    assert response.status_code == 200
    assert "Date invalide" in field_error(text(response), "week")
    assert "semaine du lundi 16 novembre 2026" in text(response)


def test_the_week_s_schema_made_once_keeps_nothing_between_requests(auth, coordinator):
    """One schema object loads every request's week (hub.web.planning.WEEK_ARGS): a bad week's error is not shown
    on the next request, nor its week on one that asks for none."""
    assert "Date invalide" in field_error(text(auth.client.get("/planning?week=2026-13-01")), "week")
    asked = text(auth.client.get("/planning?week=2026-12-09"))
    assert "semaine du lundi 7 décembre 2026" in asked and "Date invalide" not in asked
    assert "semaine du lundi 16 novembre 2026" in text(auth.client.get("/planning"))


# --- booking, reassigning, cancelling ---------------------------------------------------------------------


def test_booking_a_patient_into_a_free_slot(auth, db_session, coordinator, territory, slot):
    page = text(auth.client.get(f"/planning/slots/{slot.id}/book?q={territory.patient.birth_name}"))
    assert territory.patient.display_name in page and "IDEL du patient (par défaut)" in page
    response = auth.post(
        f"/planning/slots/{slot.id}/book", {"patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/planning?week=2026-11-23")
    appointment = db_session.scalars(select(Appointment)).one()
    assert (appointment.state, appointment.accompanying_id) == (AppointmentState.PROPOSED, territory.idel.id)
    followed = text(auth.client.get(response.headers["Location"]))
    assert f"Rendez-vous proposé à {territory.idel.full_name}." in followed


def test_booking_without_a_patient_says_so_and_saves_nothing(auth, db_session, coordinator, territory, slot):
    response = auth.post(f"/planning/slots/{slot.id}/book", {"place_kind": "lieu_dedie"})
    assert response.status_code == 422
    assert field_error(text(response), "patient_id") == "Ce champ est obligatoire."
    assert count(db_session, Appointment) == 0


def test_booking_a_taken_slot_names_what_is_taken(auth, db_session, coordinator, territory, slot):
    book(db_session, territory, slot, idel=territory.other_idel)
    db_session.commit()
    response = auth.post(
        f"/planning/slots/{slot.id}/book", {"patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    )
    assert response.status_code == 409
    assert f"{territory.cardiologist.full_name} est déjà réservé(e) sur ce créneau" in text(response)
    assert count(db_session, Appointment) == 1


def test_a_slot_of_another_cpts_is_not_found(auth, db_session, coordinator):
    other = factories.cpts(db_session)
    foreign = factories.slot(db_session, factories.program(db_session, other), MONDAY_14H.astimezone(dt.UTC))
    db_session.commit()
    assert auth.client.get(f"/planning/slots/{foreign.id}/book").status_code == 404


def test_booking_refuses_a_foreign_slot_before_the_patient_and_audits_the_patient_s_denial(
    auth, db_session, coordinator, territory, slot
):
    """The page's POST reads as the API (workflows.appointments.requested_booking) and keeps its own order: the slot's
    404 first (no audit row), then the patient the coordinator may not edit (404, audited as the API's)."""
    other = factories.cpts(db_session)
    foreign = factories.slot(db_session, factories.program(db_session, other), MONDAY_14H.astimezone(dt.UTC))
    stranger = factories.patient(db_session, other)
    db_session.commit()
    # Audit rows outlive other tests (append-only): only this test's count.
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    form = {"patient_id": stranger.id, "place_kind": "lieu_dedie"}
    for slot_id in (foreign.id, 999_999):
        response = auth.post(f"/planning/slots/{slot_id}/book", form)
        assert response.status_code == 404
        assert "Créneau introuvable." in text(response)
    denials = select(AuditEvent).where(AuditEvent.action == "appointment.book", AuditEvent.id > audited_before)
    assert db_session.scalars(denials).all() == []
    response = auth.post(f"/planning/slots/{slot.id}/book", form)
    assert response.status_code == 404
    assert "Patient introuvable." in text(response)
    event = db_session.scalars(denials).one()
    assert (event.outcome, event.target_type, event.target_id) == ("denied", "patients", str(stranger.id))
    assert count(db_session, Appointment) == 0


def test_reassigning_the_idel_of_a_declined_visit(auth, db_session, coordinator, territory, slot):
    appointment = book(db_session, territory, slot, patient=territory.patient)
    appointments.decline(db_session, territory.idel_user, appointment, reason="En congés")
    db_session.commit()
    page = text(auth.client.get(f"/planning/appointments/{appointment.id}"))
    assert "En congés" in page and "Réaffecter l'IDEL" in page
    refused = auth.post(f"/planning/appointments/{appointment.id}/reassign", {})
    assert refused.status_code == 422 and field_error(text(refused), "accompanying_id") == "Ce champ est obligatoire."
    done = auth.post(f"/planning/appointments/{appointment.id}/reassign", {"accompanying_id": territory.other_idel.id})
    assert done.status_code == 302
    db_session.refresh(appointment)
    assert (appointment.state, appointment.accompanying_id) == (AppointmentState.PROPOSED, territory.other_idel.id)


def test_cancelling_an_appointment_needs_a_reason(auth, db_session, coordinator, territory, slot):
    appointment = book(db_session, territory, slot, patient=territory.patient)
    db_session.commit()
    refused = auth.post(f"/planning/appointments/{appointment.id}/cancel", {"reason": "  "})
    assert refused.status_code == 422
    assert field_error(text(refused), "reason") == "Ce champ est obligatoire."
    db_session.refresh(appointment)
    assert appointment.state is AppointmentState.PROPOSED
    assert auth.post(f"/planning/appointments/{appointment.id}/cancel", {"reason": "Hospitalisé"}).status_code == 302
    db_session.refresh(appointment)
    assert (appointment.state, appointment.cancel_reason) == (AppointmentState.CANCELLED, "Hospitalisé")


def test_forms_refuse_a_missing_csrf_token(auth, db_session, coordinator, territory, slot):
    response = auth.client.post(
        f"/planning/slots/{slot.id}/book", data={"patient_id": territory.patient.id, "place_kind": "lieu_dedie"}
    )
    assert response.status_code == 400
    assert (
        auth.client.get(
            f"/planning/slots/{slot.id}/book", query_string={"patient_id": territory.patient.id}
        ).status_code
        == 200
    )
    assert count(db_session, Appointment) == 0


def test_a_cancelled_occurrence_shows_in_the_planner(auth, db_session, coordinator, territory, slot):
    appointment = book(db_session, territory, slot, patient=territory.patient)
    db_session.commit()
    from workflows import programs

    programs.cancel_occurrence(
        db_session, territory.coordinator, territory.program, occurrence_start=slot.occurrence_start, reason="Grève"
    )
    db_session.commit()
    db_session.refresh(slot)
    assert slot.state is SlotState.CANCELLED
    assert db_session.get(Appointment, appointment.id).state is AppointmentState.CANCELLED
    assert "Séance annulée" in text(auth.client.get("/planning?week=2026-11-23"))
