"""Care pathways: templates as data (shipped rows and the CPTS's own copies), a patient's pathway started
from a template, its steps planned, booked, done or skipped, the coordinator's queue of steps to schedule
and the patient's timeline. One function per verb: check the transition, change the rows, audit.

Care relation: a pathway step names a profession, not a professional, so a pathway adds no care relation
of its own; the professional who performs a booked step is in the appointment (already a relation), and
the médecin traitant sees the patient (and the whole pathway) anyway."""

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, aliased, contains_eager, selectinload

from hub import audit
from hub.db import utcnow
from hub.errors import NotFound, RuleViolation, ValidationFailed
from hub.models import (
    ASSISTED_PROGRAM_KINDS,
    MODALITY_LABELS,
    REFERRAL_STATE_LABELS,
    REPORT_KIND_LABELS,
    REPORT_STATE_LABELS,
    Appointment,
    CarePathway,
    CarePathwayState,
    CarePathwayStep,
    Modality,
    PathwayStepTemplate,
    PathwayTemplate,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    ProgramKind,
    Referral,
    Report,
    ReportState,
    SessionProgram,
    Slot,
    SlotState,
    StepState,
    appointment_state_label,
)
from scheduling.slots import has_seat_left
from workflows import appointments
from workflows.fees import local_day
from workflows.machine import Machine

PATHWAY_STATE_LABELS = {
    CarePathwayState.ACTIVE: "En cours",
    CarePathwayState.COMPLETED: "Terminé",
    CarePathwayState.STOPPED: "Arrêté",
}
STEP_STATE_LABELS = {
    StepState.PLANNED: "À programmer",
    StepState.BOOKED: "Programmée",
    StepState.DONE: "Réalisée",
    StepState.SKIPPED: "Sautée",
}
P, St = CarePathwayState, StepState
PATHWAY_MACHINE = Machine(
    "le parcours",
    {
        "stop": (frozenset({P.ACTIVE}), P.STOPPED),
        "complete": (frozenset({P.ACTIVE}), P.COMPLETED),
    },
    PATHWAY_STATE_LABELS,
)
STEP_MACHINE = Machine(
    "l'étape",
    {
        "book": (frozenset({St.PLANNED}), St.BOOKED),
        "done": (frozenset({St.PLANNED, St.BOOKED}), St.DONE),
        "skip": (frozenset({St.PLANNED, St.BOOKED}), St.SKIPPED),
    },
    STEP_STATE_LABELS,
)
OPEN_STEPS = frozenset({St.PLANNED, St.BOOKED})
KINE = Profession.PHYSIOTHERAPIST.value


def today(zone: str) -> dt.date:
    """The territory's date: just after midnight in Paris it is already tomorrow, while UTC says today."""
    return local_day(utcnow(), zone)


# --- templates ----------------------------------------------------------------------------------------------


def templates_for(session: Session, cpts_id: int, *, active_only: bool = True) -> list[PathwayTemplate]:
    """The shipped templates and the CPTS's own, steps loaded (two queries)."""
    query = (
        select(PathwayTemplate)
        .where((PathwayTemplate.cpts_id.is_(None)) | (PathwayTemplate.cpts_id == cpts_id))
        .options(selectinload(PathwayTemplate.steps))
        .order_by(PathwayTemplate.cpts_id.is_(None), PathwayTemplate.name, PathwayTemplate.id)
    )
    if active_only:
        query = query.where(PathwayTemplate.is_active.is_(True))
    return list(session.scalars(query))


def template_for(session: Session, cpts_id: int, template_id: int) -> PathwayTemplate:
    template = session.get(PathwayTemplate, template_id)
    if template is None or template.cpts_id not in (None, cpts_id):
        raise NotFound("Modèle de parcours introuvable.")
    return template


def copy_template(
    session: Session, actor, source: PathwayTemplate, *, code: str | None = None, name: str | None = None
) -> PathwayTemplate:
    """Copy a template (a shipped one, usually) into the actor's CPTS, where it can be edited."""
    code = code or source.code
    taken = session.scalar(
        select(exists().where(PathwayTemplate.cpts_id == actor.cpts_id, PathwayTemplate.code == code))
    )
    if taken:
        raise ValidationFailed({"code": "La CPTS a déjà un modèle avec ce code."})
    copy = PathwayTemplate(
        cpts_id=actor.cpts_id,
        code=code,
        name=name or source.name,
        description=source.description,
        steps=[
            PathwayStepTemplate(
                position=step.position,
                name=step.name,
                modality=step.modality,
                profession=step.profession,
                interval_days=step.interval_days,
                condition=step.condition,
            )
            for step in source.steps
        ],
    )
    session.add(copy)
    session.flush()  # the audit line names the new id
    audit.record(session, actor=actor, action="pathway_template.copy", target=copy, details={"source_id": source.id})
    return copy


def replace_steps(session: Session, actor, template: PathwayTemplate, steps: list[dict]) -> PathwayTemplate:
    """Replace the steps of one of the CPTS's own templates; shipped rows are never edited."""
    if template.cpts_id is None or template.cpts_id != actor.cpts_id:
        raise RuleViolation("Un modèle livré ne se modifie pas : copiez-le dans la CPTS puis modifiez la copie.")
    check_steps(steps)
    template.steps.clear()
    session.flush()  # the old positions are freed before the new rows take them
    template.steps.extend(
        PathwayStepTemplate(
            position=position,
            name=step["name"],
            modality=step["modality"],
            profession=step["profession"],
            interval_days=step.get("interval_days", 0),
            condition=step.get("condition"),
        )
        for position, step in enumerate(steps, start=1)
    )
    session.flush()
    audit.record(session, actor=actor, action="pathway_template.update", target=template, details={"steps": len(steps)})
    return template


def check_steps(steps: list[dict]) -> None:
    """A template has steps; a kiné's first step is in person (HAS: exclusively remote care is not
    recommended, seed 002)."""
    if not steps:
        raise ValidationFailed({"steps": "Un parcours comporte au moins une étape."})
    first_kine = next((s for s in steps if str(s["profession"]) == KINE), None)
    if first_kine is not None and Modality(first_kine["modality"]) is Modality.TELESOIN:
        raise RuleViolation(
            "La première séance de kinésithérapie doit avoir lieu en présentiel : un parcours exclusivement "
            "à distance n'est pas recommandé (HAS)."
        )


# --- a patient's pathway ------------------------------------------------------------------------------------


def start(session: Session, actor, *, patient: Patient, template: PathwayTemplate, started_on: dt.date) -> CarePathway:
    """Start the pathway: each step planned, due at the start plus the intervals of the steps up to it."""
    if template.cpts_id not in (None, patient.cpts_id) or not template.is_active:
        raise NotFound("Modèle de parcours introuvable.")
    if not template.steps:
        raise RuleViolation("Ce modèle de parcours n'a aucune étape.")
    due, steps = started_on, []
    for step in template.steps:
        due = due + dt.timedelta(days=step.interval_days)
        steps.append(
            CarePathwayStep(
                position=step.position,
                name=step.name,
                modality=step.modality,
                profession=step.profession,
                condition=step.condition,
                due_on=due,
            )
        )
    pathway = CarePathway(
        cpts_id=patient.cpts_id,
        patient_id=patient.id,
        template_id=template.id,
        started_on=started_on,
        created_by_user_id=actor.id,
        steps=steps,
    )
    session.add(pathway)
    session.flush()  # the audit line names the new id
    audit.record(session, actor=actor, action="pathway.start", target=pathway, details={"template_id": template.id})
    return pathway


def step_of(pathway: CarePathway, step_id: int) -> CarePathwayStep:
    step = next((s for s in pathway.steps if s.id == step_id), None)
    if step is None:
        raise NotFound("Étape introuvable.")
    return step


def _step_verb(session, actor, step: CarePathwayStep, verb: str, details: dict | None = None) -> CarePathwayStep:
    pathway = step.pathway
    PATHWAY_MACHINE.target("complete", pathway.state)  # steps move only in an active pathway
    step.state = STEP_MACHINE.target(verb, step.state)
    audit.record(
        session,
        actor=actor,
        action=f"pathway.step.{verb}",
        target=pathway,
        details={"step_id": step.id, **(details or {})},
    )
    if all(s.state not in OPEN_STEPS for s in pathway.steps):
        pathway.state = PATHWAY_MACHINE.target("complete", pathway.state)
        audit.record(session, actor=actor, action="pathway.complete", target=pathway)
    return step


def skip_step(session: Session, actor, step: CarePathwayStep, *, reason: str) -> CarePathwayStep:
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez pourquoi l'étape est sautée."})
    step.skip_reason = reason.strip()
    return _step_verb(session, actor, step, "skip")


def book_step(session: Session, actor, step: CarePathwayStep, *, appointment: Appointment) -> CarePathwayStep:
    if appointment.patient_id != step.pathway.patient_id:
        raise ValidationFailed({"appointment_id": "Ce rendez-vous n'est pas celui du patient du parcours."})
    step.appointment_id = appointment.id
    return _step_verb(session, actor, step, "book", {"appointment_id": appointment.id})


# The steps booked into a program's slot; an in-person step or a téléexpertise is arranged outside the planner.
STEP_PROGRAM_KINDS = {
    Modality.ASSISTED_TELECONSULTATION: ASSISTED_PROGRAM_KINDS,
    Modality.TELESOIN: frozenset({ProgramKind.TELESOIN}),
}
EARLY_BOOKING = dt.timedelta(days=7)


def slots_for_step(
    session: Session, step: CarePathwayStep, *, cpts_id: int, now: dt.datetime | None = None, limit: int = 12
) -> list[Slot]:
    """The next open, unbooked slots of the CPTS's active programs of the step's modality whose performer is of
    the step's profession, from a week before the step is due (or now). One query."""
    kinds = STEP_PROGRAM_KINDS.get(step.modality)
    if kinds is None:
        return []
    now = now or utcnow()
    earliest = dt.datetime.combine(step.due_on, dt.time(), tzinfo=dt.UTC) - EARLY_BOOKING
    return list(
        session.scalars(
            select(Slot)
            .join(SessionProgram, SessionProgram.id == Slot.program_id)
            .join(Professional, Professional.id == SessionProgram.performer_id)
            .options(contains_eager(Slot.program))
            .where(
                SessionProgram.cpts_id == cpts_id,
                SessionProgram.is_active.is_(True),
                SessionProgram.kind.in_(kinds),
                Professional.profession == step.profession,
                Slot.state == SlotState.OPEN,
                Slot.starts_at > max(now, earliest),
                has_seat_left(),  # a group session's slot with seats left is still offered
            )
            .order_by(Slot.starts_at)
            .limit(limit)
        )
    )


def book_step_into_slot(
    session: Session,
    actor,
    step: CarePathwayStep,
    slot: Slot,
    *,
    place_kind: PlaceKind,
    accompanying: Professional | None = None,
    telesoin: appointments.TelesoinAct | None = None,
    now: dt.datetime | None = None,
) -> Appointment:
    """Book the step's patient into the slot (every booking guard applies: consent, eligibility, a télésoin
    session's act, no double booking) and mark the step booked, in one transaction."""
    pathway = step.pathway
    if pathway.state is not CarePathwayState.ACTIVE or step.state is not StepState.PLANNED:
        raise RuleViolation("Seule une étape prévue d'un parcours en cours se programme.")
    if slot.program.kind not in STEP_PROGRAM_KINDS.get(step.modality, ()):
        raise ValidationFailed({"slot_id": "Ce créneau n'est pas de la modalité de l'étape."})
    patient = session.get_one(Patient, pathway.patient_id)
    appointment = appointments.book(
        session,
        actor,
        slot=slot,
        patient=patient,
        place_kind=place_kind,
        accompanying=accompanying,
        telesoin=telesoin,
        now=now,
    )
    book_step(session, actor, step, appointment=appointment)
    return appointment


def mark_done(session: Session, actor, step: CarePathwayStep) -> CarePathwayStep:
    return _step_verb(session, actor, step, "done")


def stop(session: Session, actor, pathway: CarePathway, *, reason: str) -> CarePathway:
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez pourquoi le parcours est arrêté."})
    pathway.state = PATHWAY_MACHINE.target("stop", pathway.state)
    pathway.stop_reason = reason.strip()
    audit.record(session, actor=actor, action="pathway.stop", target=pathway)
    return pathway


def pathways_of(session: Session, patient_id: int) -> list[CarePathway]:
    """The patient's pathways, newest first, steps and template loaded (three queries)."""
    return list(
        session.scalars(
            select(CarePathway)
            .where(CarePathway.patient_id == patient_id)
            .options(selectinload(CarePathway.steps), selectinload(CarePathway.template))
            .order_by(CarePathway.started_on.desc(), CarePathway.id.desc())
        )
    )


# --- the coordinator's queue --------------------------------------------------------------------------------


def next_due_steps(session: Session, cpts_id: int, *, until: dt.date) -> list[tuple[CarePathwayStep, Patient]]:
    """The planned steps of the CPTS's active pathways due by `until`, oldest first, each with its patient
    (one query: the pathway and the patient come joined)."""
    rows = session.execute(
        select(CarePathwayStep, Patient)
        .join(CarePathwayStep.pathway)
        .join(CarePathway.template)
        .join(Patient, Patient.id == CarePathway.patient_id)
        .where(
            CarePathway.cpts_id == cpts_id,
            CarePathway.state == CarePathwayState.ACTIVE,
            CarePathwayStep.state == StepState.PLANNED,
            CarePathwayStep.due_on <= until,
        )
        .options(contains_eager(CarePathwayStep.pathway).contains_eager(CarePathway.template))
        .order_by(CarePathwayStep.due_on, CarePathwayStep.id)
    )
    return [(step, patient) for step, patient in rows]


# --- the patient's timeline ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class TimelineEntry:
    on: dt.date
    kind: str  # "step", "appointment", "referral", "report"
    title: str
    status: str
    detail: str | None = None
    pathway_id: int | None = None
    step_id: int | None = None
    can_skip: bool = False
    report_id: int | None = None  # the report page to link to


@dataclass(frozen=True)
class PathwaySection:
    """What the patient's record shows of pathways: the pathways, the merged timeline, the templates."""

    pathways: list[CarePathway]
    timeline: list[TimelineEntry]
    templates: list[PathwayTemplate]


def timeline(
    session: Session, patient: Patient, pathways: list[CarePathway] | None = None, *, zone: str
) -> list[TimelineEntry]:
    """Pathway steps, appointments and referrals of the patient, by date in the territory's `zone` (a fixed
    number of queries)."""
    if pathways is None:
        pathways = pathways_of(session, patient.id)
    entries = [
        TimelineEntry(
            on=step.due_on,
            kind="step",
            title=f"{pathway.template.name} — {step.name}",
            status=STEP_STATE_LABELS[step.state],
            detail=MODALITY_LABELS[step.modality]
            + (f" ({step.condition})" if step.condition else "")
            + (f" — {step.skip_reason}" if step.skip_reason else ""),
            pathway_id=pathway.id,
            step_id=step.id,
            can_skip=pathway.state is CarePathwayState.ACTIVE and step.state in OPEN_STEPS,
        )
        for pathway in pathways
        for step in pathway.steps
    ]
    appointments = session.scalars(select(Appointment).where(Appointment.patient_id == patient.id))
    entries += [
        TimelineEntry(
            on=local_day(appointment.starts_at, zone),
            kind="appointment",
            title=f"Rendez-vous — {MODALITY_LABELS[Modality(appointment.kind.value)]}",
            status=appointment_state_label(appointment),  # « IDEL à trouver » rather than « Proposé »
        )
        for appointment in appointments
    ]
    referrals = session.execute(
        select(Referral.id, Referral.reason, Referral.state, Referral.created_at, Referral.submitted_at).where(
            Referral.patient_id == patient.id
        )
    )
    entries += [
        TimelineEntry(
            on=local_day(row.submitted_at or row.created_at, zone),
            kind="referral",
            title="Adressage",
            status=REFERRAL_STATE_LABELS[row.state],
            detail=row.reason[:120],
        )
        for row in referrals
    ]
    entries += _report_entries(session, patient, zone)
    return sorted(entries, key=lambda e: (e.on, e.kind, e.step_id or 0))


def _report_entries(session: Session, patient: Patient, zone: str) -> list[TimelineEntry]:
    """The patient's signed reports, each in its latest signed version (one query); a draft is its author's."""
    newer = aliased(Report)
    latest = ~exists().where(
        newer.root_id == Report.root_id, newer.version > Report.version, newer.state != ReportState.DRAFT
    )
    rows = session.execute(
        select(Report.id, Report.kind, Report.state, Report.performed_at, Report.version).where(
            Report.patient_id == patient.id, Report.state != ReportState.DRAFT, latest
        )
    )
    return [
        TimelineEntry(
            on=local_day(row.performed_at, zone),
            kind="report",
            title=REPORT_KIND_LABELS[row.kind],
            status=REPORT_STATE_LABELS[row.state],
            detail=f"version {row.version}" if row.version > 1 else None,
            report_id=row.id,
        )
        for row in rows
    ]


def record_section(session: Session, patient: Patient, *, zone: str) -> PathwaySection:
    pathways = pathways_of(session, patient.id)
    return PathwaySection(
        pathways=pathways,
        timeline=timeline(session, patient, pathways, zone=zone),
        templates=templates_for(session, patient.cpts_id),
    )
