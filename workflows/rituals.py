"""The six rituals of a kiné's télésoin session (seed 000; their definition: hub.models.rituals), recorded with the
session by the kiné who performs it, required before the session is done, and summarised in its report
(LOINC 11506-3) for Mon espace santé."""

import datetime as dt
import json
from dataclasses import dataclass

from sqlalchemy.orm import Session

from hub import audit
from hub.db import utcnow
from hub.errors import RuleViolation
from hub.models import (
    RITUAL_FIELD_LABELS,
    RITUALS,
    Actor,
    Appointment,
    AppointmentKind,
    AppointmentState,
    Profession,
    Ritual,
)

NOT_KINE_TELESOIN = "Les rituels de séance concernent les séances de télésoin d'un·e masseur-kinésithérapeute."
NOT_THE_PERFORMER = "Seul·e le·la kiné qui réalise la séance en enregistre les rituels."
NOT_RUNNING = "Les rituels s'enregistrent pendant la séance, une fois le patient accueilli."
RITUALS_TITLE = "Rituels de la séance de télésoin"
PROMS_TITLE = "Mesure initiale (PROMs)"


@dataclass(frozen=True)
class RecordedRituals:
    """A session's rituals as recorded, and what they still lack before the session can be done."""

    record: dict
    recorded_at: dt.datetime | None
    missing: list[str]


def applies_to(appointment: Appointment) -> bool:
    """Whether the session is a kiné's télésoin session, the one kind that has these rituals."""
    return (
        appointment.kind is AppointmentKind.TELESOIN and appointment.performer.profession is Profession.PHYSIOTHERAPIST
    )


def record(
    session: Session, actor: Actor, appointment: Appointment, data: dict, *, now: dt.datetime | None = None
) -> RecordedRituals:
    """The kiné records (or records again, whole) the rituals of the session under way; what is still missing is
    said, not refused: the completion refuses it."""
    if not applies_to(appointment):
        raise RuleViolation(NOT_KINE_TELESOIN)
    if actor.professional_id != appointment.performer_id:
        raise RuleViolation(NOT_THE_PERFORMER)
    if appointment.state is not AppointmentState.CHECKED_IN:
        raise RuleViolation(NOT_RUNNING)
    kept = {name: data[name] for name in RITUAL_FIELD_LABELS if data.get(name) not in (None, "", [], False)}
    appointment.rituals = json.dumps(kept, sort_keys=True, ensure_ascii=False)
    appointment.rituals_recorded_at = now or utcnow()
    state = recorded(appointment)
    audit.record(
        session,
        actor=actor,
        action="appointment.rituals",
        target=appointment,
        cpts_id=appointment.cpts_id,
        details={"missing": len(state.missing)},
    )
    return state


def recorded(appointment: Appointment) -> RecordedRituals:
    kept = json.loads(appointment.rituals or "{}")
    return RecordedRituals(kept, appointment.rituals_recorded_at, missing(kept))


def missing(kept: dict) -> list[str]:
    """What the rituals lack, in the order of the session, each named as a refusal says it."""
    return [what for ritual in RITUALS for name, what in ritual.requires if not kept.get(name)]


def require_recorded(session: Session, appointment: Appointment) -> None:
    """No kiné télésoin session is done without its six rituals recorded: the refusal names what is missing."""
    if not applies_to(appointment):
        return
    gaps = recorded(appointment).missing
    if gaps:
        raise RuleViolation(
            "Les rituels de la séance de télésoin ne sont pas tous enregistrés : il manque " + " ; ".join(gaps) + "."
        )


def report_sections(appointment: Appointment) -> list[tuple[str, str]]:
    """(title, text) of the report's sections on the rituals and on the initial measure, when the session has
    rituals: each ritual done or what it lacked, the feedback notes, the plan before D+7, the PROMs and the stop
    criteria."""
    if appointment.rituals is None:
        return []
    kept = json.loads(appointment.rituals)
    lines = [f"{ritual.label} ({ritual.hint}) : {_outcome(ritual, kept)}" for ritual in RITUALS]
    lines += [f"{RITUAL_FIELD_LABELS[name]} : {kept[name]}" for name in ("feedback_notes", "plan") if kept.get(name)]
    sections = [(RITUALS_TITLE, "\n".join(lines))]
    measures = [f"{prom['name']} : {prom['value']}" for prom in kept.get("proms", [])]
    if kept.get("stop_criteria"):
        measures.append(f"{RITUAL_FIELD_LABELS['stop_criteria']} : {kept['stop_criteria']}")
    if measures:
        sections.append((PROMS_TITLE, "\n".join(measures)))
    return sections


def _outcome(ritual: Ritual, kept: dict) -> str:
    gaps = [what for name, what in ritual.requires if not kept.get(name)]
    if not gaps:
        return "fait"
    return "non fait" if len(gaps) == len(ritual.requires) else "incomplet, il manque " + " ; ".join(gaps)
