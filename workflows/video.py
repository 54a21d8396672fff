"""The video link of a remote session (issue 16, item 4). Nothing of the video runs in the hub: a program names the
URL template of the structure's certified teleconsultation tool (`https://visio.example.fr/salle/{room}`), each
session gets a random room id (nothing of the patient in it) and so its room's address.

- The performer and the accompanying professional see « Rejoindre la visio » from OPENS_BEFORE before the session
  until CLOSES_AFTER after its end; before, the page says when it will appear.
- The patient gets, through the outbox, a link to the hub (`/visio/<token>`), never the room itself: the hub
  redirects to the room only within the same window and otherwise says, in French, when it opens or that the
  session is over. The token is random, kept only as its SHA-256 hash; sending the link again makes a new token
  and the previous link stops working. The message says a date, a time, « votre téléconsultation » and the link:
  no specialty, no program name, nothing of health.
"""

import datetime as dt
import hashlib
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from connectors import outbox
from hub import audit
from hub.db import utcnow
from hub.errors import NotFound, RuleViolation, ValidationFailed
from hub.formatting import french_datetime
from hub.models import Actor, Appointment, AppointmentKind, AppointmentState, SessionProgram, VideoRoom

OPENS_BEFORE = dt.timedelta(minutes=15)
CLOSES_AFTER = dt.timedelta(minutes=15)  # a session running a little over keeps its room
PLACEHOLDER = "{room}"
MAX_TEMPLATE = 300
REMOTE_KINDS = frozenset({AppointmentKind.ASSISTED_TELECONSULTATION, AppointmentKind.TELESOIN})
# The session can still take place: its room opens in its window.
LIVE_STATES = frozenset({AppointmentState.PROPOSED, AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN})
KIND = "video_link"
JOB_ACTOR = "tâche : liens de visio de la veille"  # the audit's actor of the links the day-before job sends
TEMPLATE_HTTPS = "L'adresse de l'outil de téléconsultation doit commencer par https:// et nommer un serveur."
TEMPLATE_PLACEHOLDER = "L'adresse doit contenir une fois {room}, là où se place l'identifiant de la salle."
TEMPLATE_BRACES = "L'adresse ne peut contenir d'autres accolades que {room}."
TEMPLATE_SPACES = "L'adresse ne peut pas contenir d'espace."
TEMPLATE_LENGTH = f"L'adresse ne peut dépasser {MAX_TEMPLATE} caractères."
NO_VIDEO = "Ce programme n'a pas d'outil de téléconsultation : renseignez son adresse dans le programme."
NOT_LIVE = "Cette séance n'a pas lieu : aucun lien de visio ne peut être envoyé."
NO_CONTACT = "Le patient n'a ni téléphone portable ni adresse e-mail : le lien ne peut pas lui être envoyé."
UNKNOWN_LINK = "Ce lien de téléconsultation n'existe pas ou a été remplacé par un plus récent."
SESSION_OVER = "Cette séance est terminée : le lien ne s'ouvre plus."
SESSION_OFF = "Cette séance n'aura pas lieu à cette heure : le lien ne s'ouvre pas."
_ROOM_PATTERN = re.compile(r"\s")


def check_template(text: str | None) -> str | None:
    """The program's video URL template, cleaned, or None when left empty; ValidationFailed when it is not an
    https address holding `{room}` exactly once and no other brace."""
    template = (text or "").strip()
    if not template:
        return None
    problem = None
    parts = urlsplit(template.replace(PLACEHOLDER, "room"))
    host = urlsplit(template).netloc
    if len(template) > MAX_TEMPLATE:
        problem = TEMPLATE_LENGTH
    elif _ROOM_PATTERN.search(template):
        problem = TEMPLATE_SPACES
    elif parts.scheme != "https" or not parts.hostname or PLACEHOLDER in host:
        problem = TEMPLATE_HTTPS
    elif template.count(PLACEHOLDER) != 1:
        problem = TEMPLATE_PLACEHOLDER
    elif "{" in template.replace(PLACEHOLDER, "") or "}" in template.replace(PLACEHOLDER, ""):
        problem = TEMPLATE_BRACES
    if problem:
        raise ValidationFailed({"video_url_template": problem})
    return template


def window(appointment: Appointment) -> tuple[dt.datetime, dt.datetime]:
    """When the session's room may be joined: from OPENS_BEFORE its start to CLOSES_AFTER its end."""
    return appointment.starts_at - OPENS_BEFORE, appointment.ends_at + CLOSES_AFTER


@dataclass(frozen=True)
class VideoAccess:
    """What a participant's page and the API say of the room: `url` only while it may be joined."""

    status: str  # "none" (no tool, or not a remote session), "before", "open", "over"
    opens_at: dt.datetime | None = None
    closes_at: dt.datetime | None = None
    url: str | None = None
    patient_link_sent_at: dt.datetime | None = None


def program_template(session: Session, appointment: Appointment) -> str | None:
    """The video tool of the session's program, for a remote session (an in-person one has none)."""
    if appointment.kind not in REMOTE_KINDS or appointment.program_id is None:
        return None
    return session.get_one(SessionProgram, appointment.program_id).video_url_template


def give_room(session: Session, appointment: Appointment) -> VideoRoom | None:
    """The session's room, made when it is booked in a program that names a video tool (or when its program is
    given one): made by a change, so that showing a page never writes."""
    if program_template(session, appointment) is None:
        return None
    return _room_of(session, appointment) or _new_room(session, appointment)


def give_rooms(session: Session, program: SessionProgram, *, now: dt.datetime) -> int:
    """Rooms for the program's coming live sessions that have none (its video tool was just named)."""
    pending = session.scalars(
        select(Appointment).where(
            Appointment.program_id == program.id,
            Appointment.state.in_(LIVE_STATES),
            Appointment.ends_at > now,
            ~select(VideoRoom.id).where(VideoRoom.appointment_id == Appointment.id).exists(),
        )
    ).all()
    return sum(1 for appointment in pending if give_room(session, appointment) is not None)


def access_for_participant(
    session: Session,
    appointment: Appointment,
    *,
    now: dt.datetime | None = None,
    rooms: Mapping[int, VideoRoom | None] | None = None,
) -> VideoAccess:
    """The room as its performer and accompanying professional see it (hub.auth.policies lets only them): its
    address while the window is open and the session live; when it opens before; nothing after. `rooms`: the
    rooms of a list's sessions read at once (rooms_by_appointment), so that a list reads no room per row."""
    now = now or utcnow()
    template = program_template(session, appointment)
    if template is None:
        return VideoAccess("none")
    opens_at, closes_at = window(appointment)
    room = rooms[appointment.id] if rooms is not None and appointment.id in rooms else _room_of(session, appointment)
    sent_at = room.patient_link_sent_at if room else None
    if room is None:
        return VideoAccess("none")  # booked before its program named the tool, and not given a room since
    if appointment.state not in LIVE_STATES or now >= closes_at:
        return VideoAccess("over", opens_at, closes_at, patient_link_sent_at=sent_at)
    if now < opens_at:
        return VideoAccess("before", opens_at, closes_at, patient_link_sent_at=sent_at)
    return VideoAccess("open", opens_at, closes_at, room_url(template, room.room), sent_at)


def rooms_by_appointment(session: Session, appointment_ids: list[int]) -> dict[int, VideoRoom | None]:
    found = session.scalars(select(VideoRoom).where(VideoRoom.appointment_id.in_(appointment_ids)))
    return dict.fromkeys(appointment_ids) | {room.appointment_id: room for room in found}


def programs_of(session: Session, appointments: list[Appointment]) -> list[SessionProgram]:
    """The programs of a list's sessions, in one query."""
    program_ids = {appointment.program_id for appointment in appointments} - {None}
    return list(session.scalars(select(SessionProgram).where(SessionProgram.id.in_(program_ids))))


def room_url(template: str, room: str) -> str:
    # A plain replacement: str.format would read any other brace of an old template as a field.
    return template.replace(PLACEHOLDER, room)


def sendable(session: Session, appointment: Appointment, *, now: dt.datetime) -> bool:
    """Whether the patient's link can be sent now: a video tool named, the session live and not over."""
    return (
        program_template(session, appointment) is not None
        and appointment.state in LIVE_STATES
        and now < window(appointment)[1]
    )


def send_patient_link(
    session: Session, actor: Actor | str, appointment: Appointment, *, now: dt.datetime | None = None
) -> VideoAccess:
    """Queue the patient's link (SMS, else e-mail) with a new token, the previous one dropped; refused when the
    program names no tool, when the session is over or not live, or when the patient cannot be reached. The
    appointment's row is locked first: a person and the day-before job sending at once send one after the other."""
    now = now or utcnow()
    _lock(session, appointment)
    if program_template(session, appointment) is None:
        raise RuleViolation(NO_VIDEO)
    if not sendable(session, appointment, now=now):
        raise RuleViolation(NOT_LIVE)
    opens_at, closes_at = window(appointment)
    patient = appointment.patient
    channel, recipient = ("sms", patient.phone) if patient.phone else ("email", patient.email)
    if not recipient:
        raise RuleViolation(NO_CONTACT)
    room = _room_of(session, appointment) or _new_room(session, appointment)
    token = secrets.token_urlsafe(32)
    room.patient_token_hash, room.patient_link_sent_at = token_hash(token), now
    zone = session.get_one(SessionProgram, appointment.program_id).zone
    when = appointment.starts_at.astimezone(ZoneInfo(zone))
    outbox.enqueue(
        session,
        channel=channel,
        recipient=recipient,
        kind=KIND,
        cpts_id=appointment.cpts_id,
        payload={
            "recipient_kind": "patient",
            "local_date": when.date().isoformat(),
            "local_time": when.strftime("%H:%M"),
            "video_token": token,
            "opens_minutes": int(OPENS_BEFORE.total_seconds() // 60),
        },
        idempotency_key=f"{KIND}:{appointment.id}:{room.patient_token_hash[:16]}",
    )
    audit.record(
        session, actor=actor, action="appointment.video_link_sent", target=appointment, cpts_id=appointment.cpts_id
    )
    return VideoAccess("before" if now < opens_at else "open", opens_at, closes_at, patient_link_sent_at=now)


def due_link_ids(session: Session, *, starts_from: dt.datetime, starts_before: dt.datetime) -> list[int]:
    """The confirmed remote sessions starting in [starts_from, starts_before) whose program names a tool and whose
    patient was never sent the link: the day-before job sends them (workflows.jobs.send_video_links)."""
    return list(
        session.scalars(
            select(Appointment.id)
            .join(SessionProgram, SessionProgram.id == Appointment.program_id)
            .outerjoin(VideoRoom, VideoRoom.appointment_id == Appointment.id)
            .where(
                Appointment.state == AppointmentState.CONFIRMED,
                Appointment.kind.in_(REMOTE_KINDS),
                Appointment.starts_at >= starts_from,
                Appointment.starts_at < starts_before,
                SessionProgram.video_url_template.is_not(None),
                VideoRoom.patient_link_sent_at.is_(None),
            )
            .order_by(Appointment.id)
        )
    )


def send_due_link(session: Session, appointment_id: int, *, now: dt.datetime) -> bool:
    """The day-before job's send of one session's link: once, unless a person sent it meanwhile (checked under the
    row lock) or the patient cannot be reached (the session's pages say so to whoever tries)."""
    appointment = session.get_one(Appointment, appointment_id)
    _lock(session, appointment)
    room = _room_of(session, appointment)
    if room is not None and room.patient_link_sent_at is not None:
        return False
    try:
        send_patient_link(session, JOB_ACTOR, appointment, now=now)
    except RuleViolation:
        return False
    return True


def open_patient_link(session: Session, token: str, *, now: dt.datetime | None = None) -> str:
    """The room's address the patient's link leads to, within the window of a live session; otherwise NotFound
    for an unknown (or replaced) token, RuleViolation saying when it opens, or that the session is over.
    Each use is audited, without the token."""
    now = now or utcnow()
    room = session.scalar(select(VideoRoom).where(VideoRoom.patient_token_hash == token_hash(token)))
    if room is None:
        raise NotFound(UNKNOWN_LINK, audit_action="video.open", audit_target=None)
    appointment = room.appointment
    opens_at, closes_at = window(appointment)
    outcome, problem = "success", None
    program = session.get_one(SessionProgram, appointment.program_id)
    template, zone = program.video_url_template, program.zone
    if appointment.state not in LIVE_STATES and appointment.state is not AppointmentState.DONE:
        outcome, problem = "refused", SESSION_OFF
    elif now >= closes_at or appointment.state is AppointmentState.DONE:
        outcome, problem = "refused", SESSION_OVER
    elif now < opens_at:
        opening = french_datetime(opens_at, zone)
        outcome, problem = "refused", f"Le lien s'ouvre 15 minutes avant la séance : revenez à partir du {opening}."
    elif template is None:
        outcome, problem = "refused", SESSION_OFF
    audit.record(
        session,
        actor=None,
        action="video.open",
        target=appointment,
        outcome=outcome,
        cpts_id=appointment.cpts_id,
        kept_on_rollback=True,
    )
    if problem:
        raise RuleViolation(problem)
    assert template is not None  # checked above
    return room_url(template, room.room)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _lock(session: Session, appointment: Appointment) -> None:
    """The appointment's row lock, then its row read again (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    session.execute(select(Appointment.id).where(Appointment.id == appointment.id).with_for_update())
    session.refresh(appointment)


def _room_of(session: Session, appointment: Appointment) -> VideoRoom | None:
    return session.scalar(select(VideoRoom).where(VideoRoom.appointment_id == appointment.id))


def _new_room(session: Session, appointment: Appointment) -> VideoRoom:
    """A new random room, or the room of the slot's other participants: a group session (several appointments in
    one slot) is held in one room, each patient with their own link to it."""
    shared = None
    # Never a cancelled patient's room: a single seat freed and booked again gets a new room, and so does a group
    # session whose participants all left.
    if appointment.slot_id is not None and appointment.slot is not None and appointment.slot.program.is_group:
        shared = session.scalar(
            select(VideoRoom.room)
            .join(Appointment, Appointment.id == VideoRoom.appointment_id)
            .where(
                Appointment.slot_id == appointment.slot_id,
                Appointment.id != appointment.id,
                Appointment.state.in_(LIVE_STATES),
            )
            .limit(1)
        )
    room = VideoRoom(
        cpts_id=appointment.cpts_id, appointment_id=appointment.id, room=shared or secrets.token_urlsafe(16)
    )
    session.add(room)
    session.flush()  # the room's unique id is taken now, before anyone is given its address
    return room
