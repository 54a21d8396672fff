"""The cardiologist's day after a session, then the GP's: the desk leads to « Ma séance », the report of a
session that took place is written (its missing fields named, its recipients and their deadlines shown), confirmed
and signed; the patient's médecin traitant (a GP of the demo) finds « Compte rendu reçu » on his desk and opens it.

The session is the journey's own (a patient and a done teleconsultation made here on Friday morning): the demo's
Monday session belongs to the IDEL's journey, and the browser data is shared by all the browser tests."""

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from hub.documents import store
from hub.models import (
    AppointmentKind,
    AppointmentState,
    AttachmentKind,
    Organisation,
    PlaceKind,
    Profession,
    Professional,
    Referral,
    ReferralAttachment,
    ReferralState,
    User,
)
from tests import factories
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe

# Friday 20 November 2026, 08:00 in Paris: a teleconsultation of the cardiologist, done, the IDEL having checked
# the patient in; the journey starts at 10:00 that day.
SESSION_AT = dt.datetime(2026, 11, 20, 8, 0, tzinfo=factories.PARIS)
AFTER_THE_SESSION = SESSION_AT + dt.timedelta(hours=2)


@dataclass(frozen=True)
class Session:
    appointment_id: int
    patient: str  # as the pages name the patient
    gp: str  # the patient's médecin traitant's login


def other_than(session, profession: Profession, login: str) -> User:
    """A demo account of that profession other than `login`: the other journeys' people keep their counts. The
    first made, not the last: other journeys add accounts of their own (a GP with no secure mailbox, say)."""
    return session.scalars(
        select(User)
        .join(Professional, Professional.id == User.professional_id)
        .where(Professional.profession == profession, User.login != login, User.is_active.is_(True))
        .order_by(User.id)
        .limit(1)
    ).one()


def uploads_of(app) -> Path:
    """The server's upload folder, as hub.http.request.upload_dir finds it."""
    return Path(app.config["HUB"].get("UPLOAD_DIR") or Path(app.instance_path) / "uploads")


@pytest.fixture
def held_session(browser_app, sessions, people) -> Session:
    """A patient referred by his médecin traitant (a GP other than the one of the GP's journey) with an ECG, seen
    by the cardiologist on Friday morning, accompanied by an IDEL."""
    with sessions.begin() as session:
        cardiologist = session.scalars(select(User).where(User.login == people.specialist)).one()
        gp = other_than(session, Profession.GENERAL_PRACTITIONER, people.gp)
        idel = other_than(session, Profession.NURSE, people.idel)
        patient = factories.patient(
            session,
            session.get_one(Organisation, cardiologist.cpts_id),
            birth_name="VALADE",
            first_birth_given_name="GERMAINE",
            attending_gp_id=gp.professional_id,
        )
        appointment = factories.appointment(
            session,
            patient_row=patient,
            performer=session.get_one(Professional, cardiologist.professional_id),
            accompanying=session.get_one(Professional, idel.professional_id),
            created_by=session.scalars(select(User).where(User.login == people.coordinator)).one(),
            starts_at=SESSION_AT,
            state=AppointmentState.DONE,
            kind=AppointmentKind.ASSISTED_TELECONSULTATION,
            place_kind=PlaceKind.HOME,
            identity_checked_by_user_id=idel.id,
            identity_checked_at=SESSION_AT - dt.timedelta(minutes=5),
            identity_check_method="document",
            patient_location="Domicile, salon",
            callback_phone="0553123456",
            checklist='{"camera": true, "sound": true, "light": true, "privacy": true}',
        )
        referral = Referral(
            cpts_id=patient.cpts_id,
            patient_id=patient.id,
            author_id=gp.professional_id,
            created_by_user_id=gp.id,
            target_specialist_id=cardiologist.professional_id,
            reason="Dyspnée d'effort, œdèmes des membres inférieurs",
            state=ReferralState.SCHEDULED,
            appointment_id=appointment.id,
        )
        session.add(referral)
        session.flush()  # the attachment's referral id
        ecg = store.store_upload(uploads_of(browser_app), b"%PDF-1.4 ECG 12 derivations", "ecg.pdf", max_bytes=1024)
        session.add(
            ReferralAttachment(referral_id=referral.id, kind=AttachmentKind.ECG, uploaded_by_user_id=gp.id, **ecg)
        )
        return Session(appointment.id, patient.display_name, gp.login)


def visit(page: Page, shoot, label: str) -> None:
    """What every step checks: nothing wider than the window, axe-core clean; then the screenshot."""
    assert_no_horizontal_scroll(page)
    check_axe(page)
    shoot(page, label)


def test_the_cardiologist_signs_the_report_and_the_gp_receives_it(page_at, people, held_session, clock, shoot):
    clock.move_to(AFTER_THE_SESSION)
    page = page_at(DESKTOP, people.specialist)
    page.goto("/")
    desk = page.locator("#desk-session")
    expect(desk).to_contain_text("Aujourd'hui, vendredi 20 novembre 2026 : 1 patient")
    expect(page.locator("#desk-to-sign")).to_contain_text(held_session.patient)
    visit(page, shoot, "bureau du cardiologue")

    desk.get_by_role("link", name=re.compile("Ouvrir Ma séance")).click()
    page.wait_for_url("**/reports/session?day=2026-11-20")
    expect(page.get_by_role("heading", level=1)).to_have_text("Ma séance — vendredi 20 novembre 2026")
    row = page.locator(f"#rdv-{held_session.appointment_id}")
    expect(row).to_contain_text(held_session.patient)
    expect(row).to_contain_text("Identité vérifiée (Pièce d'identité contrôlée)")
    expect(row).to_contain_text("Domicile, salon")
    expect(row).to_contain_text("Vérifications avant la séance : Caméra testée, Son testé")
    expect(row.get_by_role("link", name=f"Lettre d'adressage de {held_session.patient}")).to_be_visible()
    expect(row.get_by_role("link", name="ECG")).to_be_visible()
    visit(page, shoot, "ma seance")

    row.get_by_role("button", name=f"Rédiger le compte rendu de {held_session.patient}").click()
    page.wait_for_url(re.compile(r".*/reports/\d+/edit$"))
    expect(page.locator(".report-referrals").get_by_role("link", name="ECG")).to_be_visible()
    recipients = page.locator(".report-recipients")
    expect(recipients).to_contain_text("Médecin traitant")
    # Due 48 h after the session's end (Friday 08:15), not at the signature.
    expect(recipients).to_contain_text("dimanche 22 novembre 2026, 8 h 15")
    visit(page, shoot, "compte rendu vide")

    page.get_by_role("button", name="Signer et envoyer").click()
    expect(page.locator("#e-acts")).to_have_text("Actes réalisés : à remplir pour signer.")
    expect(page.locator("#e-conclusion")).to_have_text("Conclusion : à remplir pour signer.")
    expect(page.locator("#e-confirm")).to_contain_text("Je confirme la signature et l'envoi")
    expect(page.locator("#erreurs")).to_contain_text("Le formulaire contient 3 erreurs")
    visit(page, shoot, "erreurs nommees")

    page.get_by_label("Actes réalisés").fill("Téléconsultation cardiologique assistée ; ECG 12 dérivations lu.")
    page.get_by_label("Conclusion").fill("Insuffisance cardiaque stable.")
    page.get_by_label("Je confirme la signature et l'envoi").check()
    shoot(page, "confirmation cochee")
    page.get_by_role("button", name="Signer et envoyer").click()
    page.wait_for_url(re.compile(r".*/reports/\d+$"))
    expect(page.get_by_role("status").or_(page.locator(".alert-success"))).to_contain_text("Compte rendu signé")
    report_id = int(page.url.rstrip("/").split("/")[-1])
    visit(page, shoot, "compte rendu signe")

    gp = page_at(PHONE, held_session.gp)
    gp.goto("/")
    received = gp.locator(f"#cr-recu-{report_id}")
    expect(received).to_contain_text(f"Compte rendu reçu : {held_session.patient}")
    visit(gp, shoot, "bureau du medecin traitant")
    received.get_by_role("link", name=f"Compte rendu reçu : {held_session.patient}").click()
    gp.wait_for_url(f"**/reports/{report_id}")
    expect(gp.get_by_role("heading", level=1)).to_contain_text("Compte rendu de téléconsultation")
    expect(gp.locator("main")).to_contain_text("Insuffisance cardiaque stable.")
    visit(gp, shoot, "compte rendu lu par le medecin traitant")
