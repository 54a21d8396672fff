import datetime as dt
import json
from decimal import Decimal
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from hub.db import Base, UTCDateTime, utcnow
from hub.models._types import enum_type
from hub.models.organisation import Organisation
from hub.models.patient import Patient
from hub.models.professional import Professional


class ProgramKind(StrEnum):
    ASSISTED_TELECONSULTATION = "assisted_teleconsultation"
    TELESOIN = "telesoin"
    # The patient comes to an officine, whose pharmacist accompanies the teleconsultation (TLM).
    PHARMACY_TELECONSULTATION = "pharmacy_teleconsultation"


PROGRAM_KIND_LABELS = {
    ProgramKind.ASSISTED_TELECONSULTATION: "Téléconsultation assistée",
    ProgramKind.TELESOIN: "Télésoin",
    ProgramKind.PHARMACY_TELECONSULTATION: "Téléconsultation assistée en officine",
}
# The programs whose sessions have an accompanying professional with the patient.
ASSISTED_PROGRAM_KINDS = frozenset({ProgramKind.ASSISTED_TELECONSULTATION, ProgramKind.PHARMACY_TELECONSULTATION})


class ResourceKind(StrEnum):
    ROOM = "room"
    KIT = "kit"
    DEDICATED_PLACE = "dedicated_place"


RESOURCE_KIND_LABELS = {
    ResourceKind.KIT: "Matériel (mallette connectée…)",
    ResourceKind.ROOM: "Salle",
    ResourceKind.DEDICATED_PLACE: "Lieu dédié à la téléconsultation",
}
# A program's place (`room_id`) is a room or a dedicated place; its kit (`kit_id`) is equipment.
PLACE_RESOURCE_KINDS = frozenset({ResourceKind.ROOM, ResourceKind.DEDICATED_PLACE})


class Resource(Base):
    """A bookable room, dedicated teleconsultation place or equipment kit (connected ECG case…).

    A retired resource is never deleted: the appointments that held it keep naming it."""

    __tablename__ = "resources"
    __table_args__ = (CheckConstraint("is_active = (retired_at IS NULL)", name="retired_when_inactive"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[ResourceKind] = mapped_column(enum_type(ResourceKind, "resource_kind"))
    name: Mapped[str] = mapped_column(String(120))
    address: Mapped[str | None] = mapped_column(String(300))
    description: Mapped[str | None] = mapped_column(String(500))
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    retired_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    organisation: Mapped[Organisation | None] = relationship(foreign_keys=[organisation_id])

    @property
    def kind_label(self) -> str:
        return RESOURCE_KIND_LABELS[self.kind]


# Hours after a session within which its report must reach each recipient role, unless the program says.
REPORT_DELAY_DEFAULTS = {"medecin_traitant": 48, "prescripteur": 48, "participant": 72, "patient": 72, "dmp": 72}
MIN_REPORT_DELAY_HOURS, MAX_REPORT_DELAY_HOURS = 1, 30 * 24  # what a program may set
DOCTOR_ROLES = ("medecin_traitant", "prescripteur")
PATIENT_SIDE_ROLES = ("patient", "dmp", "participant")

# What a new program gets for what the coordinator leaves out: the columns' defaults, the API's and the
# form's (ProgramIn's load_default, the new-program page's initial values) all read this. The slot count
# and length are required by the API; the page only suggests them.
PROGRAM_DEFAULTS = {
    "slot_count": 3,
    "slot_minutes": 15,
    "slot_interval_minutes": None,  # back to back
    "accompaniment_before_minutes": 0,
    "accompaniment_after_minutes": 0,
    "skip_public_holidays": True,
    "own_idel_delay_minutes": 120,
    "horizon_weeks": 12,
    "report_delay_doctors_hours": REPORT_DELAY_DEFAULTS[DOCTOR_ROLES[0]],
    "report_delay_patient_hours": REPORT_DELAY_DEFAULTS[PATIENT_SIDE_ROLES[0]],
    "capacity": 1,
}
# Participants a group session may take (group therapeutic education, a kiné's group rehabilitation in télésoin).
MAX_CAPACITY = 20


class SessionProgram(Base):
    """A recurring session: "3 assisted cardiology teleconsultations every Monday at 14:00".

    The recurrence is kept as an RRULE over a local wall time and a zone, never as UTC instants, so
    that 14:00 stays 14:00 across daylight-saving changes.
    """

    __tablename__ = "session_programs"
    __table_args__ = (
        CheckConstraint("slot_count BETWEEN 1 AND 40", name="slot_count_range"),
        CheckConstraint("slot_minutes BETWEEN 5 AND 240", name="slot_minutes_range"),
        CheckConstraint("slot_interval_minutes IS NULL OR slot_interval_minutes >= slot_minutes", name="interval_fits"),
        CheckConstraint("accompaniment_before_minutes BETWEEN 0 AND 120", name="before_range"),
        CheckConstraint("accompaniment_after_minutes BETWEEN 0 AND 120", name="after_range"),
        CheckConstraint("valid_until IS NULL OR valid_until >= valid_from", name="validity_order"),
        CheckConstraint(f"capacity BETWEEN 1 AND {MAX_CAPACITY}", name="capacity_range"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[ProgramKind] = mapped_column(enum_type(ProgramKind, "program_kind"))
    performer_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"))
    organisation_id: Mapped[int | None] = mapped_column(ForeignKey("organisations.id"))
    room_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    kit_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    rrule: Mapped[str] = mapped_column(String(300))
    start_local: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False))  # wall time of DTSTART
    zone: Mapped[str] = mapped_column(String(60))  # the territory's, from the configuration at creation
    valid_from: Mapped[dt.date] = mapped_column(Date)
    valid_until: Mapped[dt.date | None] = mapped_column(Date)
    slot_count: Mapped[int] = mapped_column(Integer)
    slot_minutes: Mapped[int] = mapped_column(Integer)
    # Minutes between two slot starts; None means back to back. A single kit or IDEL team needs room.
    slot_interval_minutes: Mapped[int | None] = mapped_column(
        Integer, default=PROGRAM_DEFAULTS["slot_interval_minutes"]
    )
    accompaniment_before_minutes: Mapped[int] = mapped_column(
        Integer, default=PROGRAM_DEFAULTS["accompaniment_before_minutes"]
    )
    accompaniment_after_minutes: Mapped[int] = mapped_column(
        Integer, default=PROGRAM_DEFAULTS["accompaniment_after_minutes"]
    )
    skip_public_holidays: Mapped[bool] = mapped_column(Boolean, default=PROGRAM_DEFAULTS["skip_public_holidays"])
    exdates: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of ISO instants
    own_idel_delay_minutes: Mapped[int] = mapped_column(Integer, default=PROGRAM_DEFAULTS["own_idel_delay_minutes"])
    horizon_weeks: Mapped[int] = mapped_column(Integer, default=PROGRAM_DEFAULTS["horizon_weeks"])
    # Hours after the session within which its reports must reach each recipient role, JSON
    # {"medecin_traitant": 48, …}; a role left out takes REPORT_DELAY_DEFAULTS.
    report_delays: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
    # Patients per slot: 1 is a consultation; above, a group session whose performer, room and kit are held once
    # for the slot (allocations owned by the slot) while each participant holds their own time. Set at creation:
    # changing it would change who owns the holds of sessions already booked.
    capacity: Mapped[int] = mapped_column(Integer, default=PROGRAM_DEFAULTS["capacity"], server_default="1")
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # The structure's certified teleconsultation tool, e.g. https://visio.example.fr/salle/{room} (workflows.video).
    video_url_template: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    performer: Mapped[Professional] = relationship()
    organisation: Mapped[Organisation | None] = relationship(foreign_keys=[organisation_id])
    room: Mapped[Resource | None] = relationship(foreign_keys=[room_id])
    kit: Mapped[Resource | None] = relationship(foreign_keys=[kit_id])
    closures: Mapped[list["ProgramClosure"]] = relationship(
        back_populates="program", cascade="all, delete-orphan", order_by="ProgramClosure.first_day"
    )

    # The report delays as the coordinator sets them: one for the doctors (médecin traitant, prescriber), one
    # for the others (patient, DMP, participants). Kept per recipient role in `report_delays`.
    @property
    def report_delay_doctors_hours(self) -> int:
        return self._report_delay(DOCTOR_ROLES[0])

    @report_delay_doctors_hours.setter
    def report_delay_doctors_hours(self, hours: int) -> None:
        self._set_report_delays(DOCTOR_ROLES, hours)

    @property
    def report_delay_patient_hours(self) -> int:
        return self._report_delay(PATIENT_SIDE_ROLES[0])

    @report_delay_patient_hours.setter
    def report_delay_patient_hours(self, hours: int) -> None:
        self._set_report_delays(PATIENT_SIDE_ROLES, hours)

    def report_delay_hours(self, role: str) -> int:
        return self._report_delay(role)

    def _report_delay(self, role: str) -> int:
        hours = json.loads(self.report_delays or "{}").get(role)
        return hours if isinstance(hours, int) and hours > 0 else REPORT_DELAY_DEFAULTS[role]

    def _set_report_delays(self, roles: tuple[str, ...], hours: int) -> None:
        self.report_delays = json.dumps(json.loads(self.report_delays or "{}") | dict.fromkeys(roles, int(hours)))

    @property
    def appointment_kind(self) -> "AppointmentKind":
        """What its sessions are: an officine's teleconsultation is an assisted teleconsultation like any other."""
        if self.kind in ASSISTED_PROGRAM_KINDS:
            return AppointmentKind.ASSISTED_TELECONSULTATION
        return AppointmentKind.TELESOIN

    @property
    def is_at_pharmacy(self) -> bool:
        return self.kind is ProgramKind.PHARMACY_TELECONSULTATION

    @property
    def is_group(self) -> bool:
        return self.capacity > 1

    def slot_start_offset(self, position: int) -> dt.timedelta:
        return dt.timedelta(minutes=position * (self.slot_interval_minutes or self.slot_minutes))


class ProgramClosure(Base):
    __tablename__ = "program_closures"
    __table_args__ = (CheckConstraint("last_day >= first_day", name="closure_order"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("session_programs.id", ondelete="CASCADE"), index=True)
    first_day: Mapped[dt.date] = mapped_column(Date)
    last_day: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str | None] = mapped_column(String(200))

    program: Mapped[SessionProgram] = relationship(back_populates="closures")


class SlotState(StrEnum):
    OPEN = "open"
    CANCELLED = "cancelled"


class Slot(Base):
    """One bookable time of a program. `occurrence_start` names the series occurrence it belongs to."""

    __tablename__ = "slots"
    __table_args__ = (
        UniqueConstraint("program_id", "starts_at", name="uq_slots_program_start"),
        CheckConstraint("ends_at > starts_at", name="slot_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("session_programs.id", ondelete="CASCADE"))
    occurrence_start: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    position: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    state: Mapped[SlotState] = mapped_column(enum_type(SlotState, "slot_state"), default=SlotState.OPEN)
    is_exception: Mapped[bool] = mapped_column(Boolean, default=False)  # moved or changed by hand

    program: Mapped[SessionProgram] = relationship()


class AppointmentKind(StrEnum):
    ASSISTED_TELECONSULTATION = "assisted_teleconsultation"
    TELESOIN = "telesoin"
    IN_PERSON = "in_person"


APPOINTMENT_KIND_LABELS = {
    AppointmentKind.ASSISTED_TELECONSULTATION: PROGRAM_KIND_LABELS[ProgramKind.ASSISTED_TELECONSULTATION],
    AppointmentKind.TELESOIN: PROGRAM_KIND_LABELS[ProgramKind.TELESOIN],
    AppointmentKind.IN_PERSON: "Consultation en présentiel",
}


class PlaceKind(StrEnum):
    PRACTICE = "cabinet"
    PHARMACY = "officine"
    HOME = "domicile"
    DEDICATED_PLACE = "lieu_dedie"
    NURSING_VISIT = "visite_programmee"  # during a nursing visit already planned at home


PLACE_KIND_LABELS = {
    PlaceKind.PRACTICE: "Cabinet",
    PlaceKind.PHARMACY: "Officine",
    PlaceKind.HOME: "Domicile (organisé spécifiquement)",
    PlaceKind.DEDICATED_PLACE: "Lieu dédié à la téléconsultation",
    PlaceKind.NURSING_VISIT: "Domicile, pendant un soin infirmier programmé",
}


class AppointmentState(StrEnum):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    DONE = "done"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    NO_SHOW = "no_show"
    DEGRADED = "degraded"
    POSTPONED = "postponed"  # the performer did not come: to book again (workflows.attendance)


APPOINTMENT_STATE_LABELS = {
    AppointmentState.PROPOSED: "Proposé",
    AppointmentState.CONFIRMED: "Confirmé",
    AppointmentState.CHECKED_IN: "Patient accueilli",
    AppointmentState.DONE: "Réalisé",
    AppointmentState.DECLINED: "Refusé par l'IDEL",
    AppointmentState.CANCELLED: "Annulé",
    AppointmentState.NO_SHOW: "Patient absent",
    AppointmentState.DEGRADED: "Mode dégradé (téléphone)",
    AppointmentState.POSTPONED: "Reportée — absence du professionnel",
}
IDEL_TO_FIND = "IDEL à trouver"


class TelesoinActCode(StrEnum):
    """What a télésoin session is (`Appointment.telesoin_act`): the words the booking forms and the API offer.
    Which acts a profession may do remotely, and at which coefficient, is a fee rule (workflows.fees)."""

    # The four IDEL acts (seed 004, avenant 9).
    HEART_FAILURE_COPD_SURVEILLANCE = "surveillance_ic_bpco"
    MEDICATION_INTAKE = "prise_medicamenteuse"
    INSULIN_SURVEILLANCE = "surveillance_insuline"
    REMOTE_DRESSING = "suivi_pansement"
    # The act a kiné's session replaces (NGAP).
    LIMB_OR_SPINE = "reeducation_membre_rachis"
    SEVERAL_LIMBS = "reeducation_plusieurs_membres"
    RESPIRATORY = "reeducation_respiratoire"
    STROKE = "reeducation_avc"
    BALANCE = "reeducation_equilibre"
    # The act an orthophoniste's session replaces (NGAP).
    ARTICULATION = "reeducation_articulation"
    ORAL_LANGUAGE = "reeducation_langage_oral"
    WRITTEN_LANGUAGE = "reeducation_langage_ecrit"
    VOICE = "reeducation_voix"
    # Never in télésoin for a kiné or an orthophoniste: named so that the refusal can say so.
    INITIAL_ASSESSMENT = "bilan_initial"
    RENEWAL_ASSESSMENT = "renouvellement_bilan"


TELESOIN_ACT_LABELS: dict[str, str] = {
    TelesoinActCode.HEART_FAILURE_COPD_SURVEILLANCE: (
        "Surveillance clinique après décompensation d'insuffisance cardiaque ou de BPCO"
    ),
    TelesoinActCode.MEDICATION_INTAKE: "Accompagnement à la prise médicamenteuse",
    TelesoinActCode.INSULIN_SURVEILLANCE: "Surveillance d'un patient insulino-traité",
    TelesoinActCode.REMOTE_DRESSING: "Suivi d'un pansement à distance",
    TelesoinActCode.LIMB_OR_SPINE: "Rééducation d'un membre ou du rachis",
    TelesoinActCode.SEVERAL_LIMBS: "Rééducation de plusieurs membres, ou du tronc et d'un membre",
    TelesoinActCode.RESPIRATORY: "Rééducation respiratoire (BPCO, insuffisance respiratoire)",
    TelesoinActCode.STROKE: "Rééducation après un accident vasculaire cérébral",
    TelesoinActCode.BALANCE: "Rééducation vestibulaire et des troubles de l'équilibre",
    TelesoinActCode.ARTICULATION: "Rééducation des troubles de l'articulation",
    TelesoinActCode.ORAL_LANGUAGE: "Rééducation du langage oral",
    TelesoinActCode.WRITTEN_LANGUAGE: "Rééducation du langage écrit",
    TelesoinActCode.VOICE: "Rééducation de la voix",
    TelesoinActCode.INITIAL_ASSESSMENT: "Bilan initial",
    TelesoinActCode.RENEWAL_ASSESSMENT: "Renouvellement de bilan",
}


BOOKED_IN_HUB = "hub"
BOOKED_THROUGH_SAS = "sas"


class Appointment(Base):
    __tablename__ = "appointments"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="appointment_order"),
        Index("ix_appointments_cpts_time", "cpts_id", "starts_at"),
        # A professional's window of days (agenda, iCal feed, « Mes visites »), not their whole history.
        Index("ix_appointments_performer_time", "performer_id", "starts_at"),
        Index("ix_appointments_accompanying_time", "accompanying_id", "starts_at"),
        # A booking an outside system made is known by its id there: booked once (NULLs never collide).
        UniqueConstraint("source", "external_id", name="uq_appointments_source_external_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    cpts_id: Mapped[int] = mapped_column(ForeignKey("organisations.id"))
    kind: Mapped[AppointmentKind] = mapped_column(enum_type(AppointmentKind, "appointment_kind"))
    state: Mapped[AppointmentState] = mapped_column(
        enum_type(AppointmentState, "appointment_state"), default=AppointmentState.PROPOSED
    )
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("slots.id"), index=True)
    program_id: Mapped[int | None] = mapped_column(ForeignKey("session_programs.id"), index=True)
    performer_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"))
    accompanying_id: Mapped[int | None] = mapped_column(ForeignKey("professionals.id"))
    place_kind: Mapped[PlaceKind] = mapped_column(enum_type(PlaceKind, "place_kind"))
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)  # the performer's time
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    accompaniment_starts_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    accompaniment_ends_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    room_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    kit_id: Mapped[int | None] = mapped_column(ForeignKey("resources.id"))
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # iCalendar SEQUENCE, raised on each change
    created_by_user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    declined_reason: Mapped[str | None] = mapped_column(String(300))
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    cancel_reason: Mapped[str | None] = mapped_column(String(300))
    is_late_cancellation: Mapped[bool] = mapped_column(Boolean, default=False)
    no_show_recorded_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    # Pre-session traces (HAS): identity check, location, call-back phone, checklist.
    identity_checked_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    identity_checked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    identity_check_method: Mapped[str | None] = mapped_column(String(40))
    patient_location: Mapped[str | None] = mapped_column(String(300))
    callback_phone: Mapped[str | None] = mapped_column(String(20))
    checklist: Mapped[str] = mapped_column(Text, default="{}")  # JSON: camera, sound, light, privacy, companion
    checklist_saved_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)  # before the start (HAS)
    checklist_saved_by_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    degraded_reason: Mapped[str | None] = mapped_column(String(300))
    # Télésoin: the act done remotely and the coefficient of the act it replaces (NGAP), for pricing.
    telesoin_act: Mapped[str | None] = mapped_column(String(40))
    act_coefficient: Mapped[Decimal | None] = mapped_column(Numeric(5, 2))
    last_in_person_dressing_on: Mapped[dt.date | None] = mapped_column(Date)
    # The last in-person care of the patient as the booker attested it, when the hub holds none (12-month rule).
    last_in_person_contact_on: Mapped[dt.date | None] = mapped_column(Date)
    remote_share_override_reason: Mapped[str | None] = mapped_column(String(300))
    # A serial télésoin session may go without its own report (seed 002), never the last of the series.
    report_waived_reason: Mapped[str | None] = mapped_column(String(300))
    # A kiné's télésoin session: its six rituals (hub.models.rituals) as the kiné recorded them, JSON.
    rituals: Mapped[str | None] = mapped_column(Text)
    rituals_recorded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Who booked it: the hub itself, or the Service d'accès aux soins (SAS) with its own id for the booking; the
    # SAS is told each status change (workflows.sas).
    source: Mapped[str] = mapped_column(String(10), default=BOOKED_IN_HUB, server_default=BOOKED_IN_HUB)
    external_id: Mapped[str | None] = mapped_column(String(64))

    patient: Mapped[Patient] = relationship()
    performer: Mapped[Professional] = relationship(foreign_keys=[performer_id])
    accompanying: Mapped[Professional | None] = relationship(foreign_keys=[accompanying_id])
    slot: Mapped[Slot | None] = relationship()
    room: Mapped[Resource | None] = relationship(foreign_keys=[room_id])
    kit: Mapped[Resource | None] = relationship(foreign_keys=[kit_id])
    allocations: Mapped[list["Allocation"]] = relationship(back_populates="appointment", cascade="all, delete-orphan")

    @property
    def telesoin_act_label(self) -> str | None:
        return telesoin_act_label(self.telesoin_act)

    @property
    def accompaniment_window(self) -> tuple[dt.datetime, dt.datetime]:
        """The time the accompanying IDEL and the patient are held: an assisted teleconsultation's window (set when
        it is booked), the consultation itself for any other appointment."""
        return (self.accompaniment_starts_at or self.starts_at, self.accompaniment_ends_at or self.ends_at)


def telesoin_act_label(act: str | None) -> str | None:
    """`Appointment.telesoin_act_label` of an appointment read as a plain row."""
    return TELESOIN_ACT_LABELS.get(act, act) if act else None


def appointment_state_label(appointment: Appointment) -> str:
    """The state as a person reads it: an assisted teleconsultation proposed while nobody has taken the
    accompaniment is « IDEL à trouver », never « Proposé », which would say someone was asked and holds it."""
    return state_label(appointment.state, appointment.kind, appointment.accompanying_id)


def state_label(state: AppointmentState, kind: AppointmentKind, accompanying_id: int | None) -> str:
    """`appointment_state_label` of an appointment read as a plain row."""
    if (
        state is AppointmentState.PROPOSED
        and kind is AppointmentKind.ASSISTED_TELECONSULTATION
        and accompanying_id is None
    ):
        return IDEL_TO_FIND
    return APPOINTMENT_STATE_LABELS[state]


class AllocationResource(StrEnum):
    PATIENT = "patient"
    PROFESSIONAL = "professional"
    ROOM = "room"
    KIT = "kit"


class Allocation(Base):
    """One resource held over a half-open time range for an appointment, or for a group session's slot (its
    performer, room and kit, held once whatever the number of participants): the unit of conflict.

    Two allocations of the same resource never overlap: an exclusion constraint on PostgreSQL, a check
    inside a serialised transaction on SQLite (scheduling.bookings)."""

    __tablename__ = "allocations"
    __table_args__ = (
        CheckConstraint("ends_at > starts_at", name="allocation_order"),
        CheckConstraint("(appointment_id IS NULL) <> (slot_id IS NULL)", name="one_owner"),
        Index("ix_allocations_resource_time", "resource_kind", "resource_id", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int | None] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"), index=True)
    slot_id: Mapped[int | None] = mapped_column(ForeignKey("slots.id", ondelete="CASCADE"), index=True)
    resource_kind: Mapped[AllocationResource] = mapped_column(enum_type(AllocationResource, "allocation_resource"))
    resource_id: Mapped[int] = mapped_column(Integer)
    starts_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)

    appointment: Mapped[Appointment | None] = relationship(back_populates="allocations")


class VisitOfferState(StrEnum):
    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class VisitOffer(Base):
    """An accompanying visit offered to an IDEL: the patient's own first, then the territory's."""

    __tablename__ = "visit_offers"
    # The pair's unique index also serves the lookups (and the foreign key) by appointment_id: no index of its own.
    __table_args__ = (UniqueConstraint("appointment_id", "professional_id", name="uq_visit_offers_pair"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    appointment_id: Mapped[int] = mapped_column(ForeignKey("appointments.id", ondelete="CASCADE"))
    professional_id: Mapped[int] = mapped_column(ForeignKey("professionals.id"), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)  # 1: the patient's own IDEL; 2: the others
    state: Mapped[VisitOfferState] = mapped_column(
        enum_type(VisitOfferState, "visit_offer_state"), default=VisitOfferState.PENDING
    )
    offered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    responded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(300))

    appointment: Mapped[Appointment] = relationship()
    professional: Mapped[Professional] = relationship()
