"""The compte-rendu: writing, signing (the content and recipients frozen in the signing transaction; the worker's
render_pending then renders the PDF and CDA and routes them), corrections, waivers of serial télésoin sessions,
what is late, and the receivers' answers coming back."""

import datetime as dt
import hashlib
import json
from decimal import Decimal
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from defusedxml import ElementTree as ET
from sqlalchemy import func, select

from connectors.dispatcher import requeue
from hub import audit
from hub.db import utcnow
from hub.documents.clinical import DocumentPackage
from hub.documents.freezing import freeze
from hub.documents.store import read_stored
from hub.errors import Conflict, DocumentPending, InvalidTransition, RuleViolation, ValidationFailed
from hub.models import (
    AppointmentState,
    AuditEvent,
    CarePathwayStep,
    ConnectorSetting,
    ConsentKind,
    Delivery,
    DeliveryState,
    OutboxMessage,
    OutboxState,
    Patient,
    PlaceKind,
    Profession,
    RecipientRole,
    Referral,
    ReferralState,
    Report,
    ReportState,
    Role,
    Sex,
    StepState,
    TelesoinActCode,
)
from tests import ZONE, factories
from tests.factories import NOW, SEEN_ON, check_in
from tests.queries import audit_inserts, count_queries
from workflows import appointments, deliveries, desk, pathways, reports

CDA = "{urn:hl7-org:v3}"
SIGNED_AT = dt.datetime(2026, 11, 23, 14, 30, tzinfo=dt.UTC)


@pytest.fixture
def session_done(db_session, territory):
    """Monday's assisted cardiology teleconsultation, carried out; the cardiologist has an account."""
    t = territory
    t.cardiologist.mssante_address = "cardio@ch-perigueux.mssante.fr"
    t.cardiologist_user = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    monday_14h = dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC)
    t.appointment = factories.visit(db_session, t, monday_14h, state=AppointmentState.DONE, now=NOW)
    return t


def qualify(db_session, patient, *, dmp_consent: bool = False, recorded_by=None):
    """The patient's identity qualified and, if told, their consent to the DMP (reloaded with it)."""
    factories.qualify(db_session, patient)
    if dmp_consent:
        factories.consent(db_session, patient, recorded_by=recorded_by, kind=ConsentKind.DMP_ACCESS, collected_at=NOW)
    db_session.refresh(patient)


def late_items(db_session, cpts_id, *, now):
    """The « en retard » list, and the coordinator's desk counting as many (its count reads plain columns and SQL
    counts, not these items): every case below checks both."""
    items = reports.overdue(db_session, cpts_id, now=now)
    counted = desk.coordinator_desk(db_session, cpts_id, zone=ZONE, now=now, with_lists=False).late_reports
    assert counted == len(items), (counted, items)
    return items


def written(db_session, t, **fields):
    report = reports.start_report(db_session, t.cardiologist_user, t.appointment)
    values = {"acts": "Téléconsultation cardiologique, ECG lu à distance.", "conclusion": "Pas de décompensation."}
    return reports.update_draft(db_session, t.cardiologist_user, report, **(values | fields))


def test_only_the_performer_writes_the_report(db_session, session_done):
    t = session_done
    with pytest.raises(RuleViolation, match="réalisé l'acte"):
        reports.start_report(db_session, t.idel_user, t.appointment)


def test_the_draft_is_prefilled_and_begun_once(db_session, session_done):
    t = session_done
    first = reports.start_report(db_session, t.cardiologist_user, t.appointment)
    assert reports.start_report(db_session, t.cardiologist_user, t.appointment) is first
    assert json.loads(first.participant_ids) == [t.cardiologist.id, t.idel.id], "the accompanying IDEL took part"
    assert first.performed_at == t.appointment.starts_at and first.root_id == first.id


def test_the_drafts_audit_row_taken_by_its_insert_is_written_on_every_database(db_session, session_done, monkeypatch):
    """The report's INSERT writes the rows given to it (audit.take_queued's) on SQLite too, one INSERT each after
    it: none is dropped there, whichever database its caller checked the rows could be taken on."""
    t = session_done
    before = db_session.scalar(select(func.max(AuditEvent.id))) or 0  # committed tests' rows stay
    monkeypatch.setattr(audit, "can_take_queued", lambda _session: True)
    report = reports.start_report(db_session, t.cardiologist_user, t.appointment)
    created = db_session.scalars(
        select(AuditEvent).where(AuditEvent.id > before, AuditEvent.action == "report.create")
    ).all()
    assert [(e.target_type, e.target_id, e.actor_user_id) for e in created] == [
        ("reports", str(report.id), t.cardiologist_user.id)
    ]


def test_no_report_before_the_patient_is_checked_in(db_session, territory):
    t = territory
    user = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    slot = factories.slot(db_session, t.program, dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    with pytest.raises(RuleViolation, match="accueilli"):
        reports.start_report(db_session, user, appointment)
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    check_in(db_session, t.idel_user, appointment)
    report = reports.update_draft(
        db_session, user, reports.start_report(db_session, user, appointment), acts="ECG", conclusion="RAS"
    )
    with pytest.raises(RuleViolation, match="séance terminée"):
        factories.sign_and_render(db_session, user, report, upload_dir="/nonexistent", zone=ZONE)
    assert report.state is ReportState.DRAFT


@pytest.mark.parametrize("missing", ["acts", "conclusion"])
def test_signing_needs_the_acts_and_the_conclusion(db_session, session_done, tmp_path, missing):
    t = session_done
    report = written(db_session, t, **{missing: ""})
    with pytest.raises(ValidationFailed) as error:
        factories.sign_and_render(db_session, t.cardiologist_user, report, upload_dir=tmp_path, zone=ZONE)
    assert missing in error.value.errors
    assert report.state is ReportState.DRAFT and report.document_uid is None
    assert db_session.scalar(select(func.count(Delivery.id))) == 0


def test_an_unknown_follow_up_modality_is_refused(db_session, session_done):
    t = session_done
    with pytest.raises(ValidationFailed) as error:
        written(db_session, t, follow_up_modality="teleportation")
    assert "follow_up_modality" in error.value.errors


def test_signing_freezes_the_pdf_and_the_cda(db_session, session_done, tmp_path):
    t = session_done
    qualify(db_session, t.patient)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    assert report.state is ReportState.SIGNED and report.signed_at == SIGNED_AT
    pdf = read_stored(tmp_path, report.pdf_sha256)
    cda = read_stored(tmp_path, report.cda_sha256)
    assert pdf.startswith(b"%PDF-") and len(pdf) == report.pdf_size and len(cda) == report.cda_size
    root = ET.fromstring(cda)
    assert root.find(f"{CDA}code").get("code") == "85208-7"
    assert root.find(f"{CDA}id").get("root").startswith(report.document_uid.split(".")[0])
    patient_ids = [e.get("extension") for e in root.iter(f"{CDA}id")]
    assert t.patient.ins_matricule in patient_ids, "a qualified identity carries its INS"
    with pytest.raises(InvalidTransition):
        reports.update_draft(db_session, t.cardiologist_user, report, conclusion="changed after signing")


def test_a_provisional_identity_never_carries_the_ins(db_session, session_done, tmp_path):
    t = session_done
    t.patient.ins_matricule = factories.valid_nir(sex=Sex.FEMALE, birth_date=t.patient.birth_date)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, zone=ZONE
    )
    assert t.patient.ins_matricule.encode() not in read_stored(tmp_path, report.cda_sha256)
    roles = {d.recipient_role for d in report.deliveries}
    assert RecipientRole.PATIENT not in roles and RecipientRole.DMP not in roles


def test_the_report_is_routed_to_each_recipient_once(db_session, session_done, tmp_path):
    t = session_done
    qualify(db_session, t.patient, dmp_consent=True, recorded_by=t.coordinator)
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    referring = factories.professional(
        db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="adresseur@b.mssante.fr"
    )
    db_session.add(
        Referral(
            cpts_id=t.cpts.id,
            patient_id=t.patient.id,
            author_id=referring.id,
            created_by_user_id=t.coordinator.id,
            reason="Dyspnée",
            state=ReferralState.SCHEDULED,
            appointment_id=t.appointment.id,
        )
    )
    t.idel.mssante_address = "idel@c.mssante.fr"
    db_session.flush()
    db_session.refresh(t.patient)
    report = factories.sign_and_render(
        db_session,
        t.cardiologist_user,
        written(db_session, t, copy_participants=True),
        upload_dir=tmp_path,
        now=SIGNED_AT,
        zone=ZONE,
    )
    by_role = {d.recipient_role: d for d in report.deliveries}
    assert set(by_role) == {
        RecipientRole.PATIENT,
        RecipientRole.ATTENDING_GP,
        RecipientRole.PRESCRIBER,
        RecipientRole.PARTICIPANT,
        RecipientRole.DMP,
    }
    assert by_role[RecipientRole.PATIENT].address == f"{t.patient.ins_matricule}@patient.mssante.fr"
    assert by_role[RecipientRole.PARTICIPANT].address == "idel@c.mssante.fr", "the author never mails themself"
    assert by_role[RecipientRole.ATTENDING_GP].due_at == t.appointment.ends_at + dt.timedelta(hours=48)
    messages = db_session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)).all()
    document_messages = [m for m in messages if m.kind.startswith("document:")]
    assert len(document_messages) == 5, "one outbox message per recipient (R1)"
    assert {m.channel for m in document_messages} == {"mssante", "dmp"}
    assert all(d.message_id for d in report.deliveries if d.channel == "mssante")
    assert {m.group_key for m in document_messages} == {f"report:{report.id}"}, "one message of a report in flight (R7)"


def test_a_program_sets_its_own_delays(db_session, session_done, tmp_path):
    t = session_done
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    t.program.report_delay_doctors_hours = 8
    assert json.loads(t.program.report_delays) == {"medecin_traitant": 8, "prescripteur": 8}
    db_session.flush()
    db_session.refresh(t.patient)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    (delivery,) = report.deliveries
    assert delivery.due_at == t.appointment.ends_at + dt.timedelta(hours=8)


def test_a_report_signed_late_keeps_its_deadline_and_is_listed_late(db_session, session_done, tmp_path):
    """Signed five days after the session: each delivery is still due from the session's end (not at the
    signature, which made every late report look due « now »), so the late list shows it until it leaves."""
    t = session_done
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    late = t.appointment.ends_at + dt.timedelta(days=5)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=late, zone=ZONE
    )
    (delivery,) = report.deliveries
    assert delivery.due_at == t.appointment.ends_at + dt.timedelta(hours=48) < late
    (item,) = late_items(db_session, t.cpts.id, now=late + dt.timedelta(minutes=1))
    assert (item.kind, item.report_id, item.since) == ("unsent", report.id, delivery.due_at)


def test_r1_a_failed_signature_queues_nothing(db_session, session_done, tmp_path):
    t = session_done
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    report = written(db_session, t)
    savepoint = db_session.begin_nested()
    factories.sign_and_render(db_session, t.cardiologist_user, report, upload_dir=tmp_path, zone=ZONE)
    assert db_session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.kind.like("document:%"))) == 1
    savepoint.rollback()
    assert db_session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.kind.like("document:%"))) == 0
    assert db_session.scalar(select(func.count(Delivery.id))) == 0


def test_nobody_to_send_to_means_sent_at_once(db_session, session_done, tmp_path):
    t = session_done
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    assert report.deliveries == [] and report.state is ReportState.SENT


def test_a_new_version_holds_its_row_as_inserted(db_session, session_done, tmp_path):
    """Issue 17, P7: a draft and a correction are written by one Core INSERT, not the unit of work: each instance
    holds every column as the database has it (the first version its own root), with nothing left to flush."""
    t = session_done
    draft = reports.start_report(db_session, t.cardiologist_user, t.appointment)
    assert draft.root_id == draft.id and not (db_session.new or db_session.dirty)
    assert_as_stored(db_session, draft)
    reports.update_draft(db_session, t.cardiologist_user, draft, acts="ECG lu.", conclusion="Rien à signaler.")
    factories.sign_and_render(db_session, t.cardiologist_user, draft, upload_dir=tmp_path, zone=ZONE)
    correction = reports.supersede(db_session, t.cardiologist_user, draft)
    assert (correction.root_id, correction.version, correction.conclusion) == (draft.id, 2, "Rien à signaler.")
    assert_as_stored(db_session, correction)


def test_a_draft_s_audit_row_holds_its_id_and_comes_after_the_rows_queued_before(db_session, session_done):
    """On PostgreSQL the draft's INSERT inserts the rows queued before it and its own audit row, whose target is the
    id the statement draws (hub.audit.take_queued, hub.db.inserts_around_id), in their order; SQLite writes them at
    the commit. The same rows either way."""
    t = session_done
    db_session.commit()
    start = db_session.scalar(select(func.max(AuditEvent.id))) or 0
    audit.record(db_session, actor=t.cardiologist_user, action="queued.before", target=t.appointment)
    with count_queries(db_session.get_bind()) as sent:
        draft = reports.start_report(db_session, t.cardiologist_user, t.appointment)
    if db_session.get_bind().dialect.name == "postgresql":
        together = [s for s in sent if "INSERT INTO reports" in s and "INSERT INTO audit_events" in s]
        assert audit_inserts(sent) == 0 and len(together) == 1, sent
    db_session.commit()
    rows = db_session.execute(
        select(AuditEvent.action, AuditEvent.target_type, AuditEvent.target_id)
        .where(AuditEvent.id > start)
        .order_by(AuditEvent.id)
    ).all()
    assert [tuple(row) for row in rows] == [
        ("queued.before", "appointments", str(t.appointment.id)),
        ("report.create", "reports", str(draft.id)),
    ]


def assert_as_stored(db_session, report):
    table = Report.__table__
    stored = db_session.execute(select(table).where(table.c.id == report.id)).one()._asdict()
    assert {key: getattr(report, key) for key in stored} == stored


def test_a_correction_supersedes_the_signed_version(db_session, session_done, tmp_path):
    t = session_done
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    original = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, zone=ZONE
    )
    correction = reports.supersede(db_session, t.cardiologist_user, original)
    assert (correction.version, correction.root_id, correction.supersedes_id) == (2, original.id, original.id)
    assert correction.conclusion == original.conclusion and correction.state is ReportState.DRAFT
    with pytest.raises(RuleViolation, match="existe déjà"):
        reports.supersede(db_session, t.cardiologist_user, original)
    reports.update_draft(db_session, t.cardiologist_user, correction, conclusion="Décompensation débutante.")
    factories.sign_and_render(db_session, t.cardiologist_user, correction, upload_dir=tmp_path, zone=ZONE)
    assert original.superseded_at is not None and original.conclusion == "Pas de décompensation."
    cda = ET.fromstring(read_stored(tmp_path, correction.cda_sha256))
    related = cda.find(f"{CDA}relatedDocument")
    assert related is not None and related.get("typeCode") == "RPLC"
    groups = db_session.scalars(
        select(OutboxMessage.group_key).where(OutboxMessage.kind.like("document:%")).order_by(OutboxMessage.id)
    ).all()
    assert groups == [f"report:{original.id}"] * 2, "both versions share one group: one in flight at a time (R7)"
    assert [r.version for r in reports.chain_of(db_session, original)] == [1, 2]
    assert [r.id for r in reports.current_reports(db_session, Report.patient_id == t.patient.id)] == [correction.id]


def test_the_follow_up_asked_becomes_the_pathway_step(db_session, session_done, tmp_path):
    t = session_done
    template = next(
        tpl for tpl in pathways.templates_for(db_session, t.cpts.id) if tpl.code == "insuffisance_cardiaque"
    )
    pathway = pathways.start(db_session, t.coordinator, patient=t.patient, template=template, started_on=NOW.date())
    echo = next(s for s in pathway.steps if s.condition)
    report = written(db_session, t, follow_up="Échocardiographie en présentiel", follow_up_modality="in_person")
    factories.sign_and_render(db_session, t.cardiologist_user, report, upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE)
    assert echo.due_on == SIGNED_AT.date() and echo.state is StepState.PLANNED
    assert "demandé par le compte rendu" in echo.condition
    due = pathways.next_due_steps(db_session, t.cpts.id, until=SIGNED_AT.date())
    assert echo.id in [step.id for step, _ in due], "it reaches the coordinator's queue"
    assert db_session.scalar(select(func.count(CarePathwayStep.id))) == len(template.steps)


@pytest.fixture
def serial_telesoin(db_session, territory):
    t = territory
    kine = factories.professional(db_session, t.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True)
    t.kine_user = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=kine)
    program = factories.program(db_session, t.cpts, telesoin=True, performer=kine)
    sessions = []
    for week in range(2):
        start = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC) + dt.timedelta(weeks=week)
        sessions.append(
            appointments.book(
                db_session,
                t.coordinator,
                slot=factories.slot(db_session, program, start),
                patient=t.patient,
                place_kind=PlaceKind.HOME,
                telesoin=appointments.TelesoinAct(
                    act=TelesoinActCode.LIMB_OR_SPINE, coefficient=Decimal(8), last_in_person_contact_on=SEEN_ON
                ),
                now=NOW,
            )
        )
    return t, sessions


def test_a_serial_telesoin_session_may_skip_its_report_but_not_the_last(db_session, serial_telesoin):
    t, (first, last) = serial_telesoin
    reports.waive_report(db_session, t.kine_user, first, reason="Séance 1 d'une série de 10")
    assert first.report_waived_reason == "Séance 1 d'une série de 10"
    with pytest.raises(RuleViolation, match="dernière séance"):
        reports.waive_report(db_session, t.kine_user, last, reason="Fin de série")
    assert last.report_waived_reason is None


def test_a_teleconsultation_cannot_skip_its_report(db_session, session_done):
    t = session_done
    with pytest.raises(RuleViolation, match="télésoin"):
        reports.waive_report(db_session, t.cardiologist_user, t.appointment, reason="x")


def test_overdue_lists_unsigned_sessions_and_late_deliveries(db_session, session_done, tmp_path):
    t = session_done
    late = t.appointment.ends_at + dt.timedelta(hours=49)
    (item,) = late_items(db_session, t.cpts.id, now=late)
    assert (item.kind, item.appointment_id) == ("unsigned", t.appointment.id)
    assert late_items(db_session, t.cpts.id, now=t.appointment.ends_at + dt.timedelta(hours=47)) == []
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=late, zone=ZONE
    )
    (item,) = late_items(db_session, t.cpts.id, now=late + dt.timedelta(minutes=1))
    assert item.kind == "unsent", "signed late, its delivery is already past due and still queued"


def test_overdue_alerts_each_coordinator_once(db_session, session_done):
    t = session_done
    late = t.appointment.ends_at + dt.timedelta(hours=49)
    assert reports.alert_overdue(db_session, now=late) == 1
    assert reports.alert_overdue(db_session, now=late + dt.timedelta(hours=1)) == 0
    message = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "report_overdue"))
    assert message.recipient == "coord@example.org" and "Dyspn" not in message.payload


def test_deliveries_follow_the_outbox_and_the_mdns(db_session, session_done, tmp_path):
    t = session_done
    qualify(db_session, t.patient, dmp_consent=True, recorded_by=t.coordinator)
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    by_role = {d.recipient_role: d for d in report.deliveries}
    for delivery in report.deliveries:
        message = db_session.get(OutboxMessage, delivery.outbox_message_id)
        message.state, message.sent_at = OutboxState.SENT, SIGNED_AT
    db_session.flush()
    deliveries.sync_with_outbox(db_session, now=SIGNED_AT)
    for delivery in report.deliveries:
        db_session.refresh(delivery)
    db_session.refresh(report)
    assert by_role[RecipientRole.DMP].state is DeliveryState.ACKNOWLEDGED, "the DMP answers synchronously"
    assert by_role[RecipientRole.ATTENDING_GP].state is DeliveryState.SENT
    assert report.state is ReportState.SENT

    def mdn(delivery, acknowledged=True, code=None):
        return SimpleNamespace(
            token=delivery.message_id, acknowledged=acknowledged, code=code, text=None, received_at=SIGNED_AT
        )

    stray = SimpleNamespace(token="0" * 40, acknowledged=True, code=None, text=None, received_at=SIGNED_AT)
    outcome = deliveries.apply_dispositions(
        db_session, [mdn(by_role[RecipientRole.ATTENDING_GP]), stray], now=SIGNED_AT
    )
    assert (outcome.matched, outcome.unknown) == (1, 1)
    assert report.state is ReportState.SENT, "the patient's mailbox has not answered yet"
    deliveries.apply_dispositions(db_session, [mdn(by_role[RecipientRole.PATIENT], False, "903")], now=SIGNED_AT)
    assert by_role[RecipientRole.PATIENT].state is DeliveryState.REFUSED
    assert by_role[RecipientRole.PATIENT].refusal_code == "903"
    assert report.state is ReportState.SENT, "a refusal is shown, not acknowledged"


def test_all_acknowledged_makes_the_report_acknowledged(db_session, session_done, tmp_path):
    t = session_done
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    (delivery,) = report.deliveries
    processed = SimpleNamespace(token=delivery.message_id, acknowledged=True, code=None, text=None, received_at=None)
    deliveries.apply_dispositions(db_session, [processed], now=SIGNED_AT)
    deliveries.apply_dispositions(db_session, [processed], now=SIGNED_AT)  # read twice: no change
    assert delivery.state is DeliveryState.ACKNOWLEDGED
    assert report.state is ReportState.ACKNOWLEDGED and report.acknowledged_at == SIGNED_AT


def test_a_degraded_session_still_gets_its_report(db_session, territory, tmp_path):
    t = territory
    user = factories.user(db_session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    slot = factories.slot(db_session, t.program, dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    check_in(db_session, t.idel_user, appointment)
    appointments.degrade(db_session, t.idel_user, appointment, reason="Coupure vidéo")
    assert appointment.state is AppointmentState.DEGRADED
    report = reports.start_report(db_session, user, appointment)
    reports.update_draft(
        db_session,
        user,
        report,
        acts="Consultation poursuivie par téléphone",
        conclusion="RAS",
        technical_incidents="Coupure vidéo à 14 h 05",
    )
    assert factories.sign_and_render(db_session, user, report, upload_dir=tmp_path, zone=ZONE).state is ReportState.SENT
    assert db_session.scalar(select(func.count(Report.id))) == 1


def test_every_version_shares_the_first_versions_set_id(db_session, session_done, tmp_path):
    t = session_done
    first = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, zone=ZONE
    )
    second = factories.sign_and_render(
        db_session,
        t.cardiologist_user,
        reports.supersede(db_session, t.cardiologist_user, first),
        upload_dir=tmp_path,
        zone=ZONE,
    )
    third = factories.sign_and_render(
        db_session,
        t.cardiologist_user,
        reports.supersede(db_session, t.cardiologist_user, second),
        upload_dir=tmp_path,
        zone=ZONE,
    )
    cda = ET.fromstring(read_stored(tmp_path, third.cda_sha256))
    assert cda.find(f"{CDA}setId").get("root") == first.document_uid
    assert cda.find(f"{CDA}versionNumber").get("value") == "3"
    parent = cda.find(f"{CDA}relatedDocument/{CDA}parentDocument/{CDA}id")
    assert parent.get("root") == second.document_uid


def test_a_subscribed_cpts_gets_the_report_events_by_webhook(db_session, session_done, tmp_path):
    t = session_done
    report = written(db_session, t)
    db_session.add(
        ConnectorSetting(
            cpts_id=t.cpts.id, channel="webhook", settings=json.dumps({"WEBHOOK_URL": "https://si.cpts.example/hooks"})
        )
    )
    db_session.flush()
    factories.sign_and_render(db_session, t.cardiologist_user, report, upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE)
    (event,) = db_session.scalars(select(OutboxMessage).where(OutboxMessage.channel == "webhook")).all()
    assert (event.recipient, event.kind) == ("https://si.cpts.example/hooks", "report.signed")
    assert json.loads(event.payload)["data"] == {
        "report_id": report.id,
        "version": 1,
        "appointment_id": t.appointment.id,
    }
    assert "décompensation" not in event.payload, "ids and the event's name only"


def test_without_a_subscription_no_event_is_queued(db_session, session_done, tmp_path):
    t = session_done
    factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    assert db_session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.channel == "webhook")) == 0


@pytest.mark.parametrize(
    ("enabled", "url"), [(False, "https://si.cpts.example/hooks"), (True, "http://si.cpts.example/hooks"), (True, "")]
)
def test_a_disabled_or_unusable_subscription_queues_no_event(db_session, session_done, tmp_path, enabled, url):
    """The signature reads the CPTS's webhook settings with its session (events.subscriber_settings): a channel
    switched off, or without an https address, is no subscriber there either."""
    t = session_done
    report = written(db_session, t)
    settings = json.dumps({"WEBHOOK_URL": url})
    db_session.add(ConnectorSetting(cpts_id=t.cpts.id, channel="webhook", settings=settings, is_enabled=enabled))
    db_session.flush()
    factories.sign_and_render(db_session, t.cardiologist_user, report, upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE)
    assert db_session.scalar(select(func.count(OutboxMessage.id)).where(OutboxMessage.channel == "webhook")) == 0


def test_a_session_is_late_by_its_programs_shortest_delay(db_session, session_done):
    t = session_done
    t.program.report_delay_patient_hours = 6
    db_session.flush()
    assert late_items(db_session, t.cpts.id, now=t.appointment.ends_at + dt.timedelta(hours=5)) == []
    (item,) = late_items(db_session, t.cpts.id, now=t.appointment.ends_at + dt.timedelta(hours=7))
    assert item.since == t.appointment.ends_at + dt.timedelta(hours=6)


def test_the_late_list_and_the_routing_read_one_delay(db_session, session_done, tmp_path):
    """A session is late to sign when its first delivery would be due; each delivery is due when the list says."""
    t = session_done
    t.program.report_delay_doctors_hours, t.program.report_delay_patient_hours = 30, 9
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    first_due = reports.signature_due_at(t.appointment.ends_at, t.program)
    assert first_due == t.appointment.ends_at + dt.timedelta(hours=9)
    (item,) = late_items(db_session, t.cpts.id, now=first_due + dt.timedelta(minutes=1))
    assert item.since == first_due
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    assert {d.recipient_role: d.due_at for d in report.deliveries} == {
        d.recipient_role: reports.delivery_due_at(t.appointment.ends_at, t.program, d.recipient_role)
        for d in report.deliveries
    }
    assert {d.recipient_role: d.due_at - t.appointment.ends_at for d in report.deliveries}[
        RecipientRole.ATTENDING_GP
    ] == dt.timedelta(hours=30)


def test_an_unreachable_mailbox_leaves_its_mdns_for_the_next_pass(app, db_session):
    from tests.servers import free_port

    settings = {
        "MSSANTE_IMAP_HOST": "127.0.0.1",
        "MSSANTE_IMAP_PORT": free_port(),  # nothing listens: the worker's loop goes on
        "MSSANTE_IMAP_USER": "hub-app",
        "MSSANTE_IMAP_PASSWORD": "secret",
    }
    summary = deliveries.follow_deliveries(app.extensions["hub.sessions"], mdn_settings=settings)
    assert summary.endswith("0 accusé(s) lu(s), 0 inconnu(s)")


def test_a_report_with_several_late_deliveries_is_one_alert(db_session, session_done, tmp_path):
    t = session_done
    qualify(db_session, t.patient, dmp_consent=True, recorded_by=t.coordinator)
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    assert len(report.deliveries) == 3
    late = t.appointment.ends_at + dt.timedelta(days=5)  # MSSanté and the DMP down for days (R14)
    assert [item.kind for item in late_items(db_session, t.cpts.id, now=late)] == ["unsent"] * 3
    assert reports.alert_overdue(db_session, now=late) == 1
    assert reports.alert_overdue(db_session, now=late) == 0


def test_a_follow_up_signed_after_midnight_in_paris_is_due_that_day(db_session, session_done, tmp_path):
    t = session_done
    template = next(
        tpl for tpl in pathways.templates_for(db_session, t.cpts.id) if tpl.code == "insuffisance_cardiaque"
    )
    pathway = pathways.start(db_session, t.coordinator, patient=t.patient, template=template, started_on=NOW.date())
    echo = next(s for s in pathway.steps if s.condition)
    report = written(db_session, t, follow_up="Échocardiographie", follow_up_modality="in_person")
    half_past_midnight = dt.datetime(2026, 11, 24, 0, 30, tzinfo=ZoneInfo("Europe/Paris"))  # 23:30 UTC the 23rd
    factories.sign_and_render(
        db_session, t.cardiologist_user, report, upload_dir=tmp_path, now=half_past_midnight, zone=ZONE
    )
    assert echo.due_on == dt.date(2026, 11, 24) and echo.condition.endswith("24/11/2026")


def test_withdrawing_the_dmp_consent_stops_the_deposits_still_waiting(db_session, session_done, tmp_path):
    from hub.services import identity

    t = session_done
    qualify(db_session, t.patient, dmp_consent=True, recorded_by=t.coordinator)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    deposit = next(d for d in report.deliveries if d.channel == "dmp")
    mailbox = next(d for d in report.deliveries if d.recipient_role is RecipientRole.PATIENT)
    consent = next(c for c in t.patient.consents if c.kind is ConsentKind.DMP_ACCESS)
    identity.withdraw_consent(db_session, t.coordinator, consent, reason="Refus du patient")
    db_session.expire_all()
    assert db_session.get(OutboxMessage, deposit.outbox_message_id).state is OutboxState.DEAD
    assert db_session.get(OutboxMessage, mailbox.outbox_message_id).state is OutboxState.PENDING, "only the DMP's"
    deliveries.sync_with_outbox(db_session)
    db_session.expire_all()
    assert db_session.get(Delivery, deposit.id).state is DeliveryState.FAILED
    with pytest.raises(Conflict, match="consentement DMP retiré"):
        requeue(db_session, t.coordinator, deposit.outbox_message_id)


def delivered_three_ways(db_session, t, tmp_path) -> Report:
    """A report signed and rendered for the DMP (consent given), the attending GP's mailbox and the patient."""
    qualify(db_session, t.patient, dmp_consent=True, recorded_by=t.coordinator)
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    return factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )


def test_the_outbox_outcomes_reach_the_deliveries_in_one_statement(db_session, session_done, engine, tmp_path):
    """sync_with_outbox, the worker's every few seconds: a sent DMP deposit acknowledged, a sent mailbox message sent,
    a dead one failed, a re-queued one queued again, each with its times; one UPDATE each time (it was four), and
    with nothing to carry that UPDATE alone."""
    report = delivered_three_ways(db_session, session_done, tmp_path)
    by_role = {d.recipient_role: d for d in report.deliveries}
    deposit, mailbox, doctor = (
        by_role[RecipientRole.DMP],
        by_role[RecipientRole.PATIENT],
        by_role[RecipientRole.ATTENDING_GP],
    )
    sent_at = SIGNED_AT + dt.timedelta(minutes=3)
    for delivery, state in ((deposit, OutboxState.SENT), (doctor, OutboxState.SENT), (mailbox, OutboxState.DEAD)):
        message = db_session.get_one(OutboxMessage, delivery.outbox_message_id)
        message.state, message.sent_at = state, sent_at if state is OutboxState.SENT else None
    db_session.flush()

    def synced() -> tuple[int, list[str]]:
        with count_queries(engine) as seen:
            changed = deliveries.sync_with_outbox(db_session, now=sent_at)
        db_session.expire_all()
        return changed, [sql for sql in seen if sql.startswith("UPDATE deliveries")]

    changed, updates = synced()
    assert changed == 3 and len(updates) == 1
    states = {
        d.recipient_role: (d.state, d.sent_at, d.acknowledged_at)
        for d in db_session.get_one(Report, report.id).deliveries
    }
    assert states == {
        RecipientRole.DMP: (DeliveryState.ACKNOWLEDGED, sent_at, sent_at),
        RecipientRole.ATTENDING_GP: (DeliveryState.SENT, sent_at, None),
        RecipientRole.PATIENT: (DeliveryState.FAILED, None, None),
    }
    db_session.get_one(OutboxMessage, mailbox.outbox_message_id).state = OutboxState.PENDING  # re-queued
    db_session.flush()
    assert synced() == (1, updates)
    assert db_session.get_one(Delivery, mailbox.id).state is DeliveryState.QUEUED
    with count_queries(engine) as seen:
        assert deliveries.sync_with_outbox(db_session, now=sent_at) == 0
    assert len([sql for sql in seen if not sql.startswith(("SAVEPOINT", "RELEASE"))]) == 1


def test_a_waived_session_left_last_by_a_cancellation_needs_its_report(db_session, serial_telesoin):
    t, (first, last) = serial_telesoin
    first.state = AppointmentState.DONE  # the session took place (télésoin: the kiné alone)
    reports.waive_report(db_session, t.kine_user, first, reason="Séance 1 d'une série")
    late = first.ends_at + dt.timedelta(days=4)
    assert late_items(db_session, t.cpts.id, now=late) == [], "the series goes on: the waiver holds"
    appointments.cancel(db_session, t.coordinator, last, reason="Fin de prise en charge", now=NOW)
    (item,) = late_items(db_session, t.cpts.id, now=late)
    assert (item.kind, item.appointment_id) == ("unsigned", first.id)


def test_a_qualified_identity_changed_after_signing_stops_the_documents_still_waiting(
    db_session, session_done, tmp_path
):
    from hub.services import identity

    t = session_done
    qualify(db_session, t.patient, recorded_by=t.coordinator)
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    db_session.refresh(t.patient)
    report = factories.sign_and_render(
        db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, now=SIGNED_AT, zone=ZONE
    )
    assert len(report.deliveries) == 2
    identity.update_patient(db_session, t.coordinator, t.patient, {"birth_name": "DUPONT-MARTIN"})
    db_session.expire_all()
    messages = [db_session.get(OutboxMessage, d.outbox_message_id) for d in report.deliveries]
    assert {m.state for m in messages} == {OutboxState.DEAD}
    assert all(m.last_error.startswith("identité du patient modifiée") for m in messages)
    with pytest.raises(Conflict, match="identité du patient modifiée"):
        requeue(db_session, t.coordinator, messages[0].id)


# --- the worker renders what the signature froze -----------------------------------------------------------


def signed_with_a_gp(db_session, t, tmp_path) -> Report:
    """A report signed (not rendered yet) for a médecin traitant with a secure mailbox, committed."""
    gp = factories.professional(db_session, t.cpts, Profession.GENERAL_PRACTITIONER, mssante_address="gp@a.mssante.fr")
    t.patient.attending_gp_id = gp.id
    db_session.flush()
    report = reports.sign(db_session, t.cardiologist_user, written(db_session, t), upload_dir=tmp_path, zone=ZONE)
    db_session.commit()
    return report


def documents_and_deliveries(db_session, report: Report) -> tuple[str | None, int, int]:
    db_session.expire_all()
    messages = select(func.count(OutboxMessage.id)).where(OutboxMessage.kind.like("document:%"))
    return (
        db_session.get_one(Report, report.id).pdf_sha256,
        db_session.scalar(select(func.count(Delivery.id)).where(Delivery.report_id == report.id)),
        db_session.scalar(messages),
    )


def test_signing_freezes_the_content_and_leaves_the_rendering_to_the_worker(db_session, session_done, tmp_path):
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    assert report.state is ReportState.SIGNED and report.document_pending and report.deliveries == []
    assert documents_and_deliveries(db_session, report) == (None, 0, 0), "no delivery without its document"
    frozen = db_session.scalar(select(Report.frozen_content).where(Report.id == report.id))
    assert report.content_sha256 == hashlib.sha256(frozen.encode()).hexdigest()
    with pytest.raises(DocumentPending):
        reports.signed_pdf(db_session, t.cardiologist_user, report, upload_dir=tmp_path)
    signed_name = t.patient.birth_name
    t.patient.birth_name = "RENOMMÉE"  # after the signature: the document keeps what was signed
    db_session.commit()
    factories.rendered(db_session, report, tmp_path)
    assert signed_name.encode() in read_stored(tmp_path, report.cda_sha256)
    assert b"RENOMM" not in read_stored(tmp_path, report.cda_sha256)
    assert report.state is ReportState.SIGNED and len(report.deliveries) == 1


def test_the_worker_renders_the_same_bytes_as_the_signature_did(db_session, session_done, tmp_path):
    """The rendering moved, not changed: the frozen document is the one the signature built, rendered by the same
    function (hub.documents.freezing.freeze), so its PDF and CDA are byte for byte the signature's."""
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    frozen = json.loads(db_session.scalar(select(Report.frozen_content).where(Report.id == report.id)))
    built = reports._document(db_session, report, report.document_uid, None, report.signed_at)
    assert DocumentPackage.from_payload(frozen).document == built
    direct = freeze(built, tmp_path / "direct", zone=ZONE)
    factories.rendered(db_session, report, tmp_path)
    assert (report.pdf_sha256, report.cda_sha256) == (direct.rendering("pdf").sha256, direct.rendering("cda").sha256)


def test_two_workers_render_a_report_once(db_session, session_done, sessions, tmp_path):
    """A worker's claim holds the report for its lease: a second worker's pass leaves it alone (without the
    claim both would render it); once the lease has run out (the first worker died), the next pass renders it."""
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    now = utcnow()
    claimed = reports._claim_rendering(sessions, now, reports.RENDER_LEASE, 10)
    assert [report_id for report_id, _frozen in claimed] == [report.id], "worker A"
    # Worker B saw it free just before A's claim: its own claim finds it held.
    lease = reports.RENDER_LEASE
    assert reports._claim_rendering(sessions, now + dt.timedelta(seconds=30), lease, 10) == []
    second = reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, now=now + dt.timedelta(seconds=30))
    assert second.startswith("0 compte(s)") and documents_and_deliveries(db_session, report) == (None, 0, 0)
    later = now + reports.RENDER_LEASE + dt.timedelta(seconds=1)
    assert reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, now=later).startswith("1 compte(s)")
    pdf, delivered, messages = documents_and_deliveries(db_session, report)
    assert pdf is not None and delivered == messages == 1
    assert reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, now=later).startswith("0 compte(s)")


def test_the_worker_claims_a_batch_in_one_update_and_reads_the_frozen_content_once(
    db_session, session_done, sessions, engine, tmp_path
):
    """The rendering pass's claim is one UPDATE … RETURNING of the batch with its frozen content (not an UPDATE per
    report, then a SELECT of the content before rendering and again to route it): the same report rendered, the same
    deliveries queued."""
    report = signed_with_a_gp(db_session, session_done, tmp_path)
    with count_queries(engine) as seen:
        outcome = reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE)
    assert outcome.startswith("1 compte(s)")
    statements = [" ".join(sql.split()) for sql in seen]
    assert sum(sql.startswith("UPDATE reports SET render_lease_until") for sql in statements) == 1
    assert not [sql for sql in statements if sql.startswith("SELECT reports.frozen_content")]
    pdf, delivered, messages = documents_and_deliveries(db_session, report)
    assert pdf is not None and delivered == messages == 1


def test_the_worker_queues_a_reports_deliveries_in_two_inserts(db_session, session_done, sessions, engine, tmp_path):
    """Three recipients (the patient's mailbox, the GP, the DMP): their messages in one INSERT on PostgreSQL, their
    deliveries in another (it was an INSERT of each per recipient, and a SELECT of the professionals), each delivery
    on its own message, in the recipients' order."""
    t = session_done
    qualify(db_session, t.patient, dmp_consent=True, recorded_by=t.coordinator)
    report = signed_with_a_gp(db_session, t, tmp_path)
    with count_queries(engine) as seen:
        assert reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE).startswith("1 compte(s)")
    inserts = [sql.split("(")[0].strip() for sql in seen if sql.startswith("INSERT")]
    # SQLite does not promise RETURNING's order: SQLAlchemy sends the messages one row per INSERT there (no round trip).
    messages = 1 if engine.dialect.name == "postgresql" else 3
    assert inserts == ["INSERT INTO outbox_messages"] * messages + ["INSERT INTO deliveries"]
    assert not [sql for sql in seen if sql.startswith("SELECT professionals")]
    db_session.expire_all()
    rows = db_session.execute(
        select(Delivery, OutboxMessage)
        .join(OutboxMessage, OutboxMessage.id == Delivery.outbox_message_id)
        .where(Delivery.report_id == report.id)
        .order_by(Delivery.id)
    ).all()
    assert [d.recipient_role for d, _ in rows] == [RecipientRole.PATIENT, RecipientRole.ATTENDING_GP, RecipientRole.DMP]
    assert [m.id for _, m in rows] == sorted(m.id for _, m in rows)
    for delivery, message in rows:
        assert (message.channel, message.recipient) == (delivery.channel, delivery.address)
        assert message.idempotency_key == f"doc:{report.document_uid}:{delivery.channel}:{delivery.address.lower()}"
        assert json.loads(message.payload)["recipient_role"] == delivery.recipient_role.value
        assert message.group_key == f"report:{report.root_id}" and message.state is OutboxState.PENDING
        assert delivery.state is DeliveryState.QUEUED
    gp_delivery = rows[1][0]
    assert gp_delivery.recipient_professional_id == db_session.get_one(Patient, t.patient.id).attending_gp_id


def test_a_rendering_finished_twice_queues_the_deliveries_once(db_session, session_done, tmp_path):
    """A worker whose lease ran out while it rendered finishes after the one that took over: it writes nothing."""
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    frozen = json.loads(db_session.scalar(select(Report.frozen_content).where(Report.id == report.id)))
    package = reports.render_frozen(frozen, tmp_path, zone=ZONE)
    assert reports.finish_rendering(db_session, report.id, package) is True
    assert reports.finish_rendering(db_session, report.id, package) is False
    assert documents_and_deliveries(db_session, report)[1:] == (1, 1)


def test_finishing_a_rendering_locks_and_writes_the_report_in_one_statement(db_session, session_done, tmp_path):
    """The conditional UPDATE takes the lock and records the documents; then the messages and the deliveries."""
    report = signed_with_a_gp(db_session, session_done, tmp_path)
    frozen = json.loads(db_session.scalar(select(Report.frozen_content).where(Report.id == report.id)))
    package, report_id = reports.render_frozen(frozen, tmp_path, zone=ZONE), report.id
    db_session.expire_all()  # as the worker's session, holding no report
    with count_queries(db_session.get_bind()) as seen:
        assert reports.finish_rendering(db_session, report_id, package, frozen=frozen) is True
    written = [statement.split()[0] for statement in seen if not statement.startswith(("SAVEPOINT", "RELEASE"))]
    assert written == ["UPDATE", "INSERT", "INSERT"]
    assert documents_and_deliveries(db_session, report) == (package.rendering("pdf").sha256, 1, 1)


def test_a_worker_dying_mid_render_loses_nothing(db_session, session_done, sessions, tmp_path):
    """The rendering fails (here the store cannot be written): nothing is recorded, nothing queued, the report
    stays « en préparation » and the next pass after the lease renders it and queues its delivery."""
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    blocked = factories.unwritable_upload_dir(tmp_path)
    now = utcnow()
    failed = reports.render_pending(sessions, upload_dir=blocked, zone=ZONE, now=now)
    assert failed.endswith("1 échec(s)") and documents_and_deliveries(db_session, report) == (None, 0, 0)
    assert db_session.get_one(Report, report.id).document_pending
    later = now + reports.RENDER_LEASE + dt.timedelta(seconds=1)
    assert reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, now=later).startswith("1 compte(s)")
    assert documents_and_deliveries(db_session, report)[1:] == (1, 1)


def test_a_report_in_preparation_is_not_sent_for_want_of_deliveries(db_session, session_done, tmp_path):
    """Its deliveries do not exist yet: the sync with the outbox must not take « none waiting » for « all sent »."""
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    deliveries.settle_reports(db_session, now=utcnow())
    db_session.commit()
    assert db_session.get_one(Report, report.id).state is ReportState.SIGNED


def signed_with_its_correction(db_session, t, tmp_path) -> tuple[Report, Report]:
    """An original signed for the GP, then its correction signed before the worker rendered either."""
    original = signed_with_a_gp(db_session, t, tmp_path)
    correction = reports.supersede(db_session, t.cardiologist_user, original)
    reports.update_draft(db_session, t.cardiologist_user, correction, conclusion="Pas de décompensation, ECG normal.")
    reports.sign(db_session, t.cardiologist_user, correction, upload_dir=tmp_path, zone=ZONE)
    db_session.commit()
    return original, correction


def test_a_pass_renders_batch_after_batch_and_the_original_before_its_correction(
    db_session, session_done, sessions, tmp_path
):
    """A peak of signatures is rendered in one pass, a batch at a time; a correction signed before its original
    was rendered is queued after it, so that the original's messages leave first (R7)."""
    t = session_done
    original, correction = signed_with_its_correction(db_session, t, tmp_path)
    assert reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, limit=1).startswith("2 compte(s)")
    db_session.expire_all()
    order = db_session.scalars(select(Delivery.report_id).order_by(Delivery.outbox_message_id)).all()
    assert order == [original.id, correction.id]


def test_a_correction_waits_for_its_original_whose_rendering_failed(
    db_session, session_done, sessions, tmp_path, monkeypatch
):
    """The original's rendering fails once and keeps its lease: its correction is not rendered meanwhile (without
    the wait, its deliveries were queued first and reached the recipients before the original's, R7)."""
    t = session_done
    original, correction = signed_with_its_correction(db_session, t, tmp_path)
    finish, failed = reports.finish_rendering, []

    def failing_once(session, report_id, package, **kwargs):  # a transient failure (the disk, the database)
        if report_id == original.id and not failed:
            failed.append(report_id)
            raise OSError("transient")
        return finish(session, report_id, package, **kwargs)

    monkeypatch.setattr(reports, "finish_rendering", failing_once)
    now = utcnow()
    first = reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, now=now)
    assert first == "0 compte(s) rendu(s) mis en forme, 1 échec(s)"
    assert db_session.get_one(Report, correction.id).render_attempts == 0, "the correction waits for its original"
    later = now + reports.RENDER_LEASE + dt.timedelta(seconds=1)
    assert reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, now=later).startswith("2 compte(s)")
    db_session.expire_all()
    order = db_session.scalars(select(Delivery.report_id).order_by(Delivery.outbox_message_id)).all()
    assert order == [original.id, correction.id]


def test_a_rendering_that_keeps_failing_is_late_for_the_coordination_and_heals(
    db_session, session_done, sessions, tmp_path
):
    """Each failure is counted and kept (the exception's type, never its message): the report is « en retard » at
    once, and its coordinator alerted; the worker keeps retrying after each lease, and renders it once it can."""
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    blocked = factories.unwritable_upload_dir(tmp_path)
    now = utcnow()
    assert [item.kind for item in late_items(db_session, t.cpts.id, now=now)] == [], "just signed"
    assert reports.render_pending(sessions, upload_dir=blocked, zone=ZONE, now=now).endswith("1 échec(s)")
    (item,) = late_items(db_session, t.cpts.id, now=now)
    assert (item.kind, item.report_id, item.appointment_id) == ("unrendered", report.id, t.appointment.id)
    assert item.detail == "Document non mis en forme : la mise en forme a échoué (1 tentative(s))"
    assert reports.alert_overdue(db_session, now=now) == 1
    alert = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "report_overdue"))
    assert json.loads(alert.payload)["late"] == "unrendered"
    db_session.expire_all()
    stored = db_session.get_one(Report, report.id)
    assert stored.document_failed and stored.render_error and "Error" in stored.render_error
    assert "not-a-directory" not in stored.render_error, "the exception's type, never its message"

    assert reports.render_pending(sessions, upload_dir=blocked, zone=ZONE, now=now).startswith("0 compte(s)")
    later = now + reports.RENDER_LEASE + dt.timedelta(seconds=1)
    assert reports.render_pending(sessions, upload_dir=blocked, zone=ZONE, now=later).endswith("1 échec(s)")
    db_session.expire_all()
    assert db_session.get_one(Report, report.id).render_attempts == 2, "retried after the lease, counted"
    healed = later + reports.RENDER_LEASE + dt.timedelta(seconds=1)
    assert reports.render_pending(sessions, upload_dir=tmp_path, zone=ZONE, now=healed).startswith("1 compte(s)")
    assert "unrendered" not in [item.kind for item in late_items(db_session, t.cpts.id, now=healed)]
    db_session.expire_all()
    assert not db_session.get_one(Report, report.id).document_failed


def test_a_report_not_rendered_some_minutes_after_its_signature_is_late(db_session, session_done, sessions, tmp_path):
    """No failure seen (the worker is down, or dies on it): late once RENDER_LATE has gone since the signature."""
    t = session_done
    report = signed_with_a_gp(db_session, t, tmp_path)
    signed_at = db_session.get_one(Report, report.id).signed_at
    claimed = reports._claim_rendering(sessions, signed_at, reports.RENDER_LEASE, 10)
    assert [report_id for report_id, _frozen in claimed] == [report.id], "then it dies"
    assert late_items(db_session, t.cpts.id, now=signed_at + reports.RENDER_LATE - dt.timedelta(seconds=1)) == []
    (item,) = late_items(db_session, t.cpts.id, now=signed_at + reports.RENDER_LATE + dt.timedelta(seconds=1))
    assert (item.kind, item.detail, item.since) == (
        "unrendered",
        "Document non mis en forme",
        signed_at + reports.RENDER_LATE,
    )


def test_sync_carries_a_failed_delivery_whose_message_was_sent_after_all(db_session, session_done, tmp_path):
    """The branches of the one UPDATE the test above leaves out: a failed delivery whose message is sent after all
    (the DMP's acknowledged at once, a mailbox's sent with its stale acknowledgement cleared), and a queued delivery
    whose message is still being sent (untouched)."""
    report = delivered_three_ways(db_session, session_done, tmp_path)
    by_role = {delivery.recipient_role: delivery for delivery in report.deliveries}
    deposit, doctor = by_role[RecipientRole.DMP], by_role[RecipientRole.ATTENDING_GP]
    mailbox = by_role[RecipientRole.PATIENT]
    earlier = SIGNED_AT - dt.timedelta(days=1)
    sent_at = SIGNED_AT + dt.timedelta(minutes=5)
    for delivery in (deposit, doctor):
        delivery.state, delivery.sent_at, delivery.acknowledged_at = DeliveryState.FAILED, None, earlier
        message = db_session.get_one(OutboxMessage, delivery.outbox_message_id)
        message.state, message.sent_at = OutboxState.SENT, sent_at
    db_session.get_one(OutboxMessage, mailbox.outbox_message_id).state = OutboxState.SENDING
    db_session.flush()

    assert deliveries.sync_with_outbox(db_session, now=sent_at) == 2
    db_session.expire_all()
    states = {
        delivery.recipient_role: (delivery.state, delivery.sent_at, delivery.acknowledged_at)
        for delivery in db_session.get_one(Report, report.id).deliveries
    }
    assert states[RecipientRole.DMP] == (DeliveryState.ACKNOWLEDGED, sent_at, sent_at)
    assert states[RecipientRole.ATTENDING_GP] == (DeliveryState.SENT, sent_at, None)
    assert states[RecipientRole.PATIENT][0] is DeliveryState.QUEUED
