import datetime as dt

import pytest
from sqlalchemy import event, select

from hub.errors import InvalidTransition, RuleViolation, ValidationFailed
from hub.models import (
    AuditEvent,
    CarePathwayState,
    CarePathwayStep,
    Modality,
    PathwayTemplate,
    Profession,
    Role,
    StepState,
)
from tests import ZONE, factories
from workflows import pathways

START = dt.date(2026, 12, 1)


@pytest.fixture
def world(db_session, cpts):
    coordinator = factories.coordinator(db_session, cpts)
    admin = factories.user(db_session, cpts, Role.ADMIN)
    patient = factories.patient(db_session, cpts)
    return coordinator, admin, patient


def shipped(session, code: str) -> PathwayTemplate:
    return session.scalar(
        select(PathwayTemplate).where(PathwayTemplate.cpts_id.is_(None), PathwayTemplate.code == code)
    )


def started(session, actor, patient, code="insuffisance_cardiaque"):
    return pathways.start(session, actor, patient=patient, template=shipped(session, code), started_on=START)


def test_the_shipped_templates_are_listed_with_the_cptss_own(db_session, world, cpts):
    _, admin, _ = world
    pathways.copy_template(db_session, admin, shipped(db_session, "post_avc"), code="avc_local", name="AVC local")
    codes = [t.code for t in pathways.templates_for(db_session, cpts.id)]
    assert "avc_local" in codes and "insuffisance_cardiaque" in codes and len(codes) == 6


def test_starting_plans_each_step_at_the_cumulated_interval(db_session, world):
    coordinator, _, patient = world
    pathway = started(db_session, coordinator, patient)
    assert [s.due_on for s in pathway.steps] == [
        START,
        START + dt.timedelta(days=14),
        START + dt.timedelta(days=44),
        START + dt.timedelta(days=134),
    ]
    assert {s.state for s in pathway.steps} == {StepState.PLANNED}
    assert pathway.steps[2].condition == "si le cardiologue la demande"
    db_session.commit()
    assert db_session.scalar(select(AuditEvent).where(AuditEvent.action == "pathway.start")) is not None


STEP_TRANSITIONS = [
    # (verb, from state, allowed)
    ("book", StepState.PLANNED, True),
    ("book", StepState.BOOKED, False),
    ("book", StepState.DONE, False),
    ("book", StepState.SKIPPED, False),
    ("done", StepState.PLANNED, True),
    ("done", StepState.BOOKED, True),
    ("done", StepState.DONE, False),
    ("done", StepState.SKIPPED, False),
    ("skip", StepState.PLANNED, True),
    ("skip", StepState.BOOKED, True),
    ("skip", StepState.DONE, False),
    ("skip", StepState.SKIPPED, False),
]


@pytest.mark.parametrize(("verb", "current", "allowed"), STEP_TRANSITIONS)
def test_step_transition_table(verb, current, allowed):
    if allowed:
        assert pathways.STEP_MACHINE.target(verb, current) in StepState
    else:
        with pytest.raises(InvalidTransition, match="Action impossible : l'étape est"):
            pathways.STEP_MACHINE.target(verb, current)


PATHWAY_TRANSITIONS = [
    ("stop", CarePathwayState.ACTIVE, True),
    ("stop", CarePathwayState.STOPPED, False),
    ("stop", CarePathwayState.COMPLETED, False),
    ("complete", CarePathwayState.ACTIVE, True),
    ("complete", CarePathwayState.STOPPED, False),
    ("complete", CarePathwayState.COMPLETED, False),
]


@pytest.mark.parametrize(("verb", "current", "allowed"), PATHWAY_TRANSITIONS)
def test_pathway_transition_table(verb, current, allowed):
    if allowed:
        assert pathways.PATHWAY_MACHINE.target(verb, current) in CarePathwayState
    else:
        with pytest.raises(InvalidTransition, match="Action impossible : le parcours est"):
            pathways.PATHWAY_MACHINE.target(verb, current)


def test_skip_needs_a_reason_and_is_audited(db_session, world):
    coordinator, _, patient = world
    pathway = started(db_session, coordinator, patient)
    step = pathway.steps[2]
    with pytest.raises(ValidationFailed) as refused:
        pathways.skip_step(db_session, coordinator, step, reason="  ")
    assert refused.value.errors["reason"] == "Indiquez pourquoi l'étape est sautée."
    pathways.skip_step(db_session, coordinator, step, reason="Le cardiologue ne la demande pas")
    assert step.state is StepState.SKIPPED and step.skip_reason == "Le cardiologue ne la demande pas"
    db_session.commit()
    assert db_session.scalar(select(AuditEvent).where(AuditEvent.action == "pathway.step.skip")) is not None
    with pytest.raises(InvalidTransition):
        pathways.skip_step(db_session, coordinator, step, reason="encore")


def test_the_pathway_completes_when_every_step_is_done_or_skipped(db_session, world):
    coordinator, _, patient = world
    pathway = started(db_session, coordinator, patient)
    for step in pathway.steps[:-1]:
        pathways.mark_done(db_session, coordinator, step)
    assert pathway.state is CarePathwayState.ACTIVE
    pathways.skip_step(db_session, coordinator, pathway.steps[-1], reason="Patient hospitalisé")
    assert pathway.state is CarePathwayState.COMPLETED
    with pytest.raises(InvalidTransition):
        pathways.stop(db_session, coordinator, pathway, reason="trop tard")


def test_a_stopped_pathway_keeps_its_reason_and_its_steps_no_longer_move(db_session, world):
    coordinator, _, patient = world
    pathway = started(db_session, coordinator, patient)
    with pytest.raises(ValidationFailed):
        pathways.stop(db_session, coordinator, pathway, reason="")
    pathways.stop(db_session, coordinator, pathway, reason="Patient déménagé")
    assert pathway.state is CarePathwayState.STOPPED and pathway.stop_reason == "Patient déménagé"
    with pytest.raises(InvalidTransition, match="le parcours est « Arrêté »"):
        pathways.mark_done(db_session, coordinator, pathway.steps[0])


def test_shipped_templates_are_never_edited(db_session, world):
    _, admin, _ = world
    step = {"name": "Séance", "modality": Modality.IN_PERSON, "profession": Profession.NURSE}
    with pytest.raises(RuleViolation, match="Un modèle livré ne se modifie pas"):
        pathways.replace_steps(db_session, admin, shipped(db_session, "post_avc"), [step])


def test_an_admin_edits_the_steps_of_the_cptss_copy(db_session, world):
    _, admin, _ = world
    copy = pathways.copy_template(db_session, admin, shipped(db_session, "post_avc"), code="avc")
    steps = [
        {"name": "Bilan", "modality": Modality.IN_PERSON, "profession": Profession.PHYSIOTHERAPIST},
        {
            "name": "Télésoin",
            "modality": Modality.TELESOIN,
            "profession": Profession.PHYSIOTHERAPIST,
            "interval_days": 5,
        },
    ]
    pathways.replace_steps(db_session, admin, copy, steps)
    assert [(s.position, s.name, s.interval_days) for s in copy.steps] == [(1, "Bilan", 0), (2, "Télésoin", 5)]
    assert len(shipped(db_session, "post_avc").steps) == 5


def test_a_kine_pathway_cannot_begin_with_telesoin(db_session, world):
    _, admin, _ = world
    copy = pathways.copy_template(db_session, admin, shipped(db_session, "reeducation_msk"), code="msk")
    steps = [
        {"name": "Suivi IDEL", "modality": Modality.TELESOIN, "profession": Profession.NURSE},
        {"name": "Télésoin", "modality": Modality.TELESOIN, "profession": Profession.PHYSIOTHERAPIST},
    ]
    with pytest.raises(RuleViolation, match="exclusivement à distance n'est pas recommandé"):
        pathways.replace_steps(db_session, admin, copy, steps)


def test_a_copy_needs_a_free_code(db_session, world):
    _, admin, _ = world
    pathways.copy_template(db_session, admin, shipped(db_session, "post_avc"), code="avc")
    with pytest.raises(ValidationFailed):
        pathways.copy_template(db_session, admin, shipped(db_session, "post_avc"), code="avc")


class QueryCounter:
    def __init__(self, engine):
        self.engine, self.count = engine, 0

    def __enter__(self):
        event.listen(self.engine, "before_cursor_execute", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._count)

    def _count(self, *args):
        self.count += 1


def _patients_with_steps(db_session, cpts, coordinator, steps: int):
    """`steps` planned steps spread over patients of the CPTS (four steps per heart-failure pathway)."""
    patients = []
    while sum(len(p.steps) for p in patients) < steps:
        patient = factories.patient(db_session, cpts)
        patients.append(started(db_session, coordinator, patient))
    db_session.flush()
    return patients


@pytest.mark.parametrize("sizes", [(3, 30)])
def test_the_queue_keeps_a_constant_number_of_queries(db_session, engine, cpts, world, sizes):
    coordinator, _, _ = world
    counts = []
    for size in sizes:
        _patients_with_steps(db_session, cpts, coordinator, size)
        db_session.expire_all()
        with QueryCounter(db_session.get_bind()) as counter:
            rows = pathways.next_due_steps(db_session, cpts.id, until=START + dt.timedelta(days=400))
            shown = [(step.pathway.template.name, patient.display_name, step.due_on) for step, patient in rows]
        counts.append(counter.count)
        assert len(shown) >= size
    assert counts[0] == counts[1] <= 2


def test_the_queue_lists_only_planned_steps_of_active_pathways_due_by_the_date(db_session, world, cpts):
    coordinator, _, patient = world
    pathway = started(db_session, coordinator, patient)
    pathways.mark_done(db_session, coordinator, pathway.steps[0])
    other = started(db_session, coordinator, factories.patient(db_session, cpts))
    pathways.stop(db_session, coordinator, other, reason="arrêt")
    rows = pathways.next_due_steps(db_session, cpts.id, until=START + dt.timedelta(days=20))
    assert [(s.id, p.id) for s, p in rows] == [(pathway.steps[1].id, patient.id)]


def test_the_timeline_keeps_a_constant_number_of_queries(db_session, world, cpts):
    coordinator, _, patient = world
    counts = []
    for pathways_count in (1, 8):  # 4 then 32 steps
        while len(pathways.pathways_of(db_session, patient.id)) < pathways_count:
            started(db_session, coordinator, patient)
        db_session.flush()
        db_session.expire_all()
        with QueryCounter(db_session.get_bind()) as counter:
            entries = pathways.timeline(db_session, patient, zone=ZONE)
        counts.append(counter.count)
        assert len([e for e in entries if e.kind == "step"]) == 4 * pathways_count
    assert counts[0] == counts[1]


def test_the_timeline_merges_steps_and_appointments_by_date(db_session, world, cpts):
    coordinator, _, patient = world
    started(db_session, coordinator, patient)
    entries = pathways.timeline(db_session, patient, zone=ZONE)
    assert [e.on for e in entries] == sorted(e.on for e in entries)
    assert entries[0].kind == "step" and entries[0].can_skip


def test_steps_are_rows_of_the_pathway(db_session, world):
    coordinator, _, patient = world
    pathway = started(db_session, coordinator, patient)
    assert db_session.scalar(select(CarePathwayStep.id).where(CarePathwayStep.pathway_id == pathway.id).limit(1))
