"""« Mes visites » (confirm or decline in one action, the day's HAS checklist) and « Mon agenda »."""

import datetime as dt
import html
import re

import pytest
from sqlalchemy import select

from hub.models import (
    AppointmentState,
    AuditEvent,
    PlaceKind,
    Profession,
    Referral,
    ReferralState,
    Role,
    VisitOffer,
    VisitOfferState,
)
from tests import factories
from tests.factories import MONDAY_14H, PARIS
from tests.queries import count_queries
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")

CHECK_IN = {
    "identity_method": "document",
    "patient_location": "Cabinet infirmier de Vergt",
    "callback_phone": "0612345678",
}
CHECKLIST = {"camera": "true", "sound": "true", "light": "true", "privacy": "true"}


@pytest.fixture
def idel(auth, territory):
    auth.login(territory.idel_user)
    return territory.idel_user


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def field_error(body: str, name: str) -> str:
    found = re.search(rf'<div class="field-error" id="e-{re.escape(name)}">([^<]*)</div>', body)
    return html.unescape(found.group(1)) if found else ""


def test_the_idel_sees_the_offered_visit_and_confirms_it_in_one_action(auth, db_session, territory, visit, idel):
    page = text(auth.client.get("/visits"))
    assert "Visites à confirmer (1)" in page
    assert "lundi 23 novembre 2026, 14 h 00" in page and territory.patient.display_name in page
    assert "votre présence de 13 h 40 à 14 h 40" in page
    response = auth.post(f"/visits/{visit.id}/confirm")
    assert response.status_code == 302 and response.headers["Location"] == f"/visits/{visit.id}"
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CONFIRMED
    assert "Visite confirmée. Merci !" in text(auth.client.get(f"/visits/{visit.id}"))
    page = text(auth.client.get("/visits"))
    assert "Visites à confirmer (0)" in page
    assert "Prochaines visites confirmées" in page and territory.patient.display_name in page


def test_a_decline_needs_a_reason_shown_next_to_the_field(auth, db_session, territory, visit, idel):
    refused = auth.post(f"/visits/{visit.id}/decline", {"reason": " "})
    assert refused.status_code == 422
    assert field_error(text(refused), "reason") == "Ce champ est obligatoire."
    db_session.refresh(visit)
    assert visit.state is AppointmentState.PROPOSED
    assert auth.post(f"/visits/{visit.id}/decline", {"reason": "Tournée complète ce lundi"}).status_code == 302
    db_session.refresh(visit)
    assert (visit.state, visit.declined_reason) == (AppointmentState.DECLINED, "Tournée complète ce lundi")
    offer = db_session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == visit.id)).one()
    assert offer.state is VisitOfferState.DECLINED


def test_confirmation_without_consent_is_explained(auth, db_session, territory, idel):
    patient = factories.patient(db_session, territory.cpts, commune_insee="24571")
    factories.in_care_team(db_session, patient, territory.idel)
    factories.eligible_for_remote_care(db_session, patient, assessed_by=territory.coordinator)
    slot = factories.slot(db_session, territory.program, MONDAY_14H.astimezone(dt.UTC))
    visit = appointments.book(
        db_session, territory.coordinator, slot=slot, patient=patient, place_kind=PlaceKind.DEDICATED_PLACE
    )
    db_session.commit()
    response = auth.post(f"/visits/{visit.id}/confirm")
    assert response.status_code == 422
    assert "consentement du patient à la télésanté n'est pas enregistré" in text(response)
    db_session.refresh(visit)
    assert visit.state is AppointmentState.PROPOSED


def test_the_days_checklist(auth, db_session, territory, visit, idel, clock):
    appointments.confirm(db_session, territory.idel_user, visit)
    db_session.commit()
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=20))
    auth.login(territory.idel_user)  # a week later: the earlier session has expired
    page = text(auth.client.get("/visits"))
    assert "Visites du jour — lundi 23 novembre 2026" in page and f'href="/visits/{visit.id}"' in page
    page = text(auth.client.get(f"/visits/{visit.id}"))
    assert "Accueil du patient" in page and "Liste de vérification avant la séance (HAS)" in page

    refused = auth.post(f"/visits/{visit.id}/check-in", {"patient_location": "Cabinet"})
    assert refused.status_code == 422
    body = text(refused)
    assert "comment l'identité a été vérifiée" in field_error(body, "identity_method")
    assert "rappeler le patient" in field_error(body, "callback_phone")
    assert 'value="Cabinet"' in body, "what was typed is shown again"
    ids = re.findall(r' id="([^"]+)"', body)
    assert len(ids) == len(set(ids)), "every id of the page is unique"
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CONFIRMED and visit.identity_checked_at is None

    refused = auth.post(f"/visits/{visit.id}/checklist", {"camera": "true", "sound": "true"})
    assert refused.status_code == 422
    assert field_error(text(refused), "light") == "À cocher : éclairage suffisant."
    assert auth.post(f"/visits/{visit.id}/checklist", CHECKLIST).status_code == 302
    assert auth.post(f"/visits/{visit.id}/check-in", CHECK_IN).status_code == 302
    db_session.refresh(visit)
    assert (visit.state, visit.identity_check_method, visit.identity_checked_by_user_id) == (
        AppointmentState.CHECKED_IN,
        "document",
        territory.idel_user.id,
    )
    early = auth.post(f"/visits/{visit.id}/complete")
    assert early.status_code == 422 and "pas encore commencé" in text(early)
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=15))
    auth.login(territory.idel_user)
    assert auth.post(f"/visits/{visit.id}/complete").status_code == 302
    db_session.refresh(visit)
    assert visit.state is AppointmentState.DONE


def test_the_session_done_on_the_page_completes_its_referral(auth, db_session, territory, visit, idel, clock):
    gp = factories.professional(db_session, territory.cpts, Profession.GENERAL_PRACTITIONER)
    referral = Referral(
        cpts_id=visit.cpts_id,
        patient_id=visit.patient_id,
        author_id=gp.id,
        created_by_user_id=territory.coordinator.id,
        reason="Dyspnée d'effort",
        state=ReferralState.SCHEDULED,
        appointment_id=visit.id,
    )
    db_session.add(referral)
    appointments.confirm(db_session, territory.idel_user, visit)
    db_session.commit()
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=20))
    auth.login(territory.idel_user)
    assert auth.post(f"/visits/{visit.id}/checklist", CHECKLIST).status_code == 302
    assert auth.post(f"/visits/{visit.id}/check-in", CHECK_IN).status_code == 302
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=15))
    auth.login(territory.idel_user)
    assert auth.post(f"/visits/{visit.id}/complete").status_code == 302
    db_session.refresh(referral)
    assert referral.state is ReferralState.DONE


def test_degraded_mode_and_no_show(auth, db_session, territory, visit, idel, clock):
    appointments.confirm(db_session, territory.idel_user, visit)
    db_session.commit()
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=20))
    auth.login(territory.idel_user)
    early = auth.post(f"/visits/{visit.id}/no-show")
    assert early.status_code == 422 and "après l'heure du rendez-vous" in text(early)
    auth.post(f"/visits/{visit.id}/check-in", CHECK_IN)
    refused = auth.post(f"/visits/{visit.id}/degrade", {})
    assert refused.status_code == 422 and field_error(text(refused), "reason") == "Ce champ est obligatoire."
    assert auth.post(f"/visits/{visit.id}/degrade", {"reason": "Vidéo coupée, suite au téléphone"}).status_code == 302
    db_session.refresh(visit)
    assert visit.state is AppointmentState.DEGRADED


def test_no_show_after_the_start(auth, db_session, territory, visit, idel, clock):
    appointments.confirm(db_session, territory.idel_user, visit)
    db_session.commit()
    clock.move_to(MONDAY_14H + dt.timedelta(minutes=10))
    auth.login(territory.idel_user)
    assert auth.post(f"/visits/{visit.id}/no-show").status_code == 302
    db_session.refresh(visit)
    assert (visit.state, visit.no_show_recorded_by_user_id) == (AppointmentState.NO_SHOW, territory.idel_user.id)


def test_an_idel_with_no_offer_gets_404_and_the_denial_is_audited(auth, db_session, territory, visit):
    auth.login(territory.other_idel_user)
    assert territory.patient.display_name not in text(auth.client.get("/visits"))
    assert auth.post(f"/visits/{visit.id}/confirm").status_code == 404
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (event.action, event.outcome, event.target_id) == ("appointment.confirm", "denied", str(visit.id))
    db_session.refresh(visit)
    assert visit.state is AppointmentState.PROPOSED


def test_visit_forms_refuse_a_missing_csrf_token(auth, db_session, visit, idel):
    assert auth.client.post(f"/visits/{visit.id}/confirm").status_code == 400
    assert auth.client.get(f"/visits/{visit.id}/confirm").status_code == 405
    db_session.refresh(visit)
    assert visit.state is AppointmentState.PROPOSED


def test_an_admin_has_no_visits(auth, db_session, cpts):
    auth.login(factories.user(db_session, cpts, Role.ADMIN))
    assert auth.client.get("/visits").status_code == 403
    assert auth.client.get("/agenda").status_code == 403


def test_navigation_by_role(auth, territory):
    auth.login(territory.idel_user)
    page = text(auth.client.get("/"))
    assert "Mes visites" in page and "Mon agenda" in page and "Planning" not in page
    auth.login(territory.coordinator)
    page = text(auth.client.get("/"))
    assert "Planning" in page and "Mes visites" not in page


# --- Mon agenda -------------------------------------------------------------------------------------------


def test_the_agenda_by_day_and_by_week(auth, db_session, territory, visit):
    auth.login(territory.idel_user)
    day = text(auth.client.get("/agenda?day=2026-11-23"))
    assert "Mon agenda — lundi 23 novembre 2026" in day
    assert territory.patient.display_name in day and "13 h 40 – 14 h 40" in day and "Accompagnement" in day
    assert territory.patient.display_name not in text(auth.client.get("/agenda?day=2026-11-24"))
    week = text(auth.client.get("/agenda?day=2026-11-25&view=week"))
    assert "semaine du lundi 23 novembre 2026" in week and territory.patient.display_name in week
    assert "dimanche 29 novembre 2026" in week
    cardiologist = factories.user(
        db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist
    )
    auth.login(cardiologist)
    assert "14 h 00 – 14 h 15" in text(auth.client.get("/agenda?day=2026-11-23"))
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert event.action == "agenda.read"


@pytest.mark.parametrize("day", [dt.date(2026, 3, 29), dt.date(2026, 10, 25)])
def test_the_agenda_of_a_dst_day_holds_that_local_day(auth, db_session, territory, clock, day):
    """T10 in the page: 23 h and 25 h days, appointments at 00:30 and 23:30 local."""
    clock.move_to(dt.datetime.combine(day - dt.timedelta(days=7), dt.time(9), tzinfo=PARIS))
    patients = [
        factories.consenting_patient(db_session, territory.cpts, recorded_by=territory.coordinator) for _ in range(4)
    ]
    times = [
        dt.datetime.combine(day - dt.timedelta(days=1), dt.time(23, 30), tzinfo=PARIS),
        dt.datetime.combine(day, dt.time(0, 30), tzinfo=PARIS),
        dt.datetime.combine(day, dt.time(23, 30), tzinfo=PARIS),
        dt.datetime.combine(day + dt.timedelta(days=1), dt.time(0, 30), tzinfo=PARIS),
    ]
    for patient, start in zip(patients, times, strict=True):
        slot = factories.slot(db_session, territory.program, start.astimezone(dt.UTC))
        appointments.book(
            db_session,
            territory.coordinator,
            slot=slot,
            patient=patient,
            place_kind=PlaceKind.DEDICATED_PLACE,
            accompanying=None,
        )
    db_session.commit()
    cardiologist = factories.user(
        db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist
    )
    auth.login(cardiologist)
    page = text(auth.client.get(f"/agenda?day={day.isoformat()}"))
    shown = [p for p in patients if p.display_name in page]
    assert shown == patients[1:3]


def test_the_visits_cost_the_same_queries_for_one_patient_or_five(auth, db_session, engine, territory):
    """Each card says whether the patient's telehealth consent is missing: the consents come with the patients,
    not one query per card."""

    def listed(patients: int) -> int:
        for hour in range(patients):
            patient = factories.patient(db_session, territory.cpts, commune_insee="24571")
            factories.in_care_team(db_session, patient, territory.idel)
            factories.eligible_for_remote_care(db_session, patient, assessed_by=territory.coordinator)
            factories.visit(
                db_session, territory, MONDAY_14H + dt.timedelta(days=patients, hours=hour), patient_row=patient
            )
        db_session.commit()
        auth.login(territory.idel_user)
        with count_queries(engine) as seen:
            assert auth.client.get("/visits").status_code == 200
        return len(seen)

    assert listed(5) == listed(1)
