"""The IDEL's own visit page (where to go, whom to call, what for, what to bring; consent inline, one-tap answer,
the HAS checklist before the start, « Séance terminée » after it), the visits done, the day sheet, and the agenda's
rows leading to the visit."""

import datetime as dt

import pytest
from sqlalchemy import select, update

from hub.documents import store
from hub.http.request import db
from hub.models import (
    Appointment,
    AppointmentState,
    AttachmentKind,
    AuditEvent,
    ConsentKind,
    PlaceKind,
    ReferralAttachment,
    ReferralState,
    ResourceKind,
    VisitOffer,
    VisitOfferState,
)
from hub.services import identity
from hub.web import pages
from tests import factories
from tests.factories import MONDAY_14H
from tests.web.test_visits_pages import CHECK_IN, CHECKLIST, field_error, text
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")

ADDRESS = "12 rue des Écoles, 24380 Vergt"


@pytest.fixture
def home_visit(db_session, territory, uploads):
    """A home visit for the territory's patient (address, phone, a mother to call), booked for a GP's referral with
    a biology prescription attached, the program's connected ECG case to bring."""
    t = territory
    t.patient.address = ADDRESS
    t.patient.legal_representative_name = "Mme Durand"
    t.patient.legal_representative_phone = "+33 5 53 00 00 01"
    t.program.kit_id = factories.resource(
        db_session, t.cpts, ResourceKind.KIT, name="Mallette ECG connectée", description="ECG 12 dérivations, tablette"
    ).id
    visit = factories.visit(db_session, t, place_kind=PlaceKind.HOME)
    gp = factories.clinician(db_session, t.cpts, factories.Profession.GENERAL_PRACTITIONER)
    referral = factories.referral(
        db_session,
        t.patient,
        author=gp,
        state=ReferralState.SCHEDULED,
        appointment_id=visit.id,
        reason="Essoufflement à l'effort depuis un mois",
        needs='["mobilité réduite"]',
    )
    stored = store.store_upload(uploads, b"%PDF-1.4 ordonnance", "bilan.pdf", max_bytes=1024)
    db_session.add(
        ReferralAttachment(
            referral_id=referral.id, kind=AttachmentKind.BIOLOGY_PRESCRIPTION, uploaded_by_user_id=gp.id, **stored
        )
    )
    db_session.commit()
    return visit


def test_the_idel_opens_her_visit_with_all_she_needs_for_it(auth, db_session, territory, home_visit):
    auth.login(territory.idel_user)
    listing = text(auth.client.get("/visits"))
    assert f'href="/visits/{home_visit.id}"' in listing
    response = auth.client.get(f"/visits/{home_visit.id}")
    assert response.status_code == 200
    page = text(response)
    assert "Votre présence : <strong>de 13 h 40 à 14 h 40</strong>" in response.get_data(as_text=True)
    assert ADDRESS in page
    assert 'href="https://www.openstreetmap.org/search?query=12+rue+des+%C3%89coles%2C+24380+Vergt"' in page
    assert 'href="tel:+33612345678">06 12 34 56 78</a>' in page
    assert 'href="tel:+33553000001">05 53 00 00 01</a>' in page and "Mme Durand" in page
    assert "Essoufflement à l'effort depuis un mois" in page and "mobilité réduite" in page
    assert "Ordonnance de bilan biologique</a>" in page and "biology_prescription" not in page
    assert "Mallette ECG connectée" in page and "ECG 12 dérivations, tablette" in page
    assert "Confirmer la visite" in page and "Refuser la visite" in page
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (event.action, event.target_id) == ("appointment.read", str(home_visit.id))


def test_another_idel_does_not_see_the_visit(auth, db_session, territory, home_visit):
    auth.login(territory.other_idel_user)
    assert auth.client.get(f"/visits/{home_visit.id}").status_code == 404
    event = db_session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (event.action, event.outcome) == ("appointment.read", "denied")


def test_an_idel_the_visit_is_only_offered_to_sees_when_and_where_not_the_record(
    auth, db_session, territory, home_visit
):
    """The second round asks several IDELs at once: until one accepts, none of them reads the patient's address,
    phones, reason or letter, nor writes a consent to the record."""
    t = territory
    t.other_idel.served_communes = t.patient.commune_insee
    db_session.add(
        VisitOffer(
            appointment_id=home_visit.id,
            professional_id=t.other_idel.id,
            round=2,
            state=VisitOfferState.PENDING,
            offered_at=factories.now(),
        )
    )
    db_session.commit()
    auth.login(t.other_idel_user)
    response = auth.client.get(f"/visits/{home_visit.id}")
    assert response.status_code == 200
    page = text(response)
    assert "Confirmer la visite" in page and "s'affichent quand vous l'acceptez" in page
    for private in (ADDRESS, "06 12 34 56 78", "Mme Durand", "Essoufflement", "Ordonnance de bilan biologique"):
        assert private not in page, private
    assert auth.client.get(f"/referrals/appointments/{home_visit.id}/letter.pdf").status_code == 404
    assert auth.post(f"/visits/{home_visit.id}/consent", {"method": "oral"}).status_code == 404


def test_the_missing_consent_is_recorded_on_the_page_then_the_visit_confirmed(auth, db_session, territory):
    patient = factories.patient(db_session, territory.cpts, commune_insee="24571", phone="0612345678")
    factories.in_care_team(db_session, patient, territory.idel)
    factories.eligible_for_remote_care(db_session, patient, assessed_by=territory.coordinator)
    visit = factories.visit(db_session, territory, patient_row=patient)
    db_session.commit()
    auth.login(territory.idel_user)
    assert "Consentement à la télésanté à recueillir" in text(auth.client.get("/visits"))
    refused = auth.post(f"/visits/{visit.id}/confirm")
    assert refused.status_code == 422
    body = text(refused)
    assert "consentement du patient à la télésanté n'est pas enregistré" in body
    assert "Recueillir le consentement" in body, "the consent form is right there"
    recorded = auth.post(f"/visits/{visit.id}/consent", {"method": "oral"})
    assert recorded.status_code == 302 and recorded.headers["Location"] == f"/visits/{visit.id}"
    db_session.refresh(patient)
    assert identity.has_valid_consent(patient, ConsentKind.TELEHEALTH)
    assert auth.post(f"/visits/{visit.id}/confirm").status_code == 302
    db_session.refresh(visit)
    assert visit.state is AppointmentState.CONFIRMED


def test_the_checklist_before_the_start_and_the_end_after_it(auth, db_session, territory, home_visit, clock):
    appointments.confirm(db_session, territory.idel_user, home_visit)
    db_session.commit()
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=30))
    auth.login(territory.idel_user)
    page = text(auth.client.get(f"/visits/{home_visit.id}"))
    assert "À remplir et enregistrer avant de commencer la séance (14 h 00)" in page
    assert "Un adulte accompagne" not in page, "asked only for a minor"
    refused = auth.post(f"/visits/{home_visit.id}/checklist", {"camera": "true"})
    assert refused.status_code == 422 and field_error(text(refused), "privacy") == "À cocher : confidentialité assurée."
    db_session.refresh(home_visit)
    assert home_visit.checklist_saved_at is None
    assert auth.post(f"/visits/{home_visit.id}/checklist", CHECKLIST).status_code == 302
    page = text(auth.client.get(f"/visits/{home_visit.id}"))
    assert "Enregistrée le lundi 23 novembre 2026, 13 h 30" in page
    assert f'value="{ADDRESS}"' in page and 'value="0612345678"' in page, "the check-in is pre-filled"
    assert auth.post(f"/visits/{home_visit.id}/check-in", CHECK_IN).status_code == 302
    early = auth.post(f"/visits/{home_visit.id}/complete")
    assert early.status_code == 422 and "pas encore commencé" in text(early)
    db_session.refresh(home_visit)
    assert home_visit.state is AppointmentState.CHECKED_IN

    clock.move_to(MONDAY_14H + dt.timedelta(minutes=20))
    auth.login(territory.idel_user)
    assert auth.post(f"/visits/{home_visit.id}/complete").status_code == 302
    db_session.refresh(home_visit)
    assert home_visit.state is AppointmentState.DONE
    done = text(auth.client.get("/visits/done"))
    assert territory.patient.display_name in done and "lundi 23 novembre 2026, 14 h 00" in done
    assert f'href="/visits/{home_visit.id}"' in done
    assert "Liste de vérification enregistrée le lundi 23 novembre 2026, 13 h 30" in text(
        auth.client.get(f"/visits/{home_visit.id}")
    )


@pytest.mark.parametrize("verb, form", [("check-in", CHECK_IN), ("checklist", CHECKLIST)])
def test_a_visit_cancelled_after_the_page_read_it_is_not_checked_in(
    auth, db_session, territory, home_visit, clock, monkeypatch, verb, form
):
    """The page reads the visit without its lock; a cancellation committed before the write (here on the request's
    own connection, between its read and the form's) must refuse the check-in and the checklist, not overwrite the
    cancelled row (the workflow locks and reads the row again first)."""
    appointments.confirm(db_session, territory.idel_user, home_visit)
    db_session.commit()
    clock.move_to(MONDAY_14H - dt.timedelta(minutes=30))
    auth.login(territory.idel_user)
    cancelled = {"state": AppointmentState.CANCELLED, "sequence": home_visit.sequence + 1}
    read_form = pages.load_form

    def cancelled_meanwhile(schema):
        # As another connection's: the row only, not the request's loaded instance.
        change = update(Appointment).where(Appointment.id == home_visit.id).values(cancelled)
        db().execute(change.execution_options(synchronize_session=False))
        return read_form(schema)

    monkeypatch.setattr(pages, "load_form", cancelled_meanwhile)
    refused = auth.post(f"/visits/{home_visit.id}/{verb}", form)
    assert refused.status_code in (409, 422), text(refused)
    assert "Action impossible : le rendez-vous est « Annulé »." in text(refused), "the IDEL is told why"
    db_session.expire_all()
    stored = db_session.get(Appointment, home_visit.id)
    assert stored.identity_checked_at is None and stored.checklist_saved_at is None
    assert stored.state is not AppointmentState.CHECKED_IN


def test_a_late_start_still_takes_the_checklist_an_ended_session_does_not(
    auth, db_session, territory, home_visit, clock
):
    appointments.confirm(db_session, territory.idel_user, home_visit)
    db_session.commit()
    clock.move_to(home_visit.ends_at)
    auth.login(territory.idel_user)
    assert "ne pourra pas être notée terminée" in text(auth.client.get(f"/visits/{home_visit.id}"))
    refused = auth.post(f"/visits/{home_visit.id}/checklist", CHECKLIST)
    assert refused.status_code == 422 and "La séance est finie" in text(refused)
    db_session.refresh(home_visit)
    assert home_visit.checklist_saved_at is None

    clock.move_to(MONDAY_14H + dt.timedelta(minutes=5))
    auth.login(territory.idel_user)
    assert auth.post(f"/visits/{home_visit.id}/checklist", CHECKLIST).status_code == 302
    db_session.refresh(home_visit)
    assert home_visit.checklist_saved_at == MONDAY_14H + dt.timedelta(minutes=5)


def test_the_day_sheet_lists_the_round_in_time_order(auth, db_session, territory, home_visit):
    later_patient = factories.consenting_patient(
        db_session, territory.cpts, recorded_by=territory.coordinator, commune_insee="24571", phone="0553112233"
    )
    factories.in_care_team(db_session, later_patient, territory.idel)
    later = factories.visit(
        db_session,
        territory,
        MONDAY_14H + dt.timedelta(hours=2),
        state=AppointmentState.CONFIRMED,
        patient_row=later_patient,
    )
    appointments.confirm(db_session, territory.idel_user, home_visit)
    db_session.commit()
    auth.login(territory.idel_user)
    page = text(auth.client.get("/visits/day-sheet?day=2026-11-23"))
    assert "Feuille de tournée — lundi 23 novembre 2026" in page
    first, second = page.index(f'id="tournee-{home_visit.id}"'), page.index(f'id="tournee-{later.id}"')
    assert first < second, "in time order"
    assert ADDRESS in page and "06 12 34 56 78" in page and "05 53 11 22 33" in page
    assert "Mallette ECG connectée" in page and "Essoufflement" in page
    assert territory.patient.display_name not in text(auth.client.get("/visits/day-sheet?day=2026-11-24"))
    assert "Aucune visite confirmée ce jour-là." in text(auth.client.get("/visits/day-sheet?day=2026-11-24"))
    bad = auth.client.get("/visits/day-sheet?day=2026-13-45")
    assert bad.status_code == 200 and "Feuille de tournée" in text(bad), "a bad day falls back on today"


def test_agenda_rows_lead_to_the_visit(auth, db_session, territory, home_visit):
    auth.login(territory.idel_user)
    agenda = text(auth.client.get("/agenda?day=2026-11-23"))
    assert f'href="/visits/{home_visit.id}"' in agenda
    cardiologist = factories.user(
        db_session, territory.cpts, factories.Role.PROFESSIONAL, professional_row=territory.cardiologist
    )
    auth.login(cardiologist)
    assert f'href="/visits/{home_visit.id}"' in text(auth.client.get("/agenda?day=2026-11-23"))
    assert auth.client.get(f"/visits/{home_visit.id}").status_code == 200, "the performer reads the session too"


def test_the_kine_confirms_her_telesoin_session(auth, db_session, territory):
    kine = factories.clinician(db_session, territory.cpts, factories.Profession.PHYSIOTHERAPIST, does_telesoin=True)
    session = factories.telesoin_session(
        db_session, territory, performer=kine.professional, state=AppointmentState.PROPOSED
    )
    db_session.commit()
    auth.login(kine)
    assert f'id="visite-{session.id}"' in text(auth.client.get("/visits")).split('id="du-jour"')[0]
    page = text(auth.client.get(f"/visits/{session.id}"))
    assert "Confirmer la visite" in page and "Refuser la visite" not in page
    assert auth.post(f"/visits/{session.id}/confirm").status_code == 302
    db_session.refresh(session)
    assert session.state is AppointmentState.CONFIRMED
