"""A télésoin booking on the planner's page (and a pathway's step) names its act: the fields of the performer's
profession only, each refusal a French message on the form with nothing saved, the act shown on the appointment,
the agenda and the visits, and a warning once the session takes the performer's share past 15 %."""

import datetime as dt
import html
from decimal import Decimal

import pytest
from markupsafe import escape
from sqlalchemy import select

from hub.models import (
    TELESOIN_ACT_LABELS,
    Appointment,
    PathwayTemplate,
    StepState,
    TelesoinActCode,
)
from tests import factories
from tests.api.test_telesoin_acts_api import (  # noqa: F401  (fixtures)
    DRESSED,
    IDEL_ACTS,
    SEEN,
    at,
    kine,
    kine_near_the_warning,
    new_patient,
    nothing_booked_remotely,
    practice,
)
from tests.web.test_booking_eligibility_pages import last_audit_id
from workflows import pathways

pytestmark = pytest.mark.usefixtures("clock")

ACT_FIELD = 'name="telesoin_act"'
DRESSING_FIELD = 'name="last_in_person_dressing_on"'
CONTACT_FIELD = 'name="last_in_person_contact_on"'


def slot_of(db_session, program, day: dt.date, hour: int = 9):
    row = factories.slot(db_session, program, at(day, hour))
    db_session.commit()
    return row


def form(patient, **fields) -> dict:
    return {"patient_id": patient.id, "place_kind": "domicile", **fields}


def test_the_page_asks_the_act_of_the_performers_profession(auth, db_session, territory, practice, kine):  # noqa: F811
    auth.login(territory.coordinator)
    idel = auth.client.get(f"/planning/slots/{slot_of(db_session, practice.program, dt.date(2026, 11, 24)).id}/book")
    page = idel.get_data(as_text=True)
    assert ACT_FIELD in page and DRESSING_FIELD in page and CONTACT_FIELD in page
    assert all(str(escape(TELESOIN_ACT_LABELS[act])) in page for act in IDEL_ACTS)
    assert 'name="accompanying_id"' not in page and "Réserver la séance" in page
    assert f"{practice.nurse.full_name} ou un·e infirmier·e de son cabinet" in page

    therapist = auth.client.get(f"/planning/slots/{slot_of(db_session, kine.program, dt.date(2026, 11, 24)).id}/book")
    page = therapist.get_data(as_text=True)
    assert "Rééducation d&#39;un membre ou du rachis (coefficient habituel 7,5)" in page
    assert TELESOIN_ACT_LABELS[TelesoinActCode.REMOTE_DRESSING] not in page and DRESSING_FIELD not in page
    assert "ne se fait jamais en télésoin" in page

    assisted = auth.client.get(
        f"/planning/slots/{slot_of(db_session, territory.program, dt.date(2026, 11, 23), 13).id}/book"
    )
    page = assisted.get_data(as_text=True)
    assert ACT_FIELD not in page and CONTACT_FIELD not in page and 'name="accompanying_id"' in page


@pytest.mark.parametrize("act", IDEL_ACTS)
def test_an_idel_books_each_act_from_the_page_and_sees_it_on_the_appointment(auth, db_session, practice, act):  # noqa: F811
    t = practice.t
    auth.login(t.coordinator)
    patient = new_patient(db_session, t)
    slot = slot_of(db_session, practice.program, dt.date(2026, 11, 24))
    dressing = {"last_in_person_dressing_on": DRESSED} if act is TelesoinActCode.REMOTE_DRESSING else {}
    fields = form(patient, telesoin_act=act.value, last_in_person_contact_on=SEEN, **dressing)
    booked = auth.post(f"/planning/slots/{slot.id}/book", fields, follow_redirects=True)
    assert booked.status_code == 200
    label = str(escape(TELESOIN_ACT_LABELS[act]))
    assert f"Séance de télésoin réservée : {label}." in booked.get_data(as_text=True)
    appointment = db_session.scalar(select(Appointment).where(Appointment.slot_id == slot.id))
    assert appointment.telesoin_act == act.value
    shown = auth.client.get(f"/planning/appointments/{appointment.id}").get_data(as_text=True)
    assert (
        label in shown
        and 'Dernier soin en présentiel (attesté à la réservation)</dt><dd class="col-sm-8">1er octobre 2026' in shown
    )


def test_the_performer_sees_the_act_in_their_agenda(auth, db_session, kine):  # noqa: F811
    t = kine.t
    auth.login(t.coordinator)
    slot = slot_of(db_session, kine.program, dt.date(2026, 11, 24))
    fields = form(new_patient(db_session, t), telesoin_act="reeducation_respiratoire", last_in_person_contact_on=SEEN)
    assert auth.post(f"/planning/slots/{slot.id}/book", fields).status_code == 302
    auth.login(kine.user)
    agenda = auth.client.get("/agenda?day=2026-11-24").get_data(as_text=True)
    assert TELESOIN_ACT_LABELS[TelesoinActCode.RESPIRATORY] in agenda


def test_a_french_coefficient_is_stored(auth, db_session, kine):  # noqa: F811
    t = kine.t
    auth.login(t.coordinator)
    slot = slot_of(db_session, kine.program, dt.date(2026, 11, 24))
    fields = form(
        new_patient(db_session, t),
        telesoin_act="reeducation_avc",
        act_coefficient="8,5",
        last_in_person_contact_on=SEEN,
    )
    assert auth.post(f"/planning/slots/{slot.id}/book", fields).status_code == 302
    appointment = db_session.scalar(select(Appointment).where(Appointment.slot_id == slot.id))
    assert appointment.act_coefficient == Decimal("8.5")
    assert "(coefficient 8,50)" in auth.client.get(f"/planning/appointments/{appointment.id}").get_data(as_text=True)


REFUSALS = [
    (
        "kine",
        {"telesoin_act": "bilan_initial"},
        "Bilan initial : un bilan initial ou son renouvellement ne se fait jamais",
    ),
    ("idel", {"telesoin_act": "injection"}, "Valeur inconnue"),
    ("idel", {"telesoin_act": "prise_medicamenteuse", "last_in_person_contact_on": "2025-10-20"}, "dans les 12 mois"),
    ("idel", {"telesoin_act": "suivi_pansement"}, "suppose un pansement déjà réalisé en présentiel"),
    ("idel", {"telesoin_act": "surveillance_insuline", "act_coefficient": "0"}, "supérieur à 0"),
]


@pytest.mark.parametrize(("who", "fields", "message"), REFUSALS)
def test_each_ineligible_case_is_refused_on_the_form(auth, db_session, practice, kine, who, fields, message):  # noqa: F811
    t = practice.t
    auth.login(t.coordinator)
    program = kine.program if who == "kine" else practice.program
    patient = new_patient(db_session, t)
    slot = slot_of(db_session, program, dt.date(2026, 11, 23))
    audited = last_audit_id(db_session)
    refused = auth.post(
        f"/planning/slots/{slot.id}/book", form(patient, **({"last_in_person_contact_on": SEEN} | fields))
    )
    assert refused.status_code == 422
    body = refused.get_data(as_text=True)
    assert message in body.replace("&#39;", "'"), body
    assert ACT_FIELD in body, "the form is shown again with its fields"
    assert nothing_booked_remotely(db_session, patient, audited_after=audited)


def test_a_remote_dressing_on_the_day_of_the_in_person_one_is_refused(auth, db_session, practice):  # noqa: F811
    t = practice.t
    auth.login(t.coordinator)
    patient = new_patient(db_session, t)
    slot = slot_of(db_session, practice.program, dt.date(2026, 11, 16), 15)
    fields = {
        "telesoin_act": "suivi_pansement",
        "last_in_person_dressing_on": "2026-11-16",
        "last_in_person_contact_on": SEEN,
    }
    refused = auth.post(f"/planning/slots/{slot.id}/book", form(patient, **fields))
    assert refused.status_code == 422
    assert "Pas de suivi de pansement à distance le jour d&#39;un pansement en présentiel." in refused.get_data(
        as_text=True
    )


def test_a_fifth_remote_dressing_in_the_month_is_refused(auth, db_session, practice):  # noqa: F811
    t = practice.t
    auth.login(t.coordinator)
    patient = new_patient(db_session, t)
    fields = {
        "telesoin_act": "suivi_pansement",
        "last_in_person_dressing_on": DRESSED,
        "last_in_person_contact_on": SEEN,
    }
    for day in (1, 2, 3, 4):
        slot = slot_of(db_session, practice.program, dt.date(2026, 12, day))
        assert auth.post(f"/planning/slots/{slot.id}/book", form(patient, **fields)).status_code == 302
    fifth = slot_of(db_session, practice.program, dt.date(2026, 12, 28))
    refused = auth.post(f"/planning/slots/{fifth.id}/book", form(patient, **fields))
    assert refused.status_code == 422
    assert "Au plus 4 suivis de pansement à distance par mois et par patient." in refused.get_data(as_text=True)
    assert db_session.scalar(select(Appointment.id).where(Appointment.slot_id == fifth.id)) is None


def test_the_booking_warns_past_fifteen_percent(auth, db_session, kine_near_the_warning):  # noqa: F811
    therapist = kine_near_the_warning
    auth.login(therapist.t.coordinator)
    slot = slot_of(db_session, therapist.program, dt.date(2026, 11, 23))
    fields = form(
        new_patient(db_session, therapist.t), telesoin_act="reeducation_membre_rachis", last_in_person_contact_on=SEEN
    )
    week = auth.post(f"/planning/slots/{slot.id}/book", fields, follow_redirects=True).get_data(as_text=True)
    assert f"le télésoin de {therapist.kine.full_name} atteint 15,7\u00a0% de son activité sur douze mois" in week
    assert "alerte à 15\u00a0%, plafond à 20\u00a0%" in week


def test_a_pathways_telesoin_step_is_booked_with_its_act(auth, db_session, kine):  # noqa: F811
    t = kine.t
    patient = new_patient(db_session, t)
    template = db_session.scalar(
        select(PathwayTemplate).where(PathwayTemplate.cpts_id.is_(None), PathwayTemplate.code == "reeducation_msk")
    )
    pathway = pathways.start(
        db_session, t.coordinator, patient=patient, template=template, started_on=dt.date(2026, 11, 16)
    )
    step = next(s for s in pathway.steps if s.modality.value == "telesoin")
    slot = slot_of(db_session, kine.program, dt.date(2026, 11, 23))
    auth.login(t.coordinator)
    url = f"/parcours/{pathway.id}/etapes/{step.id}/programmer"
    page = auth.client.get(url).get_data(as_text=True)
    assert ACT_FIELD in page and "(coefficient habituel 7,5)" in page and DRESSING_FIELD not in page
    assert "le ou la professionnel·le de la séance" in page

    refused = auth.post(url, {"slot_id": slot.id, "place_kind": "domicile"})
    assert refused.status_code == 422 and "Choisissez l'acte de la séance de télésoin." in html.unescape(
        refused.get_data(as_text=True)
    )
    booked = auth.post(
        url,
        {
            "slot_id": slot.id,
            "place_kind": "domicile",
            "telesoin_act": "reeducation_membre_rachis",
            "last_in_person_contact_on": SEEN,
        },
    )
    assert booked.status_code == 302, booked.get_data(as_text=True)
    db_session.expire_all()
    appointment = db_session.scalar(select(Appointment).where(Appointment.slot_id == slot.id))
    assert appointment.telesoin_act == "reeducation_membre_rachis"
    assert pathways.step_of(pathway, step.id).state is StepState.BOOKED
