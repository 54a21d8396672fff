"""Patients without a médecin traitant (issue 16, item 7): the list the coordination keeps with each patient's
consent, triaged by fragility; the GPs of the territory who declare how many new patients they take; proposals to
a GP, who accepts or refuses; the outcome recorded. Every read and change of the list is audited (GDPR), since it
says who is fragile and why.

Fragility score (`fragility`), the sum of:
- age (from the birth date, on the day): 85 and over 3 points, 75–84 2, 65–74 1;
- ALD (affection de longue durée): 2;
- each chronic condition ticked from the short list (CHRONIC_CONDITIONS): 1, at most 3;
- a hospitalisation in the last 90 days: 3 (91–180 days: 1);
- living alone without help (isolation): 2;
- another fragility written by the coordination: 1.
Priority: 7 and over « haute », 4–6 « moyenne », below « basse ». The list reads by score, highest first, then by
the day of entry (longest waiting first)."""

import datetime as dt
from dataclasses import dataclass
from enum import StrEnum
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from connectors import outbox
from hub import audit
from hub.db import rows_changed
from hub.errors import Conflict, Forbidden, NotFound, RuleViolation, ValidationFailed
from hub.models import (
    CHRONIC_CONDITIONS,
    Actor,
    ConsentMethod,
    GpProposal,
    GpProposalState,
    GpSearch,
    GpSearchState,
    Patient,
    Profession,
    Professional,
    User,
)
from hub.services.communes import commune_name, distance_km

PURPOSE = (
    "Finalité : trouver un médecin traitant aux patients du territoire qui n'en ont pas, en commençant par les plus "
    "fragiles. La liste est tenue par la coordination de la CPTS avec le consentement du patient ; chaque lecture et "
    "chaque modification sont tracées ; le retrait du consentement retire le patient de la liste."
)
MAX_CAPACITY = 50  # a GP declares at most this many new patients at once


class Priority(StrEnum):
    HIGH = "haute"
    MEDIUM = "moyenne"
    LOW = "basse"


PRIORITY_LABELS = {Priority.HIGH: "Priorité haute", Priority.MEDIUM: "Priorité moyenne", Priority.LOW: "Priorité basse"}


@dataclass(frozen=True)
class Fragility:
    score: int
    priority: Priority
    reasons: list[str]


@dataclass(frozen=True)
class MatchingGp:
    gp: Professional
    distance_km: float | None

    @property
    def label(self) -> str:
        where = commune_name(self.gp.commune_insee)
        far = (
            "distance inconnue"
            if self.distance_km is None
            else f"{self.distance_km:.1f}".replace(".", ",") + "\u00a0km"
        )
        places = self.gp.new_patient_capacity
        return f"{self.gp.full_name} — {where}, {far} · {places} place{'s' if places > 1 else ''}"


def fragility(search: GpSearch, today: dt.date) -> Fragility:
    """The score, priority and reasons (in French) of the module's scoring."""
    score, reasons = 0, []
    age = _age(search.patient.birth_date, today)
    for threshold, points in ((85, 3), (75, 2), (65, 1)):
        if age >= threshold:
            score += points
            reasons.append(f"{age} ans")
            break
    if search.has_ald:
        score += 2
        reasons.append("ALD")
    conditions = [CHRONIC_CONDITIONS[code] for code in search.conditions if code in CHRONIC_CONDITIONS]
    score += min(len(conditions), 3)
    reasons += conditions
    if search.hospitalised_on is not None:
        days = (today - search.hospitalised_on).days
        if 0 <= days <= 180:
            score += 3 if days <= 90 else 1
            reasons.append(f"hospitalisé·e le {search.hospitalised_on:%d/%m/%Y}")
    if search.is_isolated:
        score += 2
        reasons.append("isolement")
    if search.other_fragility:
        score += 1
        reasons.append(search.other_fragility)
    priority = Priority.HIGH if score >= 7 else Priority.MEDIUM if score >= 4 else Priority.LOW
    return Fragility(score, priority, reasons)


def _age(birth: dt.date, today: dt.date) -> int:
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


def today_in(zone: str, now: dt.datetime) -> dt.date:
    return now.astimezone(ZoneInfo(zone)).date()


# --- the coordination's list -------------------------------------------------------------------------------


def enter(session: Session, actor: Actor, patient: Patient, data: dict, *, now: dt.datetime) -> GpSearch:
    """Put the patient on the list with their consent (day, how) and fragility criteria. Refused for a patient who
    has a médecin traitant or already waits on the list."""
    if patient.attending_gp_id is not None:
        raise RuleViolation("Ce patient a déjà un médecin traitant renseigné dans le hub.")
    if _waiting_of(session, patient.id) is not None:
        raise Conflict("Ce patient est déjà sur la liste des patients sans médecin traitant.")
    unknown = [code for code in data.get("chronic_conditions", []) if code not in CHRONIC_CONDITIONS]
    if unknown:
        raise ValidationFailed({"chronic_conditions": "Pathologie chronique inconnue."})
    if data["consent_on"] > now.date() + dt.timedelta(days=1):
        raise ValidationFailed({"consent_on": "Le consentement ne peut pas être daté dans le futur."})
    search = GpSearch(
        cpts_id=patient.cpts_id,
        patient_id=patient.id,
        patient=patient,
        state=GpSearchState.WAITING,
        consent_on=data["consent_on"],
        consent_method=ConsentMethod(data["consent_method"]),
        entered_at=now,
        entered_by_user_id=actor.id,
        has_ald=data.get("has_ald", False),
        chronic_conditions=" ".join(sorted(set(data.get("chronic_conditions", [])))),
        hospitalised_on=data.get("hospitalised_on"),
        is_isolated=data.get("is_isolated", False),
        other_fragility=data.get("other_fragility"),
    )
    try:
        # The database refuses a second waiting entry of the patient (uq_gp_searches_one_waiting): two coordinators
        # entering the same patient at once get one entry and a 409, not an error page.
        with session.begin_nested():
            session.add(search)
            session.flush()  # the entry's id, for the audit line
    except IntegrityError as exc:
        raise Conflict("Ce patient est déjà sur la liste des patients sans médecin traitant.") from exc
    audit.record(session, actor=actor, action="gp_search.enter", target=search, cpts_id=search.cpts_id)
    return search


def _waiting_of(session: Session, patient_id: int) -> GpSearch | None:
    return session.scalar(
        select(GpSearch).where(GpSearch.patient_id == patient_id, GpSearch.state == GpSearchState.WAITING)
    )


def waiting_list(session: Session, actor: Actor, *, today: dt.date) -> list[tuple[GpSearch, Fragility]]:
    """The CPTS's patients waiting for a médecin traitant, most fragile first, then longest waiting; the read is
    audited."""
    searches = session.scalars(
        select(GpSearch)
        .where(GpSearch.cpts_id == actor.cpts_id, GpSearch.state == GpSearchState.WAITING)
        .options(selectinload(GpSearch.patient), selectinload(GpSearch.proposals).selectinload(GpProposal.gp))
    ).all()
    rows = [(search, fragility(search, today)) for search in searches]
    rows.sort(key=lambda row: (-row[1].score, row[0].entered_at, row[0].id))
    audit.record(session, actor=actor, action="gp_search.list", cpts_id=actor.cpts_id, details={"rows": len(rows)})
    return rows


def search_for(session: Session, actor: Actor, search_id: int, *, action: str = "gp_search.read") -> GpSearch:
    """An entry of the actor's CPTS (an audited 404 otherwise); its read is audited."""
    search = session.get(GpSearch, search_id)
    if search is None or search.cpts_id != actor.cpts_id:
        raise NotFound("Inscription introuvable.", audit_action=action, audit_target=("gp_searches", search_id))
    audit.record(session, actor=actor, action=action, target=search, cpts_id=search.cpts_id)
    return search


def matching_gps(session: Session, search: GpSearch) -> list[MatchingGp]:
    """The territory's active GPs who still take new patients, nearest to the patient's commune first (a commune
    not listed last), then by name; those already asked for this patient are left out."""
    asked = {p.gp_id for p in search.proposals if p.state in (GpProposalState.PENDING, GpProposalState.REFUSED)}
    gps = session.scalars(
        select(Professional).where(
            Professional.cpts_id == search.cpts_id,
            Professional.profession == Profession.GENERAL_PRACTITIONER,
            Professional.is_active.is_(True),
            Professional.new_patient_capacity > 0,
        )
    ).all()
    found = [MatchingGp(gp, distance_km(search.patient.commune_insee, gp.commune_insee)) for gp in gps]
    found = [m for m in found if m.gp.id not in asked]
    found.sort(key=lambda m: (m.distance_km is None, m.distance_km or 0.0, m.gp.last_name, m.gp.id))
    return found


def propose(
    session: Session, actor: Actor, search: GpSearch, gp: Professional | None, *, now: dt.datetime
) -> GpProposal:
    """Ask a GP of the territory who takes new patients to become the patient's médecin traitant."""
    _require_waiting(search)
    if gp is None or gp.cpts_id != search.cpts_id or gp.profession is not Profession.GENERAL_PRACTITIONER:
        raise ValidationFailed({"gp_id": "Médecin généraliste inconnu dans la CPTS."})
    if gp.new_patient_capacity <= 0:
        raise RuleViolation(f"{gp.full_name} n'accepte pas de nouveau patient en ce moment.")
    if any(p.gp_id == gp.id and p.state is GpProposalState.PENDING for p in search.proposals):
        raise Conflict(f"Ce patient est déjà proposé à {gp.full_name}.")
    proposal = GpProposal(
        search=search, gp_id=gp.id, state=GpProposalState.PENDING, proposed_at=now, proposed_by_user_id=actor.id
    )
    session.add(proposal)
    session.flush()  # the proposal's id, for the audit line and the notice
    # The GP learns there is a proposal (ids only, no health data); the patient is read on the hub, behind login.
    outbox.email_professional(
        session,
        gp,
        kind="gp_patient_proposed",
        payload={"proposal_id": proposal.id},
        key=f"gp_proposal:{proposal.id}",
        cpts_id=search.cpts_id,
    )
    audit.record(
        session,
        actor=actor,
        action="gp_search.propose",
        target=search,
        cpts_id=search.cpts_id,
        details={"gp_id": gp.id},
    )
    return proposal


def close(session: Session, actor: Actor, search: GpSearch, *, outcome: GpSearchState, reason: str, now: dt.datetime):
    """The patient leaves the list: consent withdrawn (or left) or a médecin traitant found elsewhere. Pending
    proposals are withdrawn."""
    _require_waiting(search)
    if outcome not in (GpSearchState.WITHDRAWN, GpSearchState.FOUND_ELSEWHERE):
        raise ValidationFailed({"outcome": "Issue inconnue : retrait ou médecin trouvé par ailleurs."})
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez la raison."})
    _withdraw_pending(search, now)
    search.state, search.closed_at, search.closed_by_user_id = outcome, now, actor.id
    search.close_reason = reason.strip()
    audit.record(session, actor=actor, action=f"gp_search.{outcome.value}", target=search, cpts_id=search.cpts_id)


def _require_waiting(search: GpSearch) -> None:
    if search.state is not GpSearchState.WAITING:
        raise Conflict("Ce patient n'est plus sur la liste des patients sans médecin traitant.")


def _withdraw_pending(search: GpSearch, now: dt.datetime, *, but: int | None = None) -> None:
    for proposal in search.proposals:
        if proposal.state is GpProposalState.PENDING and proposal.id != but:
            proposal.state, proposal.responded_at = GpProposalState.WITHDRAWN, now


# --- the GP's side -------------------------------------------------------------------------------------------


def own_gp(user: User) -> Professional:
    professional = user.professional
    if professional is None or professional.profession is not Profession.GENERAL_PRACTITIONER:
        raise Forbidden("Réservé aux médecins généralistes de la CPTS.")
    return professional


def set_capacity(session: Session, actor: User, gp: Professional, capacity: int) -> None:
    """« J'accepte N nouveaux patients médecin traitant »."""
    if not 0 <= capacity <= MAX_CAPACITY:
        raise ValidationFailed({"capacity": f"Indiquez un nombre entre 0 et {MAX_CAPACITY}."})
    gp.new_patient_capacity = capacity
    audit.record(
        session, actor=actor, action="gp.capacity", target=gp, cpts_id=gp.cpts_id, details={"capacity": capacity}
    )


def proposals_for(session: Session, gp: Professional) -> list[GpProposal]:
    """The patients proposed to the GP, waiting for an answer, oldest first."""
    return list(
        session.scalars(
            select(GpProposal)
            .where(GpProposal.gp_id == gp.id, GpProposal.state == GpProposalState.PENDING)
            .options(selectinload(GpProposal.search).selectinload(GpSearch.patient))
            .order_by(GpProposal.proposed_at, GpProposal.id)
        )
    )


def proposal_for(session: Session, actor: Actor, proposal_id: int) -> GpProposal:
    """A proposal made to the actor, a GP (an audited 404 for anyone else)."""
    proposal = session.get(GpProposal, proposal_id)
    if proposal is None or actor.professional_id is None or proposal.gp_id != actor.professional_id:
        raise NotFound(
            "Proposition introuvable.", audit_action="gp_proposal.read", audit_target=("gp_proposals", proposal_id)
        )
    return proposal


def accept(session: Session, actor: Actor, proposal: GpProposal, *, now: dt.datetime) -> None:
    """The GP becomes the patient's médecin traitant: one place of their capacity is taken and the entry closed,
    each by one conditional UPDATE, so that of two acceptances over the last place (or of one patient) one wins
    and the other gets a 409 with nothing changed."""
    if proposal.state is not GpProposalState.PENDING:
        raise Conflict("Cette proposition a déjà reçu une réponse ou a été retirée.")
    took_place = rows_changed(
        session,
        update(Professional)
        .where(Professional.id == proposal.gp_id, Professional.new_patient_capacity > 0)
        .values(new_patient_capacity=Professional.new_patient_capacity - 1)
        .execution_options(synchronize_session=False),
    )
    if took_place != 1:
        raise Conflict("Vous n'avez plus de place pour un nouveau patient : augmentez votre capacité d'abord.")
    closed = rows_changed(
        session,
        update(GpSearch)
        .where(GpSearch.id == proposal.search_id, GpSearch.state == GpSearchState.WAITING)
        .values(state=GpSearchState.MATCHED, gp_id=proposal.gp_id, closed_at=now, closed_by_user_id=actor.id)
        .execution_options(synchronize_session=False),
    )
    if closed != 1:
        raise Conflict("Ce patient a déjà trouvé un médecin traitant ou a quitté la liste.")
    search = proposal.search
    session.refresh(search)
    session.refresh(proposal.gp, ["new_patient_capacity"])
    proposal.state, proposal.responded_at = GpProposalState.ACCEPTED, now
    _withdraw_pending(search, now, but=proposal.id)
    search.patient.attending_gp_id = proposal.gp_id
    audit.record(session, actor=actor, action="gp_proposal.accept", target=search, cpts_id=search.cpts_id)


def refuse(session: Session, actor: Actor, proposal: GpProposal, *, reason: str, now: dt.datetime) -> None:
    """The GP declines, with a reason the coordination reads; the patient stays on the list."""
    if proposal.state is not GpProposalState.PENDING:
        raise Conflict("Cette proposition a déjà reçu une réponse ou a été retirée.")
    if not (reason or "").strip():
        raise ValidationFailed({"reason": "Indiquez la raison du refus : elle est transmise à la coordination."})
    proposal.state, proposal.responded_at, proposal.reason = GpProposalState.REFUSED, now, reason.strip()
    audit.record(
        session, actor=actor, action="gp_proposal.refuse", target=proposal.search, cpts_id=proposal.search.cpts_id
    )


def counts_by_priority(rows: list[tuple[GpSearch, Fragility]]) -> dict[Priority, int]:
    return {priority: sum(1 for _s, f in rows if f.priority is priority) for priority in Priority}


@dataclass(frozen=True)
class WaitingCounts:
    waiting: int = 0
    to_propose: int = 0  # waiting with no proposal pending: the coordination's next move


def waiting_counts_query(cpts_id: int | ColumnElement[int]):
    """For the coordinator's desk, which reads it with its other counts: one row of the patients waiting, and of
    those waiting for no GP's answer (the fields of WaitingCounts)."""
    pending = (
        select(GpProposal.id)
        .where(GpProposal.search_id == GpSearch.id, GpProposal.state == GpProposalState.PENDING)
        .exists()
    )
    return select(func.count(GpSearch.id), func.coalesce(func.sum(case((~pending, 1), else_=0)), 0)).where(
        GpSearch.cpts_id == cpts_id, GpSearch.state == GpSearchState.WAITING
    )


def next_action(search: GpSearch) -> str:
    """What the coordination does next for the entry, in words."""
    pending = [p for p in search.proposals if p.state is GpProposalState.PENDING]
    if pending:
        return f"Attendre la réponse de {pending[0].gp.full_name}"
    if any(p.state is GpProposalState.REFUSED for p in search.proposals):
        return "Proposer à un autre médecin (refus reçu)"
    return "Proposer à un médecin"
