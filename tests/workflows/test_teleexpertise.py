import datetime as dt
import json
import threading
from decimal import Decimal

import pytest
from sqlalchemy import delete, func, select

from connectors import email
from hub.documents import store
from hub.errors import Conflict, InvalidTransition, NotFound, RuleViolation, ValidationFailed
from hub.models import (
    AuditEvent,
    Delivery,
    FeeEntry,
    JobRun,
    OutboxMessage,
    Profession,
    RecipientRole,
    Report,
    ReportKind,
    ReportState,
    Role,
    TeleexpertiseAttachment,
    TeleexpertiseRequest,
    TeleexpertiseState,
)
from hub.services.care import has_care_relation
from scheduling.periodic import JobContext
from scheduling.runner import fire_periodic
from tests import ZONE, factories
from tests.factories import NOW, PARIS
from workflows import fees, reports, teleexpertise
from workflows.jobs import PERIODIC_JOBS

S = TeleexpertiseState


@pytest.fixture
def cardio_user(db_session, territory):
    territory.cardiologist.mssante_address = "lemaitre@ch-perigueux.mssante.fr"
    db_session.flush()
    return factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=territory.cardiologist)


@pytest.fixture
def other_cardio(db_session, territory):
    professional = factories.professional(db_session, territory.cpts, Profession.SPECIALIST, email="c2@example.org")
    return factories.user(db_session, territory.cpts, Role.PROFESSIONAL, professional_row=professional)


def ask(db_session, t, tmp_path, *, actor=None, now=NOW, files=(), **data):
    values = {"patient_id": t.patient.id, "expert_id": t.cardiologist.id, "question": "Plaie qui ne cicatrise pas ?"}
    values |= data
    return teleexpertise.create(
        db_session,
        actor or t.idel_user,
        values,
        upload_dir=tmp_path,
        files=list(files),
        max_upload_bytes=1024,
        now=now,
        zone=ZONE,
    )


def ask_pool(db_session, t, tmp_path, **data):
    return ask(db_session, t, tmp_path, expert_id=None, specialty="cardiologie", **data)


def signed_answer(db_session, t, request, cardio_user) -> Report:
    """A signed answer row, as workflows.reports.sign leaves it (the routing is tested there)."""
    return factories.report(
        db_session,
        request.patient,
        author=t.cardiologist,
        created_by=cardio_user,
        signed=True,
        kind=ReportKind.TELEEXPERTISE,
        performed_at=NOW,
        acts="Avis",
        conclusion="Pansement hydrocolloïde",
        signed_by_user_id=cardio_user.id,
        signed_at=NOW,
    )


# --- creation ---------------------------------------------------------------------------------------------


def test_a_request_to_a_named_expert_is_frozen_and_sent_by_mssante(db_session, territory, tmp_path, cardio_user):
    t = territory
    photo = b"\x89PNG\r\n\x1a\nphoto"
    request = ask(db_session, t, tmp_path, context="Ulcère veineux depuis 2 mois", files=[(photo, "../plaie.png")])
    assert request.state is S.SUBMITTED
    assert request.deadline_at == NOW + teleexpertise.DEFAULT_DELAY[teleexpertise.Urgency.ROUTINE]
    assert [a.filename for a in request.attachments] == ["plaie.png"]
    assert store.read_stored(tmp_path, request.attachments[0].sha256) == photo
    assert request.document_uid.startswith("2.25.")
    assert store.read_stored(tmp_path, request.pdf_sha256).startswith(b"%PDF")
    cda = store.read_stored(tmp_path, request.cda_sha256).decode()
    assert "75496-0" in cda
    delivery = db_session.scalar(select(Delivery).where(Delivery.teleexpertise_request_id == request.id))
    assert (delivery.address, delivery.recipient_role) == (t.cardiologist.mssante_address, RecipientRole.PARTICIPANT)
    mail = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "teleexpertise_received"))
    assert mail.recipient == "cardio@example.org"
    assert "Plaie" not in mail.payload and "Ulcère" not in mail.payload  # no health data in an e-mail
    assert has_care_relation(db_session, t.cardiologist.id, t.patient)
    assert db_session.scalar(select(AuditEvent).where(AuditEvent.action == "teleexpertise.create")) is None  # queued
    assert any(e["action"] == "teleexpertise.create" for e in db_session.info["hub.audit.pending"])


def test_a_pool_request_tells_each_member_and_opens_no_record(db_session, territory, tmp_path, other_cardio):
    t = territory
    request = ask_pool(db_session, t, tmp_path)
    assert (request.expert_id, request.specialty) == (None, "Cardiologie")
    assert db_session.scalar(select(func.count(Delivery.id))) == 0
    recipients = set(
        db_session.scalars(select(OutboxMessage.recipient).where(OutboxMessage.kind == "teleexpertise_received"))
    )
    assert recipients == {"cardio@example.org", "c2@example.org"}
    assert not has_care_relation(db_session, other_cardio.professional_id, t.patient)


@pytest.mark.parametrize("withdrawn", [False, True])
def test_a_valid_telemedicine_consent_is_required(db_session, territory, tmp_path, withdrawn):
    t = territory
    if withdrawn:
        t.patient.consents[0].withdrawn_at = NOW - dt.timedelta(hours=1)
    else:
        patient = factories.patient(db_session, t.cpts)
        factories.in_care_team(db_session, patient, t.idel)
    with pytest.raises(ValidationFailed) as refused:
        ask(db_session, t, tmp_path, patient_id=t.patient.id if withdrawn else patient.id)
    assert "consentement valide à la télémédecine" in refused.value.errors["patient_id"]
    assert db_session.scalar(select(func.count(TeleexpertiseRequest.id))) == 0


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"question": "  "}, "question", "Posez votre question"),
        ({"specialty": "Cardiologie"}, "expert_id", "pas les deux"),
        ({"expert_id": None}, "expert_id", "Choisissez l'expert"),
        ({"expert_id": None, "specialty": "Dermatologie"}, "specialty", "Aucun·e spécialiste"),
        ({"deadline_at": NOW - dt.timedelta(minutes=1)}, "deadline_at", "dans le futur"),
        ({"deadline_at": NOW + dt.timedelta(days=31)}, "deadline_at", "30 jours"),
        ({"deadline_on": NOW.date() - dt.timedelta(days=1)}, "deadline_on", "dans le futur"),
    ],
)
def test_bad_requests_are_refused_in_french(db_session, territory, tmp_path, data, field, message):
    with pytest.raises(ValidationFailed) as refused:
        ask(db_session, territory, tmp_path, **data)
    assert message in refused.value.errors[field]


def test_the_deadline_follows_the_urgency_or_the_local_day(db_session, territory, tmp_path):
    urgent = ask(db_session, territory, tmp_path, urgency="urgent")
    assert urgent.deadline_at == NOW + dt.timedelta(days=2)
    on_day = ask(db_session, territory, tmp_path, deadline_on=dt.date(2026, 11, 20))
    assert on_day.deadline_at == dt.datetime(2026, 11, 20, 23, 59, tzinfo=PARIS)


def test_only_a_professional_who_sees_the_patient_may_ask(db_session, territory, tmp_path, cardio_user):
    stranger = factories.user(db_session, territory.cpts, Role.PROFESSIONAL)  # no care relation
    with pytest.raises(NotFound) as refused:
        ask(db_session, territory, tmp_path, actor=stranger)
    assert refused.value.audit_action == "teleexpertise.create"
    with pytest.raises(RuleViolation):
        ask(db_session, territory, tmp_path, actor=territory.coordinator)


# --- the transition table ---------------------------------------------------------------------------------

VERBS = ("assign", "start", "answer", "close", "decline", "release", "expire")
TABLE = [
    (verb, state, state in teleexpertise.MACHINE.transitions[verb][0]) for verb in VERBS for state in TeleexpertiseState
]


def in_state(db_session, t, tmp_path, state, *, pool: bool):
    request = ask_pool(db_session, t, tmp_path) if pool else ask(db_session, t, tmp_path)
    request.state = state
    if pool:  # taken by an expert of the pool, whom `release` hands it back from
        request.expert_id = t.cardiologist.id
    db_session.flush()
    return request


def run(db_session, t, tmp_path, verb, request, cardio_user, sessions):
    if verb == "assign":
        return teleexpertise.assign(db_session, cardio_user, request, now=NOW, zone=ZONE)
    if verb == "start":
        return teleexpertise.start(db_session, cardio_user, request)
    if verb == "answer":
        return teleexpertise.mark_answered(
            db_session, request, signed_answer(db_session, t, request, cardio_user), now=NOW, zone=ZONE
        )
    if verb == "close":
        return teleexpertise.close(db_session, t.idel_user, request)
    if verb in ("decline", "release"):
        return teleexpertise.decline(db_session, cardio_user, request, reason="Hors de mon champ", now=NOW)
    raise AssertionError(verb)


@pytest.mark.parametrize(("verb", "state", "allowed"), TABLE, ids=[f"{v}-{s.value}" for v, s, _ in TABLE])
def test_transition_table(db_session, territory, tmp_path, cardio_user, sessions, verb, state, allowed):
    t = territory
    request = in_state(db_session, t, tmp_path, state, pool=verb == "release")
    target = teleexpertise.MACHINE.transitions[verb][1]
    if verb == "expire":
        request.deadline_at = NOW - dt.timedelta(hours=1)
        db_session.flush()
        teleexpertise.expire_overdue(sessions, NOW)
        db_session.refresh(request)
        assert request.state is (target if allowed else state)
        return
    if allowed:
        run(db_session, t, tmp_path, verb, request, cardio_user, sessions)
        assert request.state is target
    else:
        with pytest.raises(InvalidTransition):
            run(db_session, t, tmp_path, verb, request, cardio_user, sessions)
        db_session.refresh(request)
        assert request.state is state


def test_a_named_expert_declines_and_the_requester_gets_the_reason(db_session, territory, tmp_path, cardio_user):
    t = territory
    request = ask(db_session, t, tmp_path)
    teleexpertise.decline(db_session, cardio_user, request, reason="Pas mon domaine", now=NOW)
    assert (request.state, request.decline_reason) == (S.DECLINED, "Pas mon domaine")
    assert db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "teleexpertise_declined")).recipient == (
        "idel@example.org"
    )
    assert not has_care_relation(db_session, t.cardiologist.id, t.patient)  # a declined request opens nothing
    with pytest.raises(ValidationFailed):
        teleexpertise.decline(db_session, cardio_user, ask(db_session, t, tmp_path), reason=" ")


def test_a_pool_expert_who_declines_hands_the_request_back_to_the_pool(
    db_session, territory, tmp_path, cardio_user, other_cardio
):
    t = territory
    request = ask_pool(db_session, t, tmp_path)
    teleexpertise.assign(db_session, cardio_user, request, now=NOW, zone=ZONE)
    teleexpertise.start(db_session, cardio_user, request)
    teleexpertise.decline(db_session, cardio_user, request, reason="En congés", now=NOW)
    assert (request.state, request.expert_id, request.decline_reason) == (S.SUBMITTED, None, "En congés")
    teleexpertise.assign(db_session, other_cardio, request, now=NOW, zone=ZONE)
    assert request.expert_id == other_cardio.professional_id


def test_only_the_pool_or_the_coordination_may_assign(db_session, territory, tmp_path, cardio_user, other_cardio):
    t = territory
    request = ask_pool(db_session, t, tmp_path)
    gp = factories.clinician(db_session, t.cpts, Profession.GENERAL_PRACTITIONER)
    with pytest.raises(RuleViolation):
        teleexpertise.assign(db_session, gp, request, now=NOW, zone=ZONE)  # not a cardiologist
    with pytest.raises(RuleViolation):
        teleexpertise.assign(db_session, cardio_user, request, expert=other_cardio.professional, now=NOW, zone=ZONE)
    with pytest.raises(ValidationFailed):
        teleexpertise.assign(
            db_session, t.coordinator, request, expert=gp.professional, now=NOW, zone=ZONE
        )  # not in the pool
    teleexpertise.assign(db_session, t.coordinator, request, expert=other_cardio.professional, now=NOW, zone=ZONE)
    assert (request.state, request.expert_id) == (S.ASSIGNED, other_cardio.professional_id)
    assert db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "teleexpertise_assigned")).recipient == (
        "c2@example.org"
    )


# --- fees and the yearly cap ------------------------------------------------------------------------------


def answered(db_session, t, tmp_path, cardio_user, **data):
    request = ask(db_session, t, tmp_path, **data)
    teleexpertise.assign(db_session, cardio_user, request, now=NOW, zone=ZONE)
    teleexpertise.mark_answered(
        db_session, request, signed_answer(db_session, t, request, cardio_user), now=NOW, zone=ZONE
    )
    return request


def fees_of(db_session, request):
    return {
        e.code: e
        for e in db_session.scalars(select(FeeEntry).where(FeeEntry.source_key.like(f"teleexpertise:{request.id}:%")))
    }


def test_answer_accrues_rqd_and_te2_once(db_session, territory, tmp_path, cardio_user):
    t = territory
    request = answered(db_session, t, tmp_path, cardio_user)
    entries = fees_of(db_session, request)
    assert {code: (e.professional_id, e.amount) for code, e in entries.items()} == {
        "RQD": (t.idel.id, Decimal("10.00")),
        "TE2": (t.cardiologist.id, Decimal("23.00")),
    }
    assert request.answered_at == NOW
    with pytest.raises(InvalidTransition):  # a second signature cannot answer it again
        teleexpertise.mark_answered(
            db_session, request, signed_answer(db_session, t, request, cardio_user), now=NOW, zone=ZONE
        )
    assert len(fees_of(db_session, request)) == 2
    mail = db_session.scalar(select(OutboxMessage).where(OutboxMessage.kind == "teleexpertise_answered"))
    assert mail.recipient == "idel@example.org"
    # Told at the signature, before the answer's document is rendered: the e-mail must not promise it is there.
    _subject, body = email.render(mail.kind, json.loads(mail.payload), base_url=None)
    assert "a signé sa réponse" in body and "dans quelques instants" in body


def test_the_fifth_of_the_year_is_refused_until_acknowledged_then_paid_nothing(
    db_session, territory, tmp_path, cardio_user
):
    t = territory
    declined = ask(db_session, t, tmp_path)
    teleexpertise.decline(db_session, cardio_user, declined, reason="Doublon", now=NOW)  # never paid: not counted
    for _ in range(4):
        answered(db_session, t, tmp_path, cardio_user)
    with pytest.raises(teleexpertise.OverYearlyCap) as refused:
        ask(db_session, t, tmp_path)
    assert "5e téléexpertise de l'année pour ce patient" in refused.value.detail
    assert "ne sera pas rémunérée" in refused.value.errors["acknowledge_over_cap"]
    fifth = answered(db_session, t, tmp_path, cardio_user, acknowledge_over_cap=True)
    assert fifth.over_cap_acknowledged
    entries = fees_of(db_session, fifth)
    assert (entries["RQD"].amount, entries["TE2"].amount) == (Decimal(0), Decimal(0))
    assert "Plafond atteint" in entries["RQD"].note


def test_the_cap_counts_the_paris_calendar_year(db_session, territory, tmp_path, cardio_user):
    t = territory
    new_year_eve = dt.datetime(2026, 12, 31, 23, 30, tzinfo=PARIS)
    for _ in range(4):
        ask(db_session, t, tmp_path, now=new_year_eve)
    with pytest.raises(teleexpertise.OverYearlyCap):
        ask(db_session, t, tmp_path, now=new_year_eve)
    assert ask(db_session, t, tmp_path, now=dt.datetime(2027, 1, 1, 0, 30, tzinfo=PARIS)).state is S.SUBMITTED


def test_the_warning_reads_the_cap_of_the_tariff_in_force(db_session, territory, tmp_path, cardio_user):
    t = territory
    day = NOW.astimezone(PARIS).date()
    fees.tariff_on(db_session, "RQD", day).yearly_cap_per_patient = 2
    for _ in range(2):
        answered(db_session, t, tmp_path, cardio_user)
    with pytest.raises(teleexpertise.OverYearlyCap) as refused:
        ask(db_session, t, tmp_path)
    assert "3e téléexpertise" in refused.value.detail and "au plus 2 par an" in refused.value.detail
    third = answered(db_session, t, tmp_path, cardio_user, acknowledge_over_cap=True)
    assert (fees_of(db_session, third)["RQD"].amount, fees_of(db_session, third)["TE2"].amount) == (0, Decimal("23.00"))


def test_the_cap_per_patient_and_expert_binds_other_requesters(db_session, territory, tmp_path, cardio_user):
    t = territory
    factories.in_care_team(db_session, t.patient, t.other_idel)
    for _ in range(4):
        ask(db_session, t, tmp_path)
    with pytest.raises(teleexpertise.OverYearlyCap) as refused:
        ask(db_session, t, tmp_path, actor=t.other_idel_user)
    assert "cet·te expert·e" in refused.value.detail


def test_signing_the_answer_through_reports_answers_the_request(db_session, territory, tmp_path, cardio_user):
    t = territory
    request = ask(db_session, t, tmp_path)
    draft = reports.begin_answer(db_session, cardio_user, request, zone=ZONE)
    assert request.state is S.IN_PROGRESS and request.answer_report_id == draft.id
    assert reports.begin_answer(db_session, cardio_user, request, zone=ZONE).id == draft.id
    reports.update_draft(db_session, cardio_user, draft, acts="Avis sur photo", conclusion="Compression")
    reports.sign(db_session, cardio_user, draft, upload_dir=tmp_path, now=NOW, zone=ZONE)
    assert request.state is S.ANSWERED
    assert set(fees_of(db_session, request)) == {"RQD", "TE2"}


def test_a_corrected_answer_is_signed_and_routed_without_answering_twice(db_session, territory, tmp_path, cardio_user):
    t = territory
    request = ask(db_session, t, tmp_path)
    draft = reports.begin_answer(db_session, cardio_user, request, zone=ZONE)
    reports.update_draft(db_session, cardio_user, draft, acts="Avis sur photo", conclusion="Compression")
    first = reports.sign(db_session, cardio_user, draft, upload_dir=tmp_path, now=NOW, zone=ZONE)
    correction = reports.supersede(db_session, cardio_user, first)
    assert request.answer_report_id == correction.id
    reports.update_draft(db_session, cardio_user, correction, conclusion="Compression et avis dermatologique")
    signed = reports.sign(db_session, cardio_user, correction, upload_dir=tmp_path, now=NOW, zone=ZONE)
    assert signed.state is not ReportState.DRAFT and request.state is S.ANSWERED
    assert {e.code for e in fees_of(db_session, request).values()} == {"RQD", "TE2"}, "accrued once"


def test_an_expert_who_handed_the_request_back_cannot_sign_its_draft(
    db_session, territory, tmp_path, cardio_user, other_cardio
):
    t = territory
    request = ask_pool(db_session, t, tmp_path)
    draft = reports.begin_answer(db_session, cardio_user, request, zone=ZONE)
    reports.update_draft(db_session, cardio_user, draft, acts="Avis", conclusion="Conclusion")
    teleexpertise.decline(db_session, cardio_user, request, reason="En congés", now=NOW)
    with pytest.raises(RuleViolation, match="plus rattachée"):
        reports.sign(db_session, cardio_user, draft, upload_dir=tmp_path, now=NOW, zone=ZONE)
    assert draft.state is ReportState.DRAFT and draft.document_uid is None


# --- the deadline job -------------------------------------------------------------------------------------


def test_the_expiry_job_runs_once_per_period(db_session, territory, tmp_path, cardio_user, sessions):
    t = territory
    late = ask(db_session, t, tmp_path, deadline_at=NOW + dt.timedelta(hours=2))
    on_time = ask(db_session, t, tmp_path)
    db_session.flush()
    job = next(j for j in PERIODIC_JOBS if j.name == "expire_teleexpertise")
    context = JobContext(sessions, PARIS)
    at = NOW + dt.timedelta(hours=3, minutes=10)
    assert fire_periodic(sessions, job, context, now=at)
    assert not fire_periodic(sessions, job, context, now=at + dt.timedelta(minutes=20))  # same hour
    db_session.refresh(late)
    db_session.refresh(on_time)
    assert (late.state, on_time.state) == (S.EXPIRED, S.SUBMITTED)
    assert db_session.scalar(select(func.count(JobRun.id)).where(JobRun.job == "expire_teleexpertise")) == 1
    told = db_session.scalars(select(OutboxMessage.recipient).where(OutboxMessage.kind == "teleexpertise_expired"))
    assert sorted(told) == ["cardio@example.org", "idel@example.org"]
    assert teleexpertise.expire_overdue(sessions, at) == "0 demande(s) de téléexpertise expirée(s)"


# --- concurrency ------------------------------------------------------------------------------------------


@pytest.fixture
def committed_pool(committed, tmp_path):
    factory, created = committed
    with factory() as session:
        cpts = factories.cpts(session)
        created.append(cpts.id)
        idel = factories.professional(session, cpts, Profession.NURSE)
        idel_user = factories.user(session, cpts, Role.PROFESSIONAL, professional_row=idel)
        experts = [factories.clinician(session, cpts, Profession.SPECIALIST) for _ in range(2)]
        patient = factories.consenting_patient(session, cpts, recorded_by=idel_user)
        factories.in_care_team(session, patient, idel)
        request = teleexpertise.create(
            session,
            idel_user,
            {"patient_id": patient.id, "specialty": "Cardiologie", "question": "ECG ?"},
            upload_dir=tmp_path,
            zone=ZONE,
        )
        session.commit()
        ids = (request.id, [u.id for u in experts])
    yield factory, ids
    with factory() as session:
        requests = select(TeleexpertiseRequest.id).where(TeleexpertiseRequest.cpts_id == cpts.id)
        session.execute(delete(TeleexpertiseAttachment).where(TeleexpertiseAttachment.request_id.in_(requests)))
        session.execute(delete(Delivery).where(Delivery.cpts_id == cpts.id))
        session.execute(delete(TeleexpertiseRequest).where(TeleexpertiseRequest.cpts_id == cpts.id))
        session.commit()


@pytest.mark.concurrency
def test_of_two_experts_taking_a_pool_request_at_once_the_first_wins(committed_pool):
    from hub.models import User

    factory, (request_id, user_ids) = committed_pool
    barrier = threading.Barrier(len(user_ids))
    outcomes: list[str] = []

    def take(user_id):
        barrier.wait()  # before the first statement: on SQLite it takes the write lock (BEGIN IMMEDIATE)
        with factory() as session:
            user = session.get(User, user_id)
            request = session.get(TeleexpertiseRequest, request_id)
            try:
                teleexpertise.assign(session, user, request, zone=ZONE)
                session.commit()
                outcomes.append("taken")
            except (Conflict, InvalidTransition):
                session.rollback()
                outcomes.append("refused")

    threads = [threading.Thread(target=take, args=(user_id,)) for user_id in user_ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert sorted(outcomes) == ["refused", "taken"]
    with factory() as session:
        request = session.get(TeleexpertiseRequest, request_id)
        assert request.state is S.ASSIGNED and request.expert_id is not None


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"MZ\x90\x00 un programme", "Format non accepté"),
        (b"%PDF-" + b"0" * 1024, "taille maximale"),
        (b"", "vide"),
    ],
)
def test_a_refused_file_leaves_nothing_in_the_database_or_on_disk(db_session, territory, tmp_path, content, message):
    good = b"%PDF-1.4 compte rendu"
    with pytest.raises(ValidationFailed) as refused:
        ask(db_session, territory, tmp_path, files=[(good, "cr.pdf"), (content, "photo.png")])
    assert message in refused.value.errors["attachments.1"]
    assert db_session.scalar(select(func.count(TeleexpertiseRequest.id))) == 0
    assert list(tmp_path.rglob("*")) == []


def test_an_expert_of_the_pool_may_answer_at_once_which_takes_the_request(
    db_session, territory, tmp_path, cardio_user, other_cardio
):
    request = ask_pool(db_session, territory, tmp_path)
    draft = reports.begin_answer(db_session, other_cardio, request, zone=ZONE)
    assert (request.state, request.expert_id) == (S.IN_PROGRESS, other_cardio.professional_id)
    assert draft.author_id == other_cardio.professional_id
    with pytest.raises(InvalidTransition):  # taken: too late for the other one
        teleexpertise.assign(db_session, cardio_user, request, now=NOW, zone=ZONE)
    outsider = factories.user(db_session, territory.cpts, Role.PROFESSIONAL)
    with pytest.raises(RuleViolation):
        reports.begin_answer(db_session, outsider, ask_pool(db_session, territory, tmp_path), zone=ZONE)


def test_the_expert_who_takes_a_pool_request_gets_the_frozen_document_by_mssante(
    db_session, territory, tmp_path, cardio_user
):
    from hub.documents.clinical import DocumentPackage

    request = ask_pool(db_session, territory, tmp_path)
    teleexpertise.assign(db_session, cardio_user, request, now=NOW, zone=ZONE)
    delivery = db_session.scalar(select(Delivery).where(Delivery.teleexpertise_request_id == request.id))
    assert delivery.address == territory.cardiologist.mssante_address
    message = db_session.get(OutboxMessage, delivery.outbox_message_id)
    package = DocumentPackage.from_payload(json.loads(message.payload))
    assert package.document.document_uid == request.document_uid
    assert package.rendering("pdf").sha256 == request.pdf_sha256  # the bytes frozen at submission
    named = ask(db_session, territory, tmp_path)
    teleexpertise.assign(db_session, cardio_user, named, now=NOW, zone=ZONE)
    assert db_session.scalar(select(func.count(Delivery.id)).where(Delivery.teleexpertise_request_id == named.id)) == 1
