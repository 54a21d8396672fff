"""Téléexpertise: a professional of the CPTS (requérant) asks an expert, or a specialty pool, for an opinion on
a patient (requis). One function per verb: it checks the transition and its guards, changes the rows,
writes the audit line and tells whom it concerns (an e-mail without health data; the document itself by
MSSanté).

States: `submitted → assigned (ready) → in_progress → answered → closed`, or `declined`, or `expired` when
the deadline passes (the periodic job `expire_overdue`).

Declining, decided here:
- a request named to one expert: their decline ends it (`declined`); the requester gets the reason and
  may ask someone else (a new request, e.g. to the pool);
- a pool request not yet taken: a member's decline is the pool's answer (the question is not for this
  specialty): `declined`, the requester gets the reason;
- a pool request taken by an expert: their decline hands it back to the pool (`submitted` again, the expert
  cleared, the reason kept and sent to the requester), so that another expert of the pool may take it.

Yearly cap (avenant 9): the tariff in force says how many téléexpertises a year are paid per patient and
requester (RQD) and per patient and expert (TE2), 4 each today; workflows.fees applies it when the answer's
fees accrue. Past the cap a request is still possible, but the requester is told before sending that it will
not be paid and must acknowledge it; the fee is then recorded at 0 € with the reason. A pool request's expert
is unknown before sending: their own cap shows at the answer, as a TE2 recorded at 0 € with the reason.
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeGuard
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session, joinedload, selectinload, sessionmaker

from connectors import outbox
from hub import audit
from hub.auth.permissions import Permission, has_permission
from hub.auth.policies import can_view_patient
from hub.db import rows_changed, session_scope, utcnow
from hub.documents import store
from hub.documents.clinical import ClinicalDocument, DocumentPackage, Section, StoredRendering, new_document_uid
from hub.documents.freezing import freeze
from hub.documents.identity import custodian_of, patient_identity, professional_identity
from hub.errors import Conflict, NotFound, RuleViolation, ValidationFailed
from hub.models import (
    TELEEXPERTISE_REQUEST_LOINC,
    TELEEXPERTISE_STATE_LABELS,
    ConsentKind,
    Delivery,
    Patient,
    Profession,
    Professional,
    RecipientRole,
    Report,
    TeleexpertiseAttachment,
    TeleexpertiseRequest,
    TeleexpertiseState,
    Urgency,
    User,
)
from hub.services import directory
from hub.services.identity import valid_consent
from workflows import attachments, deliveries, fees
from workflows.attachments import StoredFile
from workflows.machine import Machine

S = TeleexpertiseState
OPEN = frozenset({S.SUBMITTED, S.ASSIGNED, S.IN_PROGRESS})
MACHINE = Machine(
    "la demande de téléexpertise",
    {
        "assign": (frozenset({S.SUBMITTED}), S.ASSIGNED),
        "start": (frozenset({S.ASSIGNED}), S.IN_PROGRESS),
        "answer": (frozenset({S.ASSIGNED, S.IN_PROGRESS}), S.ANSWERED),
        "close": (frozenset({S.ANSWERED}), S.CLOSED),
        "decline": (frozenset(OPEN), S.DECLINED),
        "release": (frozenset({S.ASSIGNED, S.IN_PROGRESS}), S.SUBMITTED),  # a pool expert hands it back
        "expire": (frozenset(OPEN), S.EXPIRED),
    },
    TELEEXPERTISE_STATE_LABELS,
)
EXPERTS = (Profession.SPECIALIST, Profession.GENERAL_PRACTITIONER)
REQUESTER_CODE, EXPERT_CODE = "RQD", "TE2"  # the tariff codes of the requester's and the expert's fees
DEFAULT_DELAY = {
    Urgency.URGENT: dt.timedelta(days=2),
    Urgency.SOON: dt.timedelta(days=7),
    Urgency.ROUTINE: dt.timedelta(days=14),
}
MAX_DELAY = dt.timedelta(days=30)
URGENCY_CHOICES = {
    Urgency.URGENT: "Urgent (réponse sous 2 jours)",
    Urgency.SOON: "Rapide (sous 7 jours)",
    Urgency.ROUTINE: "Programmé (sous 14 jours)",
}
REQUEST_TITLE = "Demande de téléexpertise"
MAX_ATTACHMENTS = 5
ANSWER_ACTS = "Avis de téléexpertise (TE2)"  # the answer's « actes réalisés », required to sign it


class OverYearlyCap(RuleViolation):
    """The 5th (or later) téléexpertise of the year for this patient: possible, not paid, said before sending."""

    type_slug = "over-yearly-cap"


# --- the requester ----------------------------------------------------------------------------------------


def create(
    session: Session,
    actor: User,
    data: dict,
    *,
    upload_dir: Path,
    files: Sequence[tuple[bytes, str | None]] = (),
    max_upload_bytes: int = 5 * 1024 * 1024,
    now: dt.datetime | None = None,
    zone: str,
) -> TeleexpertiseRequest:
    """Send a request: checks the requester, the patient (seen by them, with a valid télémédecine consent),
    the question, the expert or pool, the deadline, the yearly cap and the files (type by content, size:
    I3), and only then stores the files outside the web root, the request and its attachments, freezes the
    request document (75496-0), queues it to the named expert's MSSanté mailbox and tells the expert or the
    pool. A refused request leaves nothing, on disk either."""
    now = now or utcnow()
    requester = _check_requester(session, actor)
    patient, consent_id = _check_patient(session, actor, data.get("patient_id"))
    expert, specialty = _check_target(session, requester, data.get("expert_id"), data.get("specialty"))
    question = (data.get("question") or "").strip()
    if not question:
        raise ValidationFailed({"question": "Posez votre question à l'expert·e."})
    deadline = _deadline(data, now, zone)
    over_cap = _over_cap_message(session, patient, requester, expert, now, zone)
    if over_cap and not data.get("acknowledge_over_cap"):
        raise OverYearlyCap(over_cap, errors={"acknowledge_over_cap": over_cap})
    _check_files(files, max_upload_bytes)
    request = TeleexpertiseRequest(
        cpts_id=requester.cpts_id,
        patient_id=patient.id,
        patient=patient,
        requester_id=requester.id,
        requester=requester,
        expert_id=expert.id if expert else None,
        expert=expert,
        specialty=specialty,
        consent_id=consent_id,
        question=question,
        context=(data.get("context") or "").strip() or None,
        deadline_at=deadline,
        state=S.SUBMITTED,
        over_cap_acknowledged=bool(over_cap),
        created_by_user_id=actor.id,
        submitted_at=now,
    )
    session.add(request)
    session.flush()  # the attachments and the document need the request's id
    for content, filename in files:
        stored = store.store_upload(upload_dir, content, filename, max_bytes=max_upload_bytes)
        session.add(TeleexpertiseAttachment(request_id=request.id, uploaded_by_user_id=actor.id, **stored))
    session.flush()
    session.refresh(request, ["attachments"])
    audit.record(
        session,
        actor=actor,
        action="teleexpertise.create",
        target=request,
        cpts_id=request.cpts_id,
        details={"attachments": len(request.attachments), "over_cap": bool(over_cap)},
    )
    _send_document(session, request, upload_dir=upload_dir, now=now, zone=zone)
    _tell_experts(session, request)
    return request


def _check_files(files, max_bytes: int) -> None:
    """Every file's size and type (by its content) before anything is stored; errors by `attachments.<n>`."""
    if len(files) > MAX_ATTACHMENTS:
        raise ValidationFailed({"attachments": f"Au plus {MAX_ATTACHMENTS} pièces jointes."})
    errors = {}
    for index, (content, _filename) in enumerate(files):
        if not content:
            errors[f"attachments.{index}"] = "Le fichier est vide."
        elif len(content) > max_bytes:
            errors[f"attachments.{index}"] = f"Le fichier dépasse la taille maximale ({max_bytes // (1024 * 1024)} Mo)."
        elif store.sniff(content) is None:
            errors[f"attachments.{index}"] = "Format non accepté : seuls les PDF, PNG et JPEG sont acceptés."
    if errors:
        raise ValidationFailed(errors)


def _check_requester(session: Session, actor: User) -> Professional:
    requester = session.get(Professional, actor.professional_id) if actor.professional_id else None
    if (
        requester is None
        or not requester.is_active
        or requester.profession is Profession.COORDINATOR
        or requester.cpts_id != actor.cpts_id
    ):
        raise RuleViolation("Seul·e un·e professionnel·le de santé de la CPTS peut demander une téléexpertise.")
    return requester


def _check_patient(session: Session, actor: User, patient_id) -> tuple[Patient, int]:
    patient = session.get(Patient, patient_id) if isinstance(patient_id, int) else None
    if patient is None or not can_view_patient(session, actor, patient):
        # As for a patient's URL (S2): no oracle of who exists, and the attempt is audited.
        raise NotFound(
            "Patient introuvable.", audit_action="teleexpertise.create", audit_target=("patients", patient_id)
        )
    consent = valid_consent(patient, ConsentKind.TELEHEALTH)
    if consent is None:
        raise ValidationFailed(
            {
                "patient_id": "Ce patient n'a pas de consentement valide à la télémédecine : recueillez-le et "
                "enregistrez-le sur sa fiche avant de demander une téléexpertise."
            }
        )
    return patient, consent.id


def _check_target(session: Session, requester: Professional, expert_id, specialty) -> tuple:
    specialty = (specialty or "").strip() or None
    if expert_id and specialty:
        raise ValidationFailed({"expert_id": "Choisissez un·e expert·e ou une spécialité, pas les deux."})
    if expert_id:
        expert = session.get(Professional, expert_id) if isinstance(expert_id, int) else None
        if not _may_be_expert(expert, requester.cpts_id) or expert.id == requester.id:
            raise ValidationFailed({"expert_id": "Expert·e inconnu·e dans la CPTS (un·e médecin)."})
        return expert, None
    if specialty:
        canonical = _pool_specialty(session, requester, specialty)
        if canonical is None:
            raise ValidationFailed({"specialty": f"Aucun·e spécialiste en « {specialty} » dans la CPTS."})
        return None, canonical
    raise ValidationFailed({"expert_id": "Choisissez l'expert·e ou la spécialité sollicitée."})


def _may_be_expert(professional: Professional | None, cpts_id: int) -> TypeGuard[Professional]:
    return (
        professional is not None
        and professional.cpts_id == cpts_id
        and professional.is_active
        and professional.profession in EXPERTS
    )


def _pool_specialty(session: Session, requester: Professional, specialty: str) -> str | None:
    return session.scalar(
        select(Professional.specialty)
        .where(*_pool_conditions(requester.cpts_id, specialty), Professional.id != requester.id)
        .limit(1)
    )


def _pool_conditions(cpts_id: int, specialty: str) -> list:
    return [
        Professional.cpts_id == cpts_id,
        Professional.is_active.is_(True),
        Professional.profession == Profession.SPECIALIST,
        func.lower(Professional.specialty) == specialty.lower(),
    ]


def pool_members(session: Session, request: TeleexpertiseRequest) -> list[Professional]:
    if request.specialty is None:
        return []
    return list(
        session.scalars(
            select(Professional)
            .where(*_pool_conditions(request.cpts_id, request.specialty), Professional.id != request.requester_id)
            .order_by(Professional.last_name, Professional.id)
        )
    )


def specialties(session: Session, cpts_id: int) -> list[str]:
    """The pools of the CPTS: the specialties of its active specialists."""
    return sorted(
        set(
            session.scalars(
                select(Professional.specialty).where(
                    Professional.cpts_id == cpts_id,
                    Professional.is_active.is_(True),
                    Professional.profession == Profession.SPECIALIST,
                )
            )
        )
    )


def experts(session: Session, cpts_id: int) -> list[Professional]:
    """The physicians of the CPTS one may name as expert."""
    return directory.active_clinicians(session, cpts_id, professions=EXPERTS)


def _deadline(data: dict, now: dt.datetime, zone: str) -> dt.datetime:
    """The answer deadline: given as an instant (API) or a local day (until its end), or by urgency."""
    if data.get("deadline_at") is not None:
        deadline = data["deadline_at"].astimezone(dt.UTC)
    elif data.get("deadline_on") is not None:
        end = dt.datetime.combine(data["deadline_on"], dt.time(23, 59), ZoneInfo(zone))
        deadline = end.astimezone(dt.UTC)
    else:
        deadline = now + DEFAULT_DELAY[Urgency(data.get("urgency") or Urgency.ROUTINE)]
    field = "deadline_on" if "deadline_on" in data else "deadline_at"
    if deadline <= now:
        raise ValidationFailed({field: "Le délai de réponse doit être dans le futur."})
    if deadline > now + MAX_DELAY:
        raise ValidationFailed({field: f"Le délai de réponse ne peut dépasser {MAX_DELAY.days} jours."})
    return deadline


def _year_bounds(now: dt.datetime, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """The local calendar year of `now`, as a UTC range (T11)."""
    tz = ZoneInfo(zone)
    year = now.astimezone(tz).year
    return (
        dt.datetime(year, 1, 1, tzinfo=tz).astimezone(dt.UTC),
        dt.datetime(year + 1, 1, 1, tzinfo=tz).astimezone(dt.UTC),
    )


def count_this_year(session: Session, patient_id: int, *, now: dt.datetime, zone: str, **party) -> int:
    """The patient's téléexpertises of the local year with that requester (requester_id=…) or expert
    (expert_id=…), not counting those declined or expired (they are never paid)."""
    start, end = _year_bounds(now, zone)
    ((column, value),) = party.items()
    return session.execute(
        select(func.count(TeleexpertiseRequest.id)).where(
            TeleexpertiseRequest.patient_id == patient_id,
            getattr(TeleexpertiseRequest, column) == value,
            TeleexpertiseRequest.state.not_in((S.DECLINED, S.EXPIRED)),
            TeleexpertiseRequest.submitted_at >= start,
            TeleexpertiseRequest.submitted_at < end,
        )
    ).scalar_one()


def _over_cap_message(session, patient, requester, expert, now, zone) -> str | None:
    """The warning before sending a request past the yearly cap of the tariff in force (RQD for the
    requester, TE2 for the expert), or None.

    It counts requests, where the fee (workflows.fees) counts paid entries: it predicts. A request still
    open has no fee yet but will have one when answered, so each request of the year counts, save those
    declined or expired (never paid). The two may differ at the edges (a request sent in December and
    answered in January), where the fee has the last word.
    """
    day = fees.local_day(now, zone)
    parties = [("vous", REQUESTER_CODE, {"requester_id": requester.id})]
    if expert is not None:
        parties.append(("cet·te expert·e", EXPERT_CODE, {"expert_id": expert.id}))
    over = None
    for who, code, party in parties:
        cap = fees.yearly_cap_per_patient(session, code, day)
        rank = count_this_year(session, patient.id, now=now, zone=zone, **party) + 1
        if cap is not None and rank > cap and (over is None or rank > over[0]):
            over = (rank, cap, who)
    if over is None:
        return None
    rank, cap, who = over
    return (
        f"{rank}e téléexpertise de l'année pour ce patient (avec {who}) : elle ne sera pas rémunérée "
        f"(au plus {cap} par an et par patient). Confirmez pour l'envoyer quand même."
    )


def _send_document(session: Session, request: TeleexpertiseRequest, *, upload_dir: Path, now, zone: str) -> None:
    """Freeze the request document (75496-0) and send it to the named expert's MSSanté mailbox, if any."""
    package = freeze(request_document(session, request, now=now, zone=zone), upload_dir, zone=zone)
    pdf, cda = package.rendering("pdf"), package.rendering("cda")
    request.document_uid = package.document.document_uid
    request.pdf_sha256, request.pdf_size = pdf.sha256, pdf.size
    request.cda_sha256, request.cda_size = cda.sha256, cda.size
    if request.expert is not None:
        deliveries.deliver_to_professional(
            session,
            package=package,
            professional=request.expert,
            role=RecipientRole.PARTICIPANT,
            cpts_id=request.cpts_id,
            due_at=now,
            teleexpertise_request=request,
        )


def _send_to_taker(
    session: Session, request: TeleexpertiseRequest, taker: Professional, now: dt.datetime, zone: str
) -> None:
    """The expert who takes or is given the request gets the document frozen at submission in their MSSanté
    mailbox too (the same bytes, the same document id), unless it already went there."""
    if not taker.mssante_address or request.document_uid is None:
        return
    already = session.scalar(
        select(Delivery.id).where(
            Delivery.teleexpertise_request_id == request.id,
            func.lower(Delivery.address) == taker.mssante_address.lower(),
        )
    )
    if already is None:
        deliveries.deliver_to_professional(
            session,
            package=frozen_package(session, request, zone=zone),
            professional=taker,
            role=RecipientRole.PARTICIPANT,
            cpts_id=request.cpts_id,
            due_at=now,
            teleexpertise_request=request,
        )


def frozen_package(session: Session, request: TeleexpertiseRequest, *, zone: str) -> DocumentPackage:
    """The request document as frozen at submission, rebuilt around its stored renderings."""
    if (
        request.document_uid is None
        or request.cda_sha256 is None
        or request.cda_size is None
        or request.pdf_sha256 is None
        or request.pdf_size is None
    ):
        raise RuleViolation("La demande n'a pas encore de document : il est figé quand elle est envoyée.")
    document = request_document(session, request, now=request.submitted_at, zone=zone)
    document = replace(document, document_uid=request.document_uid)
    return DocumentPackage(
        document=document,
        renderings=(
            StoredRendering("cda", "text/xml", request.cda_sha256, request.cda_size, "DOC0001.XML"),
            StoredRendering("pdf", "application/pdf", request.pdf_sha256, request.pdf_size, "DOC0001.PDF"),
        ),
    )


def request_document(session: Session, request: TeleexpertiseRequest, *, now: dt.datetime, zone: str):
    """The request as a clinical document: the question, the context, the attachments' list, the deadline."""
    from hub.formatting import french_datetime

    target = request.expert.full_name if request.expert else f"Spécialité : {request.specialty}"
    listing = "\n".join(f"- {a.filename} ({a.content_type}, {a.size} octets)" for a in request.attachments)
    sections = [
        Section("Expertise sollicitée", target),
        Section("Question", request.question),
        Section("Contexte clinique", request.context or "—"),
        Section("Pièces jointes", listing or "Aucune"),
        Section("Réponse attendue avant le", french_datetime(request.deadline_at, zone)),
    ]
    participants = (professional_identity(request.expert, "Requis"),) if request.expert else ()
    return ClinicalDocument(
        document_uid=new_document_uid(),
        loinc=TELEEXPERTISE_REQUEST_LOINC,
        title=REQUEST_TITLE,
        created_at=now,
        patient=patient_identity(request.patient),
        author=professional_identity(request.requester, "Requérant"),
        custodian=custodian_of(session, request.cpts_id),
        participants=participants,
        sections=tuple(sections),
    )


def _tell_experts(session: Session, request: TeleexpertiseRequest, *, round_key: str = "", but: int | None = None):
    """The named expert, or each member of the pool (but the one who handed it back): an e-mail with ids
    only; the request waits in their « Téléexpertises reçues »."""
    recipients = [request.expert] if request.expert is not None else pool_members(session, request)
    for professional in recipients:
        if professional.id == but:
            continue
        outbox.email_professional(
            session,
            professional,
            kind="teleexpertise_received",
            payload={"teleexpertise_id": request.id},
            key=f"{request.id}:{professional.id}{round_key}",
            cpts_id=request.cpts_id,
        )


def _tell(session: Session, request: TeleexpertiseRequest, professional: Professional | None, kind: str, key: str):
    outbox.email_professional(
        session,
        professional,
        kind=kind,
        payload={"teleexpertise_id": request.id},
        key=f"{request.id}:{key}",
        cpts_id=request.cpts_id,
    )


def close(session: Session, actor: User, request: TeleexpertiseRequest, *, now: dt.datetime | None = None):
    """The requester closes an answered request."""
    lock(session, request)
    request.state = MACHINE.target("close", request.state)
    request.closed_at = now or utcnow()
    audit.record(session, actor=actor, action="teleexpertise.close", target=request, cpts_id=request.cpts_id)
    return request


# --- the expert -------------------------------------------------------------------------------------------


def is_pool_member(professional: Professional | None, request: TeleexpertiseRequest) -> bool:
    return (
        professional is not None
        and request.specialty is not None
        and professional.id != request.requester_id
        and _may_be_expert(professional, request.cpts_id)
        and professional.profession is Profession.SPECIALIST
        and (professional.specialty or "").lower() == request.specialty.lower()
    )


def assign(
    session: Session,
    actor: User,
    request: TeleexpertiseRequest,
    *,
    expert: Professional | None = None,
    zone: str,
    now: dt.datetime | None = None,
) -> TeleexpertiseRequest:
    """An expert takes the request (`expert` None: the actor), or the coordination assigns it. The first
    to take it wins: the change is one UPDATE conditional on the request being still untaken, so that of
    two experts clicking at once the second gets a clear 409. `zone`: the territory's, for the document
    sent to the expert."""
    now = now or utcnow()
    MACHINE.target("assign", request.state)
    me = session.get(Professional, actor.professional_id) if actor.professional_id else None
    taker = expert or me
    if taker is not None and me is not None and taker.id == me.id:
        if not (taker.id == request.expert_id or is_pool_member(taker, request)):
            raise RuleViolation("Cette demande ne vous est pas adressée.")
    elif not (has_permission(actor, Permission.TELEEXPERTISE_ASSIGN) and actor.cpts_id == request.cpts_id):
        raise RuleViolation("Seule la coordination attribue une demande à un·e autre expert·e.")
    elif not _may_be_expert(taker, request.cpts_id) or taker.id == request.requester_id:
        raise ValidationFailed({"expert_id": "Expert·e inconnu·e dans la CPTS (un·e médecin)."})
    elif request.specialty is not None and not is_pool_member(taker, request):
        raise ValidationFailed({"expert_id": f"Choisissez un·e spécialiste en « {request.specialty} »."})
    untaken = (
        TeleexpertiseRequest.expert_id.is_(None)
        if request.expert_id is None
        else TeleexpertiseRequest.expert_id == request.expert_id
    )
    claimed = rows_changed(
        session,
        update(TeleexpertiseRequest)
        .where(TeleexpertiseRequest.id == request.id, TeleexpertiseRequest.state == S.SUBMITTED, untaken)
        .values(state=S.ASSIGNED, expert_id=taker.id, assigned_at=now, updated_at=now)
        .execution_options(synchronize_session=False),
    )
    if claimed != 1:
        raise Conflict("Cette demande vient d'être prise en charge par un·e autre expert·e.")
    session.refresh(request)
    audit.record(
        session,
        actor=actor,
        action="teleexpertise.assign",
        target=request,
        cpts_id=request.cpts_id,
        details={"expert_id": taker.id},
    )
    _send_to_taker(session, request, taker, now, zone)
    if me is None or taker.id != me.id:
        _tell(session, request, taker, "teleexpertise_assigned", f"assigned:{taker.id}:{now.isoformat()}")
    return request


def start(session: Session, actor: User, request: TeleexpertiseRequest) -> TeleexpertiseRequest:
    """The assigned expert starts examining the request (FHIR active/in_progress)."""
    lock(session, request)
    target = MACHINE.target("start", request.state)
    _check_expert(actor, request)
    request.state = target
    audit.record(session, actor=actor, action="teleexpertise.start", target=request, cpts_id=request.cpts_id)
    return request


def _check_expert(actor: User, request: TeleexpertiseRequest) -> None:
    if actor.professional_id is None or actor.professional_id != request.expert_id:
        raise RuleViolation("Seul·e l'expert·e à qui la demande est attribuée peut y répondre.")


def take_to_answer(session: Session, actor: User, request: TeleexpertiseRequest, *, zone: str) -> None:
    """The named expert, or an expert of the pool, takes the request if nobody has (first to take wins) and
    starts it; the draft answer is a report (workflows.reports.begin_answer)."""
    if request.state is S.SUBMITTED:
        assign(session, actor, request, zone=zone)
    if request.state is S.ASSIGNED:
        start(session, actor, request)
    MACHINE.target("answer", request.state)
    _check_expert(actor, request)


def read_attachment(
    session: Session, actor: User, request: TeleexpertiseRequest, attachment_id: int, *, upload_dir: Path
) -> StoredFile:
    """A file of a request the actor may read (a 404 if it is not one of the request's); audited."""
    attachment = session.get(TeleexpertiseAttachment, attachment_id)
    return attachments.read_attachment(
        session,
        actor,
        request,
        attachment if attachment is not None and attachment.request_id == request.id else None,
        requested_id=attachment_id,
        action="teleexpertise.attachment_read",
        table="teleexpertise_attachments",
        upload_dir=upload_dir,
    )


def decline(
    session: Session, actor: User, request: TeleexpertiseRequest, *, reason: str, now: dt.datetime | None = None
) -> TeleexpertiseRequest:
    """Decline with a reason sent to the requester. A pool expert who had taken the request hands it back to
    the pool instead (see the module's docstring)."""
    lock(session, request)
    reason = (reason or "").strip()
    hands_back = request.specialty is not None and request.expert_id is not None
    target = MACHINE.target("release" if hands_back else "decline", request.state)
    if not reason:
        raise ValidationFailed({"reason": "Indiquez la raison : elle est transmise au demandeur."})
    me = session.get(Professional, actor.professional_id) if actor.professional_id else None
    if not (
        me is not None and (me.id == request.expert_id or (request.expert_id is None and is_pool_member(me, request)))
    ):
        raise RuleViolation("Seul·e l'expert·e sollicité·e peut décliner la demande.")
    request.state = target
    request.decline_reason = reason[:500]
    if hands_back:
        request.expert_id, request.assigned_at, request.answer_report_id = None, None, None
    audit.record(
        session,
        actor=actor,
        action="teleexpertise.release" if hands_back else "teleexpertise.decline",
        target=request,
        cpts_id=request.cpts_id,
    )
    stamp = (now or utcnow()).isoformat()
    _tell(session, request, request.requester, "teleexpertise_declined", f"declined:{me.id}:{stamp}")
    if hands_back:
        session.refresh(request, ["expert"])
        _tell_experts(session, request, round_key=f":again:{stamp}", but=me.id)
    return request


def mark_answered(
    session: Session, request: TeleexpertiseRequest, report: Report, *, now: dt.datetime, zone: str
) -> TeleexpertiseRequest:
    """Called by workflows.reports.sign when the answer is signed: the request is answered, the fees accrue
    once (RQD for the requester, TE2 for the expert; the 5th of the year at 0 € with the reason), and the
    requester is told that the answer is signed, its document following within seconds (reports.render_pending
    renders it and routes it)."""
    lock(session, request)
    request.state = MACHINE.target("answer", request.state)
    request.answered_at = now
    request.answer_report_id = report.id
    day = fees.local_day(now, zone)
    expert = session.get_one(Professional, report.author_id)
    requester = session.get_one(Professional, request.requester_id)
    for professional, code, role in ((requester, REQUESTER_CODE, "requester"), (expert, EXPERT_CODE, "expert")):
        fees.accrue(
            session,
            fees.Act(professional, code, day, f"teleexpertise:{request.id}:{role}", patient_id=request.patient_id),
        )
    signer = session.get(User, report.signed_by_user_id) if report.signed_by_user_id else None
    audit.record(
        session,
        actor=signer or "hub",
        action="teleexpertise.answer",
        target=request,
        cpts_id=request.cpts_id,
        details={"report_id": report.id},
    )
    _tell(session, request, requester, "teleexpertise_answered", "answered")
    return request


# --- the deadline ------------------------------------------------------------------------------------------


def expire_overdue(session_factory: sessionmaker[Session], now: dt.datetime) -> str:
    """Requests still open past their deadline become `expired`; the requester (and the expert who had it)
    are told. Each in its own transaction, the change conditional on the request being still open and
    overdue, so that a run overlapping another, or an answer signed at the same moment, wins cleanly."""
    overdue = (TeleexpertiseRequest.state.in_(OPEN), TeleexpertiseRequest.deadline_at <= now)
    with session_scope(session_factory) as session:
        ids = list(session.scalars(select(TeleexpertiseRequest.id).where(*overdue).order_by(TeleexpertiseRequest.id)))
    expired = 0
    for request_id in ids:
        with session_scope(session_factory) as session:
            changed = rows_changed(
                session,
                update(TeleexpertiseRequest)
                .where(TeleexpertiseRequest.id == request_id, *overdue)
                .values(state=S.EXPIRED, updated_at=now)
                .execution_options(synchronize_session=False),
            )
            if changed != 1:
                continue
            request = session.get_one(TeleexpertiseRequest, request_id)
            audit.record(
                session,
                actor="tâche expiration",
                action="teleexpertise.expire",
                target=request,
                cpts_id=request.cpts_id,
            )
            _tell(session, request, session.get(Professional, request.requester_id), "teleexpertise_expired", "expired")
            if request.expert_id is not None:
                _tell(
                    session,
                    request,
                    session.get(Professional, request.expert_id),
                    "teleexpertise_expired",
                    "expired:expert",
                )
            expired += 1
    return f"{expired} demande(s) de téléexpertise expirée(s)"


# --- lists ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestRow:
    request: TeleexpertiseRequest
    time_left: dt.timedelta | None  # None once the request is no longer awaiting an answer


def _listing(query):
    return query.options(
        joinedload(TeleexpertiseRequest.patient),
        joinedload(TeleexpertiseRequest.requester),
        joinedload(TeleexpertiseRequest.expert),
        selectinload(TeleexpertiseRequest.attachments),
    )


def _rows(requests, now: dt.datetime) -> list[RequestRow]:
    return [
        RequestRow(
            request=r,
            time_left=r.deadline_at - now if r.state in OPEN else None,
        )
        for r in requests
    ]


def inbox(session: Session, professional: Professional, *, now: dt.datetime | None = None) -> list[RequestRow]:
    """« Téléexpertises reçues »: the open requests named or assigned to the expert, and their pool's untaken
    ones; the nearest deadline first. A fixed number of queries whatever the number of requests (P6)."""
    now = now or utcnow()
    query = _listing(
        select(TeleexpertiseRequest)
        .where(awaiting_answer_of(professional))
        .order_by(TeleexpertiseRequest.deadline_at, TeleexpertiseRequest.id)
    )
    return _rows(session.scalars(query).unique(), now)


def awaiting_answer_of(professional: Professional) -> ColumnElement[bool]:
    """The WHERE clause of the inbox: open requests named or assigned to the expert, and their pool's untaken
    ones, never their own."""
    mine = TeleexpertiseRequest.expert_id == professional.id
    if professional.profession is Profession.SPECIALIST and professional.specialty:
        pool = TeleexpertiseRequest.expert_id.is_(None) & (
            func.lower(TeleexpertiseRequest.specialty) == professional.specialty.lower()
        )
        mine = mine | pool
    return (
        (TeleexpertiseRequest.cpts_id == professional.cpts_id)
        & TeleexpertiseRequest.state.in_(OPEN)
        & (TeleexpertiseRequest.requester_id != professional.id)
        & mine
    )


def requests_of(session: Session, where, *, now: dt.datetime | None = None, limit: int = 200, offset: int = 0):
    """(rows, total) of the requests matching `where` (e.g. hub.auth.policies.visible_teleexpertise), newest
    first."""
    now = now or utcnow()
    total = session.execute(select(func.count()).select_from(TeleexpertiseRequest).where(where)).scalar_one()
    query = _listing(
        select(TeleexpertiseRequest)
        .where(where)
        .order_by(TeleexpertiseRequest.submitted_at.desc(), TeleexpertiseRequest.id.desc())
    )
    return _rows(session.scalars(query.limit(limit).offset(offset)).unique(), now), total


def lock(session: Session, request: TeleexpertiseRequest) -> None:
    """Take the request's row lock and re-read it (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    session.execute(select(TeleexpertiseRequest.id).where(TeleexpertiseRequest.id == request.id).with_for_update())
    session.refresh(request)
