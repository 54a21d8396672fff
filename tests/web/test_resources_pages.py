"""Issue 11, item 2: « Matériel et lieux » on the coordination's pages. Kits, rooms and dedicated teleconsultation
places are created, edited and retired; each shows its programs and its bookings; a resource that still serves is
not retired; a retired one keeps its history, cannot be assigned to a program, and every appointment names the kit
and the place it holds."""

import datetime as dt
import json
import re

import pytest
from sqlalchemy import event, select

from hub.models import AuditEvent, Profession, Resource, ResourceKind, Role
from tests import factories
from tests.factories import MONDAY_14H, PROGRAM_FORM
from tests.web.test_planning_pages import book, count, field_error, field_errors, text
from workflows import appointments, programs

pytestmark = pytest.mark.usefixtures("clock")


@pytest.fixture
def coordinator(auth, territory):
    auth.login(territory.coordinator)
    return territory.coordinator


@pytest.fixture
def equipped(db_session, territory):
    """The territory's Monday program with its connected ECG case and its dedicated teleconsultation place."""
    kit = factories.resource(db_session, territory.cpts, name="Mallette ECG connectée n° 1")
    place = factories.resource(
        db_session,
        territory.cpts,
        ResourceKind.DEDICATED_PLACE,
        name="Cabine de téléconsultation de la MSP",
        address="2 rue des Tilleuls, Thiviers",
    )
    territory.program.kit_id, territory.program.room_id = kit.id, place.id
    territory.program.slot_interval_minutes = 60  # the kit is held an hour (accompaniment included)
    db_session.commit()
    return kit, place


def monday_slot(db_session, territory, minutes: int = 0):
    return factories.slot(
        db_session, territory.program, (MONDAY_14H + dt.timedelta(minutes=minutes)).astimezone(dt.UTC)
    )


def plain(page: str) -> str:
    """The page's text as read: without its tags, its spaces collapsed."""
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def audited(db_session, action: str) -> list[AuditEvent]:
    return list(db_session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


# --- creating, editing -------------------------------------------------------------------------------------


def test_a_kit_is_added_from_the_page_and_listed_under_its_kind(auth, db_session, coordinator, territory):
    form = text(auth.client.get("/resources/new"))
    assert "Lieu dédié à la téléconsultation" in form and 'name="address"' in form
    response = auth.post(
        "/resources/new",
        {"kind": "kit", "name": "Mallette ECG connectée n° 2", "description": "ECG 12 dérivations, tensiomètre"},
    )
    assert response.status_code == 302, field_errors(text(response))
    kit = db_session.scalars(select(Resource).where(Resource.name == "Mallette ECG connectée n° 2")).one()
    assert (kit.kind, kit.cpts_id, kit.is_active, kit.description) == (
        ResourceKind.KIT,
        territory.cpts.id,
        True,
        "ECG 12 dérivations, tensiomètre",
    )
    assert response.headers["Location"].endswith(f"/resources/{kit.id}")
    assert [e.target_id for e in audited(db_session, "resource.create")] == [str(kit.id)]
    page = text(auth.client.get("/resources"))
    materiel = page[page.index('id="section-kit"') : page.index('id="section-room"')]
    assert "Mallette ECG connectée n° 2" in materiel


def test_a_form_with_errors_is_shown_again_and_nothing_is_saved(auth, db_session, coordinator, territory):
    foreign = factories.organisation(db_session, factories.cpts(db_session))
    db_session.commit()
    response = auth.post("/resources/new", {"name": "X", "organisation_id": foreign.id})
    assert response.status_code == 422
    errors = field_errors(text(response))
    assert errors["kind"] == "Ce champ est obligatoire."
    assert errors["name"] == "Entre 2 et 120 caractères."
    response = auth.post("/resources/new", {"kind": "room", "name": "Salle 1", "organisation_id": foreign.id})
    assert field_error(text(response), "organisation_id") == "Structure inconnue dans la CPTS."
    assert count(db_session, Resource) == 0


def test_two_resources_in_service_cannot_share_a_name(auth, db_session, coordinator, territory):
    factories.resource(db_session, territory.cpts, name="Mallette ECG connectée n° 1")
    db_session.commit()
    response = auth.post("/resources/new", {"kind": "kit", "name": "mallette ECG connectée n° 1"})
    assert response.status_code == 422
    assert field_error(text(response), "name") == "Un matériel ou lieu en service porte déjà ce nom."


def test_editing_a_resource_keeps_its_kind(auth, db_session, coordinator, territory, equipped):
    kit, _place = equipped
    edit = text(auth.client.get(f"/resources/{kit.id}/edit"))
    assert 'value="Mallette ECG connectée n° 1"' in edit and 'name="kind"' not in edit
    response = auth.post(
        f"/resources/{kit.id}/edit",
        {"name": "Mallette ECG n° 1 (CH Périgueux)", "address": "Service de cardiologie", "kind": "room"},
    )
    assert response.status_code == 302
    db_session.refresh(kit)
    assert (kit.name, kit.address, kit.kind) == ("Mallette ECG n° 1 (CH Périgueux)", "Service de cardiologie", "kit")
    assert json.loads(audited(db_session, "resource.update")[-1].details) == {"fields": ["address", "name"]}


# --- what each one serves ------------------------------------------------------------------------------------


def test_the_list_shows_each_resources_programs_and_next_bookings(auth, db_session, coordinator, territory, equipped):
    kit, _place = equipped
    first = book(db_session, territory, monday_slot(db_session, territory), patient=territory.patient)
    db_session.commit()
    page = text(auth.client.get("/resources"))
    card = page[page.index(f'id="ressource-{kit.id}"') :]
    card = card[: card.index("</article>")]
    assert territory.program.name in card and f"/planning/programs/{territory.program.id}" in card
    assert "Prochains rendez-vous (1) : lundi 23 novembre 2026, 13 h 40 – 14 h 40" in plain(card)
    assert f"/planning/appointments/{first.id}" in card
    assert territory.patient.display_name not in page  # the equipment's page names no patient
    places = page[page.index('id="section-dedicated_place"') : page.index('id="retires"')]
    assert "Cabine de téléconsultation de la MSP" in places and "2 rue des Tilleuls, Thiviers" in places


def test_the_list_runs_a_constant_number_of_queries(auth, db_session, engine, coordinator, territory, equipped):
    def statements() -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert auth.client.get("/resources").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    book(db_session, territory, monday_slot(db_session, territory))
    db_session.commit()
    statements()  # warm-up: the first request of a session may touch it
    with_one = statements()
    for hours in (1, 2, 3):
        book(db_session, territory, monday_slot(db_session, territory, 60 * hours))
    for n in range(4):
        factories.resource(db_session, territory.cpts, ResourceKind.ROOM, name=f"Salle {n}")
    db_session.commit()
    assert statements() == with_one


# --- retiring ------------------------------------------------------------------------------------------------


def test_a_resource_still_serving_is_not_retired(auth, db_session, coordinator, territory, equipped):
    kit, _place = equipped
    book(db_session, territory, monday_slot(db_session, territory))
    db_session.commit()
    page = text(auth.client.get(f"/resources/{kit.id}"))
    assert "le retrait est refusé" in page and "À faire avant de le retirer" in page
    response = auth.post(f"/resources/{kit.id}/retire")
    assert response.status_code == 422
    refusal = re.search(r'<div class="alert alert-danger" role="alert" id="erreurs">([^<]*)</div>', text(response))
    assert refusal is not None
    assert refusal.group(1) == (
        f"« Mallette ECG connectée n° 1 » ne peut pas être retiré(e) : le programme « {territory.program.name} » "
        "l'utilise et 1 rendez-vous à venir le réserve. D'abord, choisissez un autre matériel ou lieu pour ce "
        "programme (« Modifier toute la série ») ou arrêtez-le ; les rendez-vous déjà pris le gardent : annulez-les, "
        "ou attendez qu'ils soient passés."
    )
    db_session.refresh(kit)
    assert kit.is_active and kit.retired_at is None
    assert audited(db_session, "resource.retire") == []


def test_a_retired_kit_keeps_its_history_and_is_listed_apart(auth, db_session, clock, coordinator, territory, equipped):
    kit, _place = equipped
    done = book(db_session, territory, monday_slot(db_session, territory), patient=territory.patient)
    clock.move_to(MONDAY_14H + dt.timedelta(days=1))
    programs.update_series(db_session, territory.coordinator, territory.program, {"kit_id": None})
    auth.login(territory.coordinator)  # a week later: signed in again
    response = auth.post(f"/resources/{kit.id}/retire")
    assert response.status_code == 302
    db_session.refresh(kit)
    assert not kit.is_active and kit.retired_at is not None
    assert [e.target_id for e in audited(db_session, "resource.retire")] == [str(kit.id)]
    page = text(auth.client.get(f"/resources/{kit.id}"))
    assert "est retiré(e) du service ; son historique reste consultable." in page
    history = page[page.index('id="historique"') :]
    assert "Historique (1)" in history and f"/planning/appointments/{done.id}" in history
    listed = text(auth.client.get("/resources"))
    assert "Mallette ECG connectée n° 1" in listed[listed.index('id="retires"') :]
    assert "Mallette ECG connectée n° 1" not in listed[: listed.index('id="retires"')]


def test_a_retired_kit_cannot_be_assigned_to_a_program(auth, db_session, coordinator, territory, equipped):
    kit, place = equipped
    kit.is_active, kit.retired_at = False, factories.now()
    foreign = factories.resource(db_session, factories.cpts(db_session))
    db_session.commit()
    form = PROGRAM_FORM | {"performer_id": territory.cardiologist.id, "slot_interval_minutes": "60"}
    new_form = text(auth.client.get("/planning/programs/new"))
    assert "Mallette ECG connectée n° 1" not in new_form
    assert "Cabine de téléconsultation de la MSP — Lieu dédié à la téléconsultation" in new_form
    response = auth.post("/planning/programs/new", form | {"kit_id": kit.id})
    assert response.status_code == 422
    assert (
        field_error(text(response), "kit_id")
        == "« Mallette ECG connectée n° 1 » est retiré : choisissez un matériel en service."
    )
    response = auth.post("/planning/programs/new", form | {"kit_id": foreign.id})
    assert field_error(text(response), "kit_id") == "Matériel inconnu dans la CPTS."
    response = auth.post("/planning/programs/new", form | {"kit_id": place.id, "room_id": kit.id})
    errors = field_errors(text(response))
    assert errors["kit_id"] == "Choisissez du matériel, pas une salle ou un lieu."
    assert errors["room_id"] == "Choisissez une salle ou un lieu dédié, pas du matériel."


# --- the kit and the place, named where the appointment is shown -----------------------------------------------


def test_program_and_appointment_pages_name_the_kit_and_the_place(auth, db_session, coordinator, territory, equipped):
    kit, place = equipped
    program_page = text(auth.client.get(f"/planning/programs/{territory.program.id}"))
    assert (
        f'<a href="/resources/{kit.id}">Mallette ECG connectée n° 1</a> (Matériel (mallette connectée…))'
        in program_page
    )
    assert f'<a href="/resources/{place.id}">Cabine de téléconsultation de la MSP</a>' in program_page
    appointment = book(db_session, territory, monday_slot(db_session, territory), patient=territory.patient)
    db_session.commit()
    page = text(auth.client.get(f"/planning/appointments/{appointment.id}"))
    assert "Matériel réservé" in page and "Mallette ECG connectée n° 1" in page
    assert "Cabine de téléconsultation de la MSP" in page


def test_the_idels_agenda_and_visits_name_the_kit_and_the_place(auth, db_session, territory, equipped):
    appointment = book(db_session, territory, monday_slot(db_session, territory), patient=territory.patient)
    db_session.commit()
    auth.login(territory.idel_user)
    visits = text(auth.client.get("/visits"))
    assert "(Cabine de téléconsultation de la MSP)" in visits
    assert "matériel à prévoir : Mallette ECG connectée n° 1" in visits
    appointments.confirm(db_session, territory.idel_user, appointment)
    db_session.commit()
    agenda = text(auth.client.get("/agenda?day=2026-11-23"))
    assert "Cabine de téléconsultation de la MSP" in agenda and "Matériel : Mallette ECG connectée n° 1" in agenda


# --- who reaches them ------------------------------------------------------------------------------------------


def test_the_coordination_reaches_them_from_the_planning_and_home(auth, coordinator):
    assert 'href="/resources">Matériel et lieux</a>' in text(auth.client.get("/planning/programs"))
    assert 'href="/resources">Gérer le matériel et les lieux</a>' in text(auth.client.get("/"))


def test_the_admin_manages_them_the_idel_does_not(auth, db_session, cpts, territory, equipped):
    kit, _place = equipped
    admin = factories.user(db_session, cpts, Role.ADMIN)
    auth.login(admin)
    assert 'href="/resources">Matériel et lieux</a>' in text(auth.client.get("/"))
    page = text(auth.client.get(f"/resources/{kit.id}"))
    assert "Mallette ECG connectée n° 1" in page and "/planning/" not in page  # no planning for the admin
    auth.login(factories.clinician(db_session, cpts, Profession.NURSE))
    assert auth.client.get("/resources").status_code == 403


def test_another_cptss_resource_is_not_found(auth, db_session, coordinator):
    foreign = factories.resource(db_session, factories.cpts(db_session))
    db_session.commit()
    assert auth.client.get(f"/resources/{foreign.id}").status_code == 404
    assert auth.post(f"/resources/{foreign.id}/retire").status_code == 404
    db_session.refresh(foreign)
    assert foreign.is_active
