"""What an accompanying professional (or a télésoin's performer) needs for a visit and a round: where to go, whom
to call, what the session is for (the referral's letter, attachments and needs), what to bring, the HAS checklist
as saved; a day's round in time order; the lists of « Mes visites » and of the desks (offered, today's, coming) and
the visits done, which stay findable, as lines read in one statement each."""

import datetime as dt
import functools
import json
from dataclasses import dataclass
from urllib.parse import quote_plus

from sqlalchemy import BindParameter, Integer, Select, and_, bindparam, or_, select, union
from sqlalchemy.orm import Session, aliased, joinedload, selectinload

from hub.db import UTCDateTime, driver_rows
from hub.models import (
    Appointment,
    AppointmentKind,
    AppointmentState,
    ConsentKind,
    Patient,
    PlaceKind,
    Profession,
    Professional,
    Referral,
    Resource,
    SessionProgram,
    Slot,
    VisitOffer,
    VisitOfferState,
)
from hub.services.identity import consent_in_force
from workflows.appointments import HOME_PLACES, REMOTE_KINDS

# Visits that are over, one way or another: the history keeps them.
FINISHED = (AppointmentState.DONE, AppointmentState.DEGRADED, AppointmentState.NO_SHOW, AppointmentState.POSTPONED)
# Visits that make up a round: answered or under way, or over (the day sheet is also the day's record).
IN_A_ROUND = (AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN, *FINISHED)
HISTORY_SIZE = 50
MAP_SEARCH = "https://www.openstreetmap.org/search?query="


@dataclass(frozen=True)
class VisitSheet:
    appointment: Appointment
    address: str | None  # where to go: the patient's home, or the dedicated place's address
    referral: Referral | None  # the letter, attachments and needs of the referral the session was booked for
    needs: list[str]
    checklist: dict[str, bool] | None  # as saved before the session, None while not saved

    @property
    def map_url(self) -> str | None:
        """A search on OpenStreetMap, opened by the phone's browser or map application: nothing is embedded."""
        return MAP_SEARCH + quote_plus(self.address) if self.address else None


def address_of(appointment: Appointment) -> str | None:
    if appointment.place_kind in HOME_PLACES:
        return appointment.patient.address
    return appointment.room.address if appointment.room is not None else None


def sheet(session: Session, appointment: Appointment) -> VisitSheet:
    return _sheet(appointment, _referrals_of(session, [appointment.id]).get(appointment.id))


def _sheet(appointment: Appointment, referral: Referral | None) -> VisitSheet:
    return VisitSheet(
        appointment=appointment,
        address=address_of(appointment),
        referral=referral,
        needs=json.loads(referral.needs or "[]") if referral is not None else [],
        checklist=json.loads(appointment.checklist) if appointment.checklist_saved_at is not None else None,
    )


def _referrals_of(session: Session, appointment_ids: list[int]) -> dict[int, Referral]:
    """The referrals the appointments were booked for (its letter frozen or not), by appointment id (one query)."""
    if not appointment_ids:
        return {}
    found = session.scalars(
        select(Referral)
        .where(Referral.appointment_id.in_(appointment_ids))
        .options(selectinload(Referral.attachments), joinedload(Referral.author))
    )
    return {referral.appointment_id: referral for referral in found if referral.appointment_id is not None}


def _mine(professional_id: int | BindParameter[int]):
    return or_(Appointment.performer_id == professional_id, Appointment.accompanying_id == professional_id)


def _with_details(query):
    return query.options(
        joinedload(Appointment.patient),
        joinedload(Appointment.performer),
        joinedload(Appointment.slot).joinedload(Slot.program),
        joinedload(Appointment.room),
        joinedload(Appointment.kit),
    )


def round_of(session: Session, professional_id: int, start: dt.datetime, end: dt.datetime) -> list[VisitSheet]:
    """The professional's visits starting in [start, end), confirmed or later, in time order (of their presence,
    which is what the round follows), each with where to go."""
    rows = session.scalars(
        _with_details(
            select(Appointment).where(
                _mine(professional_id),
                Appointment.state.in_(IN_A_ROUND),
                Appointment.starts_at >= start,
                Appointment.starts_at < end,
            )
        )
    ).all()
    ordered = sorted(rows, key=lambda a: (a.accompaniment_window[0], a.id))
    found = _referrals_of(session, [a.id for a in ordered])
    return [_sheet(a, found.get(a.id)) for a in ordered]


# --- the lists of « Mes visites », the visits done and the desks: rows, not entities ---------------------------
# These pages show some 20 to 50 visits on every view (the IDEL's phone, the peak hour's most frequent page).
# Loading them as entities with their patient, performer, slot, program, room, kit and the patient's consents cost
# about 250 µs of CPU per visit; the few columns the lines show, read as rows in one statement (the telehealth
# consent as an EXISTS), cost a tenth of it. The lines answer the attributes the templates and the helpers
# (appointment_state_label, rituals.applies_to, the state machine) read, under the same names.


@dataclass(frozen=True, slots=True)
class PatientLine:
    used_last_name: str | None
    birth_name: str
    used_first_name: str | None
    first_birth_given_name: str
    address: str | None

    display_name = property(Patient.display_name.fget)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class PerformerLine:
    first_name: str
    last_name: str
    profession: Profession

    full_name = property(Professional.full_name.fget)  # type: ignore[attr-defined]


@dataclass(frozen=True, slots=True)
class VisitLine:
    """A visit as its line in a list shows it."""

    id: int
    state: AppointmentState
    kind: AppointmentKind
    place_kind: PlaceKind
    starts_at: dt.datetime
    ends_at: dt.datetime
    accompaniment_starts_at: dt.datetime | None
    accompaniment_ends_at: dt.datetime | None
    accompanying_id: int | None
    telesoin_act: str | None
    patient: PatientLine
    performer: PerformerLine
    program_name: str | None  # the slot's program, None for an appointment booked without a slot
    room_name: str | None
    kit_name: str | None
    has_telehealth_consent: bool

    accompaniment_window = property(Appointment.accompaniment_window.fget)  # type: ignore[attr-defined]
    telesoin_act_label = property(Appointment.telesoin_act_label.fget)  # type: ignore[attr-defined]

    @property
    def lacks_remote_consent(self) -> bool:
        """As workflows.appointments.lacks_remote_consent: a remote act without a telehealth consent in force
        (identity.consent_in_force, valid_consent's rule)."""
        return self.kind in REMOTE_KINDS and not self.has_telehealth_consent


@dataclass
class VisitLists:
    """What a professional has to do: visits offered to them, the day's sessions, the next confirmed ones."""

    offered: list[VisitLine]
    today: list[VisitLine]
    upcoming: list[VisitLine]


def visit_lists(
    session: Session, professional_id: int, day_start: dt.datetime, day_end: dt.datetime, *, upcoming_days: int = 14
) -> VisitLists:
    """The three lists of « Mes visites » and the desks in one statement: a visit is in one of them at most, told
    apart by its state and its day."""
    params = {
        "professional_id": professional_id,
        "day_start": day_start,
        "day_end": day_end,
        "horizon": day_end + dt.timedelta(days=upcoming_days),
    }
    lists = VisitLists([], [], [])
    for line in _lines(driver_rows(session, _lists_statement(), params)):
        if line.state is AppointmentState.PROPOSED:
            lists.offered.append(line)
        elif line.starts_at < day_end:
            lists.today.append(line)
        else:
            lists.upcoming.append(line)
    return lists


def done_visits(session: Session, professional_id: int) -> list[VisitLine]:
    """The professional's finished visits, the latest first, HISTORY_SIZE at most."""
    return _lines(driver_rows(session, _done_statement(), {"professional_id": professional_id}))


def _lines(result) -> list[VisitLine]:
    return [_line(*row) for row in result]


def _line(
    id_, state, kind, place_kind, starts_at, ends_at, presence_start, presence_end, accompanying_id, act,
    used_last, birth, used_first, given, address, performer_first, performer_last, profession,
    program, room, kit, consented,
) -> VisitLine:  # fmt: skip
    patient = PatientLine(used_last, birth, used_first, given, address)
    performer = PerformerLine(performer_first, performer_last, profession)
    return VisitLine(
        id_, state, kind, place_kind, starts_at, ends_at, presence_start, presence_end, accompanying_id, act,
        patient, performer, program, room, kit, consented,
    )  # fmt: skip


def _line_columns() -> Select:
    """The columns of a VisitLine, in its order, from the appointment and what it is joined to."""
    performer, room, kit = aliased(Professional), aliased(Resource), aliased(Resource)
    consented = consent_in_force(Appointment.patient_id, ConsentKind.TELEHEALTH)
    columns = (
        Appointment.id,
        Appointment.state,
        Appointment.kind,
        Appointment.place_kind,
        Appointment.starts_at,
        Appointment.ends_at,
        Appointment.accompaniment_starts_at,
        Appointment.accompaniment_ends_at,
        Appointment.accompanying_id,
        Appointment.telesoin_act,
        Patient.used_last_name,
        Patient.birth_name,
        Patient.used_first_name,
        Patient.first_birth_given_name,
        Patient.address,
        performer.first_name,
        performer.last_name,
        performer.profession,
        SessionProgram.name,
        room.name,
        kit.name,
        consented,
    )
    # Named c0, c1…: the driver's rows (hub.db.driver_rows) need unique names, and _line reads them by position.
    return (
        select(*(column.label(f"c{n}") for n, column in enumerate(columns)))
        .join(Patient, Patient.id == Appointment.patient_id)
        .join(performer, performer.id == Appointment.performer_id)
        .outerjoin(Slot, Slot.id == Appointment.slot_id)
        .outerjoin(SessionProgram, SessionProgram.id == Slot.program_id)
        .outerjoin(room, room.id == Appointment.room_id)
        .outerjoin(kit, kit.id == Appointment.kit_id)
    )


# Built once, the professional and the bounds as parameters: building them cost about as much CPU as running them.
# The states and kinds are written into the SQL instead (_written): psycopg prepares a statement from its sixth run,
# and PostgreSQL keeps the prepared statement's generic plan only while it does not look costlier than the custom
# plans made for the values; with the states as parameters it could not tell 'proposed' (a few rows) from 'done'
# (most of them), the generic plan looked worse once the tables had statistics, and every call was planned anew
# (~2 ms of planning for ~0.15 ms of execution).
@functools.cache
def _lists_statement() -> Select:
    professional_id = bindparam("professional_id", type_=Integer)
    day_start, day_end = bindparam("day_start", type_=UTCDateTime), bindparam("day_end", type_=UTCDateTime)
    proposed = and_(
        Appointment.state == _written(Appointment.state, AppointmentState.PROPOSED), Appointment.starts_at >= day_start
    )
    offered_to_me = (
        select(VisitOffer.appointment_id.label("id"))
        .join(Appointment, Appointment.id == VisitOffer.appointment_id)
        .where(
            VisitOffer.professional_id == professional_id,
            VisitOffer.state == _written(VisitOffer.state, VisitOfferState.PENDING),
            proposed,
        )
    )
    # A télésoin has nobody accompanying: its performer answers it.
    my_telesoin = select(Appointment.id).where(
        Appointment.kind == _written(Appointment.kind, AppointmentKind.TELESOIN),
        Appointment.performer_id == professional_id,
        proposed,
    )
    today = and_(
        _written_in(Appointment.state, [AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN]),
        Appointment.starts_at >= day_start,
        Appointment.starts_at < day_end,
    )
    upcoming = and_(
        Appointment.state == _written(Appointment.state, AppointmentState.CONFIRMED),
        Appointment.starts_at >= day_end,
        Appointment.starts_at < bindparam("horizon", type_=UTCDateTime),
    )
    # Each way of being listed is found by its index (the offers', the accompanying's, the performer's; one's own
    # visits by both, a BitmapOr), then the visits are read with their columns once, the branches' ids all named
    # `id`: in one OR, the generic plan scanned `starts_at >= $n`, which it
    # takes for a third of the table. UNION, not UNION ALL: a visit offered to its own accompanying IDEL is found
    # twice.
    listed = union(
        select(Appointment.id).where(Appointment.accompanying_id == professional_id, proposed),
        offered_to_me,
        my_telesoin,
        select(Appointment.id).where(_mine(professional_id), or_(today, upcoming)),
    ).subquery()
    return _line_columns().join(listed, listed.c.id == Appointment.id).order_by(Appointment.starts_at, Appointment.id)


@functools.cache
def _done_statement() -> Select:
    return (
        _line_columns()
        .where(_mine(bindparam("professional_id", type_=Integer)), _written_in(Appointment.state, FINISHED))
        .order_by(Appointment.starts_at.desc(), Appointment.id.desc())
        # Written too: a LIMIT the generic plan does not know is taken for a tenth of the rows.
        .limit(bindparam(None, HISTORY_SIZE, type_=Integer, literal_execute=True))
    )


def _written(column, value) -> BindParameter:
    """`value` written into the SQL as a literal, not sent as a parameter, so that any plan knows it."""
    return bindparam(None, value, type_=column.type, literal_execute=True)


def _written_in(column, values):
    return column.in_(bindparam(None, list(values), type_=column.type, expanding=True, literal_execute=True))
