"""The home page is each person's desk: what they have to do, counted, each count leading to its list; the
coordination's « Visites à confirmer »; a visit no IDEL accompanies reads « IDEL à trouver », never « Proposé »."""

import datetime as dt
import html
import re
import uuid
from dataclasses import dataclass

import pytest
from sqlalchemy import func, select

from hub.db import utcnow
from hub.models import (
    Appointment,
    AppointmentState,
    AuditEvent,
    Delivery,
    DeliveryState,
    OutboxState,
    PlaceKind,
    Profession,
    RecipientRole,
    ReferralState,
    Role,
    Slot,
    TeleexpertiseState,
    Urgency,
)
from tests import factories
from tests.factories import MONDAY_14H, NOW
from tests.queries import count_queries
from workflows import appointments

pytestmark = pytest.mark.usefixtures("clock")

TODAY_14H = NOW.replace(hour=14)  # Monday 16 November 2026, the clock's day
TOMORROW_14H = TODAY_14H + dt.timedelta(days=1)


def text(response) -> str:
    """The page as a person reads it: tags dropped, spaces collapsed."""
    body = re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))
    return re.sub(r"\s+", " ", html.unescape(body))


def item(response, element_id: str) -> str:
    """The HTML of the list item with that id."""
    return re.search(rf'id="{element_id}".*?</li>', response.get_data(as_text=True), re.S).group(0)


def links(response) -> set[str]:
    return {html.unescape(href) for href in re.findall(r'href="([^"]+)"', response.get_data(as_text=True))}


def session_slots(db_session, program, start: dt.datetime, count: int = 3) -> list[Slot]:
    """One occurrence of the program: `count` slots of 15 minutes from `start`."""
    start = start.astimezone(dt.UTC)
    slots = [
        Slot(
            program_id=program.id,
            occurrence_start=start,
            position=n,
            starts_at=start + dt.timedelta(minutes=15 * n),
            ends_at=start + dt.timedelta(minutes=15 * (n + 1)),
        )
        for n in range(count)
    ]
    db_session.add_all(slots)
    db_session.flush()
    return slots


def book(db_session, t, slot, patient, **kwargs):
    return appointments.book(
        db_session,
        t.coordinator,
        slot=slot,
        patient=patient,
        place_kind=kwargs.pop("place_kind", PlaceKind.DEDICATED_PLACE),
        **kwargs,
    )


def lonely_patient(db_session, t):
    """A consenting, eligible patient with no IDEL of their own: nobody is asked when they are booked."""
    return factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator, commune_insee="24571")


def past_session(db_session, t, *, hours_ago: float, patient=None, performer=None):
    """A session done `hours_ago` with no report (a bare row, as the workflow leaves it once done)."""
    return factories.appointment(
        db_session,
        patient_row=patient or t.patient,
        performer=performer or t.cardiologist,
        accompanying=t.idel,
        created_by=t.coordinator,
        starts_at=NOW - dt.timedelta(hours=hours_ago),
        state=AppointmentState.DONE,
    )


@dataclass
class Coordination:
    t: factories.Territory
    waiting: object  # proposed to the patient's own IDEL, who has not answered
    without: object  # proposed with no IDEL to ask
    referral: object
    dead: object
    late: object


def build_coordination(db_session, t: factories.Territory) -> Coordination:
    """Next Monday's session (3 slots): one visit asked of the own IDEL, one with no IDEL, one slot free; a
    referral to triage, a dead message, a session done three days ago without its report."""
    t.idel.phone = "0611223344"
    slots = session_slots(db_session, t.program, MONDAY_14H)
    waiting = book(db_session, t, slots[0], t.patient)
    without = book(db_session, t, slots[1], lonely_patient(db_session, t))
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    referral = factories.referral(db_session, t.patient, author=gp, urgency=Urgency.URGENT)
    dead = factories.outbox_message(db_session, t.cpts, state=OutboxState.DEAD)
    late = past_session(db_session, t, hours_ago=72)
    db_session.commit()
    return Coordination(t, waiting, without, referral, dead, late)


@pytest.fixture
def coordination(db_session, territory) -> Coordination:
    return build_coordination(db_session, territory)


# --- the coordinator --------------------------------------------------------------------------------------------


def test_the_coordinator_sees_what_needs_doing_without_opening_another_page(auth, coordination, clock):
    t = coordination.t
    clock.shift(dt.timedelta(hours=3))
    auth.login(t.coordinator)
    response = auth.client.get("/")

    assert response.status_code == 200
    page = text(response)
    assert "1 adressage à trier" in page and "Dont 1 urgent." in page
    assert "Le plus ancien attend depuis 3 h" in page
    assert "1 visite en attente de réponse" in page and "La plus ancienne attend depuis 3 h" in page
    assert f"{t.idel.full_name}, sollicité·e depuis 3 h" in page
    assert t.patient.display_name in page
    assert "1 visite sans IDEL" in page and coordination.without.patient.display_name in page
    assert "1 compte rendu ou envoi en retard" in page
    assert "1 envoi en échec définitif" in page
    assert "lundi 23 novembre 2026, 14 h 00 — Téléconsultation cardiologie CH Périgueux 1 créneau libre sur 3" in page
    assert "Mes visites" not in page and "Ma séance" not in page


def test_each_count_leads_to_its_list(auth, coordination):
    t = coordination.t
    auth.login(t.coordinator)
    found = links(auth.client.get("/"))

    expected = {
        "/referrals/triage#a-trier": coordination.referral.patient.display_name,
        "/desk/unconfirmed-visits": coordination.waiting.patient.display_name,
        "/desk/unconfirmed-visits#sans-idel": coordination.without.patient.display_name,
        "/reports/overdue": "Compte rendu non signé",
        "/envois?state=dead": coordination.dead.recipient,
        "/planning?week=2026-11-23": coordination.without.patient.display_name,
    }
    assert set(expected) <= found
    for url, shown in expected.items():
        response = auth.client.get(url)
        assert response.status_code == 200, url
        assert shown in text(response), url
    assert f"/planning/appointments/{coordination.waiting.id}#reaffecter" in found
    assert "tel:+33611223344" in found, "the IDEL who has not answered can be called back"


def test_a_visit_without_idel_reads_idel_a_trouver_not_proposed(auth, coordination):
    t = coordination.t
    auth.login(t.coordinator)

    week = auth.client.get("/planning?week=2026-11-23")
    lonely = item(week, f"creneau-{coordination.without.slot_id}")
    asked = item(week, f"creneau-{coordination.waiting.slot_id}")
    assert "IDEL à trouver" in lonely and "Proposé" not in lonely
    assert "Proposé" in asked and "IDEL à trouver" not in asked
    appointment_page = text(auth.client.get(f"/planning/appointments/{coordination.without.id}"))
    assert "IDEL à trouver" in appointment_page and "Proposé" not in appointment_page
    patient_page = text(auth.client.get(f"/patients/{coordination.without.patient_id}"))
    assert "Proposé" not in patient_page

    appointments.reassign(auth.session, t.coordinator, coordination.without, idel=t.other_idel)
    auth.session.commit()
    assert "Proposé" in text(auth.client.get(f"/planning/appointments/{coordination.without.id}"))


def test_visits_to_confirm_since_when_with_the_actions(auth, coordination, clock, db_session):
    t = coordination.t
    clock.shift(dt.timedelta(minutes=40))
    declined = book(
        db_session, t, session_slots(db_session, t.program, MONDAY_14H + dt.timedelta(days=7))[0], t.patient
    )
    appointments.decline(db_session, t.idel_user, declined, reason="Congés cette semaine-là")
    db_session.commit()
    auth.login(t.coordinator)

    response = auth.client.get("/desk/unconfirmed-visits")

    assert response.status_code == 200
    page = text(response)
    waiting, without = page.split("IDEL à trouver (2)")
    assert "En attente de la réponse de l'IDEL (1)" in waiting
    assert f"IDEL sollicité·e : {t.idel.full_name}, depuis 40 min" in waiting
    assert coordination.waiting.patient.display_name in waiting
    assert coordination.without.patient.display_name in without
    assert "Refusée par l'IDEL : Congés cette semaine-là" in without
    found = links(response)
    assert "tel:+33611223344" in found
    for visit in (coordination.waiting, coordination.without, declined):
        assert f"/planning/appointments/{visit.id}#reaffecter" in found
    assert db_session.scalars(select(AuditEvent).where(AuditEvent.action == "desk.unconfirmed_visits")).first()


def test_the_coordinators_desk_costs_the_same_queries_with_1_or_20_items(auth, db_session, territory, engine):
    """P6: counts are aggregated, lists capped and loaded with what they show."""
    t = territory
    auth.login(t.coordinator)
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)

    def add(count: int, first: int) -> None:
        for n in range(first, first + count):
            starts = MONDAY_14H + dt.timedelta(days=n)
            patient = factories.patient(db_session, t.cpts)
            idel = factories.professional(db_session, t.cpts, Profession.NURSE)  # each row its own IDEL, patient…
            for accompanying_id in (idel.id, None):
                factories.appointment(
                    db_session,
                    patient_row=patient,
                    performer=t.cardiologist,
                    accompanying=idel,
                    created_by=t.coordinator,
                    starts_at=starts,
                    state=AppointmentState.PROPOSED,
                    accompanying_id=accompanying_id,
                )
            past_session(db_session, t, hours_ago=72 + n, patient=patient)
            factories.referral(db_session, patient, author=gp)
            factories.outbox_message(db_session, t.cpts, state=OutboxState.DEAD)
            session_slots(db_session, t.program, TODAY_14H + dt.timedelta(days=n % 7, hours=n))
        db_session.commit()

    def statements() -> int:
        with count_queries(engine) as seen:
            response = auth.client.get("/")
        assert response.status_code == 200
        return len(seen)

    add(1, 0)
    one = statements()
    add(19, 1)
    twenty = statements()
    assert "20 adressages à trier" in text(auth.client.get("/"))
    assert one == twenty, (one, twenty)


def test_the_desk_read_is_audited_when_it_names_patients(auth, coordination, db_session):
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    auth.login(coordination.t.coordinator)
    auth.client.get("/")
    mine = select(AuditEvent).where(AuditEvent.action == "desk.read", AuditEvent.id > audited_before)
    event = db_session.scalars(mine).one()
    assert event.details and '"patient_rows": 2' in event.details


# --- the IDEL -------------------------------------------------------------------------------------------------------


def test_the_idel_sees_her_visits_to_confirm_and_todays_round_with_addresses(auth, db_session, territory):
    t = territory
    t.patient.address = "12 rue des Lilas, 24380 Vergt"
    factories.visit(db_session, t)  # next Monday, proposed to her
    today = factories.visit(db_session, t, TODAY_14H, state=AppointmentState.CONFIRMED, place_kind=PlaceKind.HOME)
    tomorrow = factories.visit(db_session, t, TOMORROW_14H, state=AppointmentState.CONFIRMED)
    db_session.commit()
    auth.login(t.idel_user)

    response = auth.client.get("/")

    page = text(response)
    assert "1 visite attend votre réponse" in page and "lundi 23 novembre 2026, 14 h 00" in page
    round_today = page.split("Aujourd'hui, lundi 16 novembre 2026")[1].split("Demain")[0]
    assert "1 visite" in round_today
    assert f"13 h 40 – 14 h 40 — {t.patient.display_name} 12 rue des Lilas, 24380 Vergt" in round_today
    tomorrow_part = page.split("Demain, mardi 17 novembre 2026")[1]
    assert "1 visite confirmée" in tomorrow_part and "Lieu dédié à la téléconsultation" in tomorrow_part
    found = links(response)
    assert {"/visits#a-confirmer", "/visits#du-jour", "/agenda?day=2026-11-17"} <= found
    assert f"desk-visite-{today.id}" in response.get_data(as_text=True)
    assert f"desk-visite-{tomorrow.id}" in response.get_data(as_text=True)
    assert "Planning" not in page
    for url in ("/visits", "/agenda?day=2026-11-17"):
        assert t.patient.display_name in text(auth.client.get(url))


# --- the GP -------------------------------------------------------------------------------------------------------


def delivered_report(db_session, t, gp_professional):
    report = factories.report(db_session, t.patient, author=t.cardiologist, created_by=t.coordinator, signed=True)
    message = factories.outbox_message(db_session, t.cpts, channel="mssante", state=OutboxState.SENT)
    db_session.add(
        Delivery(
            cpts_id=t.cpts.id,
            report_id=report.id,
            recipient_role=RecipientRole.ATTENDING_GP,
            recipient_professional_id=gp_professional.id,
            channel="mssante",
            address=message.recipient,
            outbox_message_id=message.id,
            message_id=f"<{uuid.uuid4().hex}@hub>",
            state=DeliveryState.SENT,
            due_at=utcnow(),
        )
    )
    db_session.flush()
    return report


def test_the_gp_sees_referrals_by_state_and_the_reports_received(auth, db_session, territory):
    t = territory
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    t.patient.attending_gp_id = gp.professional_id
    sent = [factories.referral(db_session, t.patient, author=gp) for _ in range(2)]
    scheduled = factories.referral(db_session, t.patient, author=gp, state=ReferralState.SCHEDULED)
    report = delivered_report(db_session, t, gp.professional)
    someone_else = factories.patient(db_session, t.cpts)  # not his patient, and not sent to him
    factories.report(db_session, someone_else, author=t.cardiologist, created_by=t.coordinator, signed=True)
    db_session.commit()
    auth.login(gp)

    response = auth.client.get("/")

    page = text(response)
    assert "Envoyé : 2" in page and "Programmé : 1" in page and "Brouillon" not in page
    assert "1 reçu ces 30 derniers jours" in page
    assert f"/reports/{report.id}" in links(response)
    submitted_list = auth.client.get("/referrals/mine?state=submitted")
    rows = re.findall(r'id="adressage-(\d+)"', submitted_list.get_data(as_text=True))
    assert sorted(map(int, rows)) == sorted(r.id for r in sent)
    assert "/referrals/mine?state=scheduled" in links(response)
    assert (
        re.findall(r'id="adressage-(\d+)"', auth.client.get("/referrals/mine").get_data(as_text=True)).count(
            str(scheduled.id)
        )
        == 1
    )
    assert auth.client.get(f"/reports/{report.id}").status_code == 200
    assert "Adressages à trier" not in page


def test_the_attending_gp_without_a_secure_mailbox_receives_the_report_in_the_hub(auth, db_session, territory):
    """No delivery is routed to a GP without MSSanté: the report of his patient still reaches his desk, with its
    page and its PDF, once signed (a draft never)."""
    t = territory
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    t.patient.attending_gp_id = gp.professional_id
    signed = factories.report(db_session, t.patient, author=t.cardiologist, created_by=t.coordinator, signed=True)
    factories.report(db_session, t.patient, author=t.cardiologist, created_by=t.coordinator)  # a draft
    db_session.commit()
    auth.login(gp)

    response = auth.client.get("/")

    page = text(response)
    assert "1 reçu ces 30 derniers jours" in page
    assert f"Compte rendu reçu : {t.patient.display_name}" in page
    assert f"/reports/{signed.id}" in links(response)
    assert auth.client.get(f"/reports/{signed.id}").status_code == 200


# --- the specialist -------------------------------------------------------------------------------------------------


def test_the_specialist_sees_the_session_the_reports_to_sign_and_the_teleexpertise(auth, db_session, territory):
    t = territory
    cardiologist = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    factories.visit(db_session, t, TODAY_14H, state=AppointmentState.CONFIRMED)
    late = past_session(db_session, t, hours_ago=72)
    recent = past_session(db_session, t, hours_ago=20)
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    factories.teleexpertise_request(
        db_session,
        t.patient,
        requester=gp,
        expert=t.cardiologist,
        consent_row=t.patient.consents[0],
        state=TeleexpertiseState.ASSIGNED,
    )
    db_session.commit()
    auth.login(cardiologist)

    response = auth.client.get("/")

    page = text(response)
    assert "Aujourd'hui, lundi 16 novembre 2026 : 1 patient" in page
    assert "2 à signer, dont 1 hors délai" in page
    late_item, recent_item = (item(response, f"desk-visite-{a.id}") for a in (late, recent))
    assert "Hors délai" in late_item and "Hors délai" not in recent_item
    assert "1 demande à traiter" in page
    found = links(response)
    assert {"/reports/session?day=2026-11-16", "/reports/session?day=2026-11-13", "/teleexpertise/inbox"} <= found
    assert t.patient.display_name in text(auth.client.get("/reports/session?day=2026-11-13"))
    assert t.patient.display_name in text(auth.client.get("/teleexpertise/inbox"))
    assert "Comptes rendus en retard" not in page and "Nouvel adressage" not in page


def test_the_next_session_day_when_none_today(auth, db_session, territory):
    t = territory
    cardiologist = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    factories.visit(db_session, t)
    db_session.commit()
    auth.login(cardiologist)
    response = auth.client.get("/")
    assert "Prochaine séance, lundi 23 novembre 2026 : 1 patient" in text(response)
    assert "/reports/session?day=2026-11-23" in links(response)


# --- the pharmacist ------------------------------------------------------------------------------------------------


def test_the_pharmacist_sees_assisted_sessions_and_the_years_assistances(auth, db_session, territory):
    t = territory
    pharmacist = factories.clinician(
        db_session, t.cpts, Profession.PHARMACIST, accompanies_teleconsultation=True, last_name="Officine"
    )
    for starts in (TODAY_14H, TODAY_14H + dt.timedelta(days=3)):
        factories.appointment(
            db_session,
            patient_row=t.patient,
            performer=t.cardiologist,
            accompanying=pharmacist.professional,
            created_by=t.coordinator,
            starts_at=starts,
            place_kind=PlaceKind.PHARMACY,
        )
    for n in range(6):
        factories.fee_entry(db_session, pharmacist.professional, "TLM", dt.date(2026, 3, 1 + n))
    factories.fee_entry(db_session, pharmacist.professional, "TLM", dt.date(2025, 12, 1))
    db_session.commit()
    auth.login(pharmacist)

    response = auth.client.get("/")

    page = text(response)
    assert "Aujourd'hui, lundi 16 novembre 2026 1 visite" in page
    assert "1 séance confirmée après demain" in page and "jeudi 19 novembre 2026, 14 h 00" in page
    assert "6 téléconsultations assistées" in page and "25,00" in page
    assert {"/fees/me", "/visits#a-venir", "/visits#du-jour"} <= links(response)


# --- the admin -------------------------------------------------------------------------------------------------------


def test_the_admin_sees_accounts_connectors_and_failed_sends(auth, db_session, cpts, admin):
    factories.user(db_session, cpts, Role.PROFESSIONAL, is_active=False)
    factories.user(db_session, cpts, Role.COORDINATOR, with_totp=False)
    factories.outbox_message(db_session, cpts, channel="mssante", state=OutboxState.DEAD)
    factories.outbox_message(db_session, cpts, channel="email")
    db_session.commit()
    audited_before = db_session.scalar(select(func.coalesce(func.max(AuditEvent.id), 0)))
    auth.login(admin)

    response = auth.client.get("/")

    page = text(response)
    assert "2 comptes actifs" in page and "1 compte désactivé" in page
    assert "1 compte actif sans double authentification" in page
    assert "MSSanté (messagerie sécurisée de santé) Réglages du serveur ; 1 envoi en échec" in page
    assert "E-mail (notifications sans données de santé) Réglages du serveur ; 1 envoi en attente" in page
    assert "1 envoi en échec définitif" in page
    assert {"/admin/users", "/admin/connecteurs#c-mssante", "/envois?state=dead"} <= links(response)
    assert not db_session.scalars(
        select(AuditEvent).where(AuditEvent.action == "desk.read", AuditEvent.id > audited_before)
    ).first()


def test_a_desk_visit_says_what_its_appointment_says(db_session, coordination, clock):
    """The desk's lists and « Visites à confirmer » read rows (workflows.desk.DeskVisit), not entities: each says
    what its Appointment says, attribute by attribute and through the helpers the templates call — asked of an
    IDEL with a phone, without an IDEL, declined with a reason, booked without a slot."""
    from hub.models import appointment_state_label
    from hub.web.states import allows
    from workflows import desk

    t = coordination.t
    declined = book(
        db_session, t, session_slots(db_session, t.program, MONDAY_14H + dt.timedelta(days=7))[0], t.patient
    )
    appointments.decline(db_session, t.idel_user, declined, reason="Congés cette semaine-là")
    unslotted = book(
        db_session, t, session_slots(db_session, t.program, MONDAY_14H + dt.timedelta(days=8))[0], t.patient
    )
    unslotted.slot_id = None  # a row as a booking without a slot leaves it
    db_session.commit()
    db_session.expire_all()
    now = utcnow()
    waiting = desk.unconfirmed_visits(db_session, t.cpts.id, now=now)
    without = desk.visits_without_idel(db_session, t.cpts.id, now=now)
    rows = [item.appointment for item in waiting + without]
    assert {row.id for row in rows} >= {coordination.waiting.id, coordination.without.id, declined.id, unslotted.id}
    assert any(row.accompanying and row.accompanying.phone for row in rows) and any(row.slot is None for row in rows)
    for row in rows:
        entity = db_session.get(Appointment, row.id)
        simple = ("id", "state", "kind", "place_kind", "starts_at", "accompanying_id", "declined_reason")
        assert {name: getattr(row, name) for name in simple} == {name: getattr(entity, name) for name in simple}
        assert row.patient.display_name == entity.patient.display_name
        assert (row.accompanying is None) == (entity.accompanying is None)
        if entity.accompanying is not None:
            assert (row.accompanying.full_name, row.accompanying.phone) == (
                entity.accompanying.full_name,
                entity.accompanying.phone,
            )
        assert (row.slot.program.name if row.slot else None) == (entity.slot.program.name if entity.slot else None)
        assert appointment_state_label(row) == appointment_state_label(entity)
        for verb in ("reassign", "cancel", "confirm", "decline"):
            assert allows(row, verb) == allows(entity, verb), verb
