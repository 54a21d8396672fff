"""Fees: pricing at the tariff in force on the act's date, accrual from the workflows, yearly and
monthly caps, and the 20 % remote-care share of IDELs and kinés.

Calendar months and years are those of the territory's zone: an act at 23:30 on 31 December in Paris
counts in that year (T11). Caps are checked under a lock on the professional's row, so that two
accruals at once cannot both take the last paid place.
"""

import datetime as dt
import json
from dataclasses import dataclass, replace
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import audit
from hub.errors import RuleViolation, ValidationFailed
from hub.formatting import percent
from hub.models import (
    TELESOIN_ACT_LABELS,
    Appointment,
    AppointmentKind,
    AppointmentState,
    Attendance,
    AuditEvent,
    DeclaredActivity,
    FeeEntry,
    FeeStatus,
    OrganisationKind,
    PlaceKind,
    Profession,
    Professional,
    Role,
    Tariff,
    TariffUnit,
    TelesoinActCode,
    professional_organisations,
)
from scheduling.agenda import day_bounds

CENT = Decimal("0.01")
REMOTE_SHARE_LIMIT = Decimal("0.20")
REMOTE_SHARE_WARNING = Decimal("0.15")

# The acts a profession may do in télésoin, each with the usual NGAP coefficient of the in-person act it stands
# for: the session is priced at that coefficient × the key letter (TMK, TMI), unless the booker states the act's
# own. IDEL: the four acts of avenant 9 (seed 004). Kiné and orthophoniste: the act the session replaces, never an
# initial or renewal assessment (ASSESSMENT_ACTS).
TELESOIN_ACTS: dict[Profession, dict[str, Decimal]] = {
    Profession.NURSE: {
        TelesoinActCode.HEART_FAILURE_COPD_SURVEILLANCE: Decimal("5.8"),
        TelesoinActCode.MEDICATION_INTAKE: Decimal("5.1"),
        TelesoinActCode.INSULIN_SURVEILLANCE: Decimal("1"),
        TelesoinActCode.REMOTE_DRESSING: Decimal("2"),
    },
    Profession.PHYSIOTHERAPIST: {
        TelesoinActCode.LIMB_OR_SPINE: Decimal("7.5"),
        TelesoinActCode.SEVERAL_LIMBS: Decimal("9.5"),
        TelesoinActCode.RESPIRATORY: Decimal("8"),
        TelesoinActCode.STROKE: Decimal("9"),
        TelesoinActCode.BALANCE: Decimal("8"),
    },
    Profession.SPEECH_THERAPIST: {
        TelesoinActCode.ARTICULATION: Decimal("8"),
        TelesoinActCode.ORAL_LANGUAGE: Decimal("12.1"),
        TelesoinActCode.WRITTEN_LANGUAGE: Decimal("10.1"),
        TelesoinActCode.VOICE: Decimal("11.4"),
    },
}
ASSESSMENT_ACTS = frozenset({TelesoinActCode.INITIAL_ASSESSMENT, TelesoinActCode.RENEWAL_ASSESSMENT})
ASSESSMENTS_NEVER_REMOTE = frozenset({Profession.PHYSIOTHERAPIST, Profession.SPEECH_THERAPIST})
TELESOIN_PERFORMERS = {
    Profession.NURSE: "un·e IDEL",
    Profession.PHYSIOTHERAPIST: "un·e masseur-kinésithérapeute",
    Profession.SPEECH_THERAPIST: "un·e orthophoniste",
}
REMOTE_DRESSING_MONTHLY_CAP = 4
# A remote act needs an in-person one within this many months before it (kiné, orthophoniste, IDEL).
IN_PERSON_WITHIN_MONTHS = 12
ACCOMPANIMENT_CODES = {
    PlaceKind.NURSING_VISIT: "TLS",
    PlaceKind.DEDICATED_PLACE: "TLL",
    PlaceKind.PRACTICE: "TLL",
    PlaceKind.HOME: "TLD",
}
REMOTE_CARE_CODES = {Profession.PHYSIOTHERAPIST: "TMK", Profession.NURSE: "TMI"}
PHARMACY_ASSISTANCE_CODE = "TLM"  # a pharmacist's assistance of a teleconsultation in the officine
LIVE = (FeeStatus.ACCRUED, FeeStatus.DECLARED, FeeStatus.PAID)
NOT_HAPPENING = (AppointmentState.CANCELLED, AppointmentState.DECLINED, AppointmentState.DEGRADED)
PLANNED = (AppointmentState.PROPOSED, AppointmentState.CONFIRMED, AppointmentState.CHECKED_IN)


def tariff_in_force(session: Session, code: str, day: dt.date) -> Tariff | None:
    """The version of `code` in force on `day`, if any."""
    return session.scalar(
        select(Tariff)
        .where(Tariff.code == code, Tariff.effective_from <= day)
        .where((Tariff.effective_until.is_(None)) | (Tariff.effective_until >= day))
        .order_by(Tariff.effective_from.desc())
        .limit(1)
    )


def tariff_on(session: Session, code: str, day: dt.date) -> Tariff:
    """The version of `code` in force on `day`, or a French refusal."""
    tariff = tariff_in_force(session, code, day)
    if tariff is None:
        raise RuleViolation(f"Aucun tarif {code} n'est en vigueur le {day.strftime('%d/%m/%Y')}.")
    return tariff


def local_day(instant: dt.datetime, zone: str) -> dt.date:
    return instant.astimezone(ZoneInfo(zone)).date()


@dataclass(frozen=True)
class Act:
    professional: Professional
    code: str
    act_on: dt.date
    source_key: str
    patient_id: int | None = None
    appointment_id: int | None = None
    coefficient: Decimal = Decimal(1)
    prescriber_rpps: str | None = None
    is_remote_care: bool = False


def accrue(session: Session, act: Act) -> FeeEntry:
    """Record the fee of one act, once (the source key makes a second accrual return the first entry).

    Caps do not refuse the act: it is recorded at zero with the reason, so that the count stays right.
    """
    # Locked first: two accruals of one act at once then meet the existing entry, not the unique key.
    _lock_professional(session, act.professional.id)
    existing = session.scalar(select(FeeEntry).where(FeeEntry.source_key == act.source_key))
    if existing is not None:
        return existing
    tariff = tariff_on(session, act.code, act.act_on)
    amount, note = _price(session, tariff, act)
    entry = FeeEntry(
        cpts_id=act.professional.cpts_id,
        professional_id=act.professional.id,
        patient_id=act.patient_id,
        appointment_id=act.appointment_id,
        tariff_id=tariff.id,
        code=act.code,
        act_on=act.act_on,
        coefficient=act.coefficient,
        amount=amount,
        is_remote_care=act.is_remote_care,
        prescriber_rpps=act.prescriber_rpps,
        note=note,
        source_key=act.source_key,
    )
    session.add(entry)
    session.flush()  # the next accrual in this transaction counts this one
    return entry


def _lock_professional(session: Session, professional_id: int) -> None:
    # SQLite has no row locks; its BEGIN IMMEDIATE transaction already serialises writers.
    session.execute(select(Professional.id).where(Professional.id == professional_id).with_for_update())


def yearly_cap_per_patient(session: Session, code: str, day: dt.date) -> int | None:
    """How many acts of `code` a professional is paid per patient in the year of `day`, by the tariff in force
    (None: no cap, or no tariff that day)."""
    tariff = tariff_in_force(session, code, day)
    return tariff.yearly_cap_per_patient if tariff is not None else None


def _price(session: Session, tariff: Tariff, act: Act) -> tuple[Decimal, str | None]:
    # The cap counts the acts already paid: an act recorded at 0 € past the cap does not move it.
    if tariff.yearly_cap_per_patient is not None and act.patient_id is not None:
        paid = _count(session, act, FeeEntry.patient_id == act.patient_id, FeeEntry.amount > 0)
        if paid >= tariff.yearly_cap_per_patient:
            return Decimal(0), (
                f"Plafond atteint : {tariff.yearly_cap_per_patient} actes {act.code} par an pour ce patient ; "
                "acte enregistré sans rémunération."
            )
    if tariff.unit is TariffUnit.BLOCK:
        return _block_price(session, tariff, act)
    amount = tariff.amount * (act.coefficient if tariff.unit is TariffUnit.KEY_LETTER else 1)
    return amount.quantize(CENT, ROUND_HALF_UP), None


def _block_price(session: Session, tariff: Tariff, act: Act) -> tuple[Decimal, str | None]:
    """Pharmacist assistance: nothing until the block of `block_size` is complete, then the block's price,
    up to the yearly cap."""
    if tariff.block_size is None:
        raise RuleViolation(f"Le tarif {tariff.code} se paie par bloc, mais la taille du bloc n'est pas renseignée.")
    rank = _count(session, act) + 1
    if rank % tariff.block_size:
        return Decimal(0), f"Assistance n° {rank} de l'année : rémunérée par bloc de {tariff.block_size}."
    if not _block_pays(tariff, _sum(session, act)):
        return Decimal(0), f"Plafond annuel de {tariff.yearly_cap_amount} € atteint : assistance non rémunérée."
    return tariff.amount, None


def _block_pays(tariff: Tariff, paid: Decimal) -> bool:
    """Whether one more block is paid, `paid` being the year's amount so far: never past the yearly cap."""
    return tariff.yearly_cap_amount is None or paid + tariff.amount <= tariff.yearly_cap_amount


@dataclass(frozen=True)
class BlockProgress:
    """A professional's acts of a block tariff (a pharmacist's TLM) over a calendar year, as the tariff in force
    pays them: how many, the amount paid, and how far the next paid block is."""

    year: int
    acts: int
    paid: Decimal
    tariff: Tariff | None  # None: no version of the code in force that day

    @property
    def yearly_cap(self) -> Decimal | None:
        return self.tariff.yearly_cap_amount if self.tariff else None

    @property
    def cap_reached(self) -> bool:
        return self.tariff is not None and not _block_pays(self.tariff, self.paid)

    @property
    def until_next_block(self) -> int | None:
        """How many more acts until the next paid block; None once the cap is reached (or without a tariff)."""
        if self.tariff is None or self.tariff.block_size is None or self.cap_reached:
            return None
        return self.tariff.block_size - self.acts % self.tariff.block_size


def block_progress(session: Session, professional: Professional, code: str, *, day: dt.date) -> BlockProgress:
    """The professional's live entries of `code` in the calendar year of `day` (the territory's: entries are
    dated by their local day), against the version of the tariff in force on `day`."""
    where = _year_entries(professional.id, code, day.year)
    acts, paid = session.execute(select(func.count(FeeEntry.id), func.sum(FeeEntry.amount)).where(*where)).one()
    return BlockProgress(day.year, acts, Decimal(paid or 0).quantize(CENT), tariff_in_force(session, code, day))


def _year_entries(professional_id: int, code: str, year: int, *conditions):
    """The professional's live entries of a code in a (local) calendar year."""
    return [
        FeeEntry.professional_id == professional_id,
        FeeEntry.code == code,
        FeeEntry.status.in_(LIVE),
        FeeEntry.act_on >= dt.date(year, 1, 1),
        FeeEntry.act_on <= dt.date(year, 12, 31),
        *conditions,
    ]


def _same_code_and_year(act: Act, *conditions):
    """The professional's live entries of the act's code in the act's (local) calendar year."""
    return _year_entries(act.professional.id, act.code, act.act_on.year, *conditions)


def _count(session: Session, act: Act, *conditions) -> int:
    return session.execute(select(func.count(FeeEntry.id)).where(*_same_code_and_year(act, *conditions))).scalar_one()


def _sum(session: Session, act: Act, *conditions) -> Decimal:
    total = session.scalar(select(func.sum(FeeEntry.amount)).where(*_same_code_and_year(act, *conditions)))
    return Decimal(total or 0)


# --- from the workflows -----------------------------------------------------------------------------------


def accrue_appointment(session: Session, appointment: Appointment, *, zone: str) -> list[FeeEntry]:
    """The fees of an appointment that is done: the remote doctor's teleconsultation and the accompanying
    IDEL's (TLS, TLL, TLD by place) or pharmacist's assistance, with the doctor's RPPS as prescriber; or
    the télésoin act (TMK, TMI × coefficient). A degraded or cancelled appointment accrues nothing."""
    if appointment.state is not AppointmentState.DONE:
        return []
    day = local_day(appointment.starts_at, zone)
    performer = appointment.performer
    if appointment.kind is AppointmentKind.ASSISTED_TELECONSULTATION:
        return _accrue_teleconsultation(session, appointment, performer, day)
    if appointment.kind is AppointmentKind.TELESOIN:
        code = REMOTE_CARE_CODES.get(performer.profession)
        if code is None:
            return []
        return [
            accrue(
                session,
                Act(
                    performer,
                    code,
                    day,
                    f"appointment:{appointment.id}:telesoin",
                    patient_id=appointment.patient_id,
                    appointment_id=appointment.id,
                    coefficient=appointment.act_coefficient or Decimal(1),
                    is_remote_care=True,
                ),
            )
        ]
    return []


def _accrue_teleconsultation(session, appointment, performer, day) -> list[FeeEntry]:
    code = "TCG" if performer.profession is Profession.GENERAL_PRACTITIONER else "TC"
    entries = [
        accrue(
            session,
            Act(
                performer,
                code,
                day,
                f"appointment:{appointment.id}:performer",
                patient_id=appointment.patient_id,
                appointment_id=appointment.id,
            ),
        )
    ]
    helper = appointment.accompanying
    if helper is None or accompanying_absent(session, appointment):
        return entries
    helper_code: str | None
    if helper.profession is Profession.PHARMACIST:
        helper_code = PHARMACY_ASSISTANCE_CODE
    else:
        helper_code = ACCOMPANIMENT_CODES.get(appointment.place_kind)
    if helper_code is not None:
        entries.append(
            accrue(
                session,
                Act(
                    helper,
                    helper_code,
                    day,
                    f"appointment:{appointment.id}:accompanying",
                    patient_id=appointment.patient_id,
                    appointment_id=appointment.id,
                    prescriber_rpps=performer.rpps,
                ),
            )
        )
    return entries


def accompanying_absent(session: Session, appointment: Appointment) -> bool:
    """The accompanying professional was recorded absent (workflows.attendance): no accompaniment fee is owed,
    since TLS, TLL, TLD and TLM pay the accompaniment actually given (seed 004)."""
    return bool(
        session.scalar(
            select(Attendance.id).where(
                Attendance.appointment_id == appointment.id, Attendance.is_accompanying_present.is_(False)
            )
        )
    )


def check_telesoin_act(
    session: Session,
    *,
    performer: Professional,
    patient_id: int,
    act: str | None,
    act_on: dt.date,
    today: dt.date,
    last_in_person_dressing_on: dt.date | None,
    last_in_person_contact_on: dt.date | None,
    zone: str,
) -> None:
    """The act-level rules of télésoin, checked when the session is booked (explained in French): an act of the
    performer's profession, never a kiné's or orthophoniste's assessment, the remote dressing follow-up's own
    rules, and an in-person care of the patient within twelve months (`check_known_patient`)."""
    acts = TELESOIN_ACTS.get(performer.profession)
    if acts is None:
        if act is not None:
            raise ValidationFailed({"telesoin_act": "Aucun acte de télésoin n'est prévu pour cette profession."})
        return
    if performer.profession in ASSESSMENTS_NEVER_REMOTE and act in ASSESSMENT_ACTS:
        raise RuleViolation(
            f"{TELESOIN_ACT_LABELS[str(act)]} : un bilan initial ou son renouvellement ne se fait "
            "jamais en télésoin ; programmez-le en présentiel."
        )
    if act is None:
        raise ValidationFailed({"telesoin_act": "Choisissez l'acte de la séance de télésoin."})
    if act not in acts:
        who, allowed = TELESOIN_PERFORMERS[performer.profession], " ; ".join(TELESOIN_ACT_LABELS[a] for a in acts)
        raise RuleViolation(f"En télésoin, {who} ne peut réaliser que : {allowed}.")
    if act == TelesoinActCode.REMOTE_DRESSING:
        _check_remote_dressing(session, performer, patient_id, act_on, last_in_person_dressing_on, zone)
    check_known_patient(
        session,
        performer=performer,
        patient_id=patient_id,
        act_on=act_on,
        declared_on=last_in_person_contact_on,
        today=today,
        zone=zone,
    )


def usual_coefficient(profession: Profession, act: str | None) -> Decimal | None:
    """The NGAP coefficient of the in-person act a télésoin act stands for, when the act is one of the profession's."""
    return TELESOIN_ACTS.get(profession, {}).get(act) if act else None


def check_known_patient(
    session: Session,
    *,
    performer: Professional,
    patient_id: int,
    act_on: dt.date,
    declared_on: dt.date | None,
    today: dt.date,
    zone: str,
) -> None:
    """Télésoin only for a patient cared for in person within the twelve months before the session: by the kiné or
    orthophoniste themself, or by the IDEL or a nurse of their group practice (seed 004). Proven by an in-person
    care done in the hub, or by the date of the last one as the booker attests it (never in the future)."""
    if declared_on is not None and declared_on > today:
        raise ValidationFailed(
            {"last_in_person_contact_on": "Cette date est dans le futur : indiquez un soin en présentiel déjà réalisé."}
        )
    # The same day twelve months earlier (28 February for a 29 February).
    earliest = act_on - relativedelta(months=IN_PERSON_WITHIN_MONTHS)
    if declared_on is not None and declared_on >= earliest:
        return
    if _cared_for_in_person(session, _who_knows_the_patient(session, performer), patient_id, earliest, act_on, zone):
        return
    who = (
        f"{performer.full_name} ou un·e infirmier·e de son cabinet"
        if performer.profession is Profession.NURSE
        else performer.full_name
    )
    since = f"depuis le {earliest.strftime('%d/%m/%Y')}"
    declared = f" (le dernier déclaré date du {declared_on.strftime('%d/%m/%Y')})" if declared_on is not None else ""
    raise RuleViolation(
        f"Le télésoin suppose que {who} ait vu ce patient en présentiel dans les {IN_PERSON_WITHIN_MONTHS} mois "
        f"précédant la séance : aucun soin en présentiel {since} n'est enregistré ni déclaré{declared}."
    )


def _who_knows_the_patient(session: Session, performer: Professional) -> list[int]:
    """The performer, and for an IDEL the nurses of their group practice (a structure they share, not the CPTS)."""
    if performer.profession is not Profession.NURSE:
        return [performer.id]
    practices = [o.id for o in performer.organisations if o.kind is not OrganisationKind.CPTS]
    colleagues = session.scalars(
        select(Professional.id)
        .join(professional_organisations, professional_organisations.c.professional_id == Professional.id)
        .where(
            professional_organisations.c.organisation_id.in_(practices),
            Professional.profession == Profession.NURSE,
        )
    ).all()
    return [performer.id, *colleagues]


def _cared_for_in_person(session, professional_ids, patient_id, first: dt.date, last: dt.date, zone: str) -> bool:
    """A care done in the hub with one of them beside the patient, from `first` to `last` (local days): an
    in-person appointment they performed, or a teleconsultation they accompanied."""
    beside_the_patient = (
        (Appointment.kind == AppointmentKind.IN_PERSON) & Appointment.performer_id.in_(professional_ids)
    ) | Appointment.accompanying_id.in_(professional_ids)
    found = session.scalar(
        select(Appointment.id)
        .where(
            Appointment.patient_id == patient_id,
            Appointment.state == AppointmentState.DONE,
            beside_the_patient,
            Appointment.starts_at >= day_bounds(first, zone)[0],
            Appointment.starts_at < day_bounds(last, zone)[1],
        )
        .limit(1)
    )
    return found is not None


def month_bounds(year: int, month: int, zone: str) -> tuple[dt.datetime, dt.datetime]:
    """A local calendar month as a UTC range (T11)."""
    tz = ZoneInfo(zone)
    following = (year + 1, 1) if month == 12 else (year, month + 1)
    return (
        dt.datetime(year, month, 1, tzinfo=tz).astimezone(dt.UTC),
        dt.datetime(*following, 1, tzinfo=tz).astimezone(dt.UTC),
    )


def _check_remote_dressing(session, performer, patient_id, act_on, last_in_person_dressing_on, zone) -> None:
    if last_in_person_dressing_on is None or last_in_person_dressing_on > act_on:
        raise RuleViolation("Le suivi de pansement à distance suppose un pansement déjà réalisé en présentiel.")
    if last_in_person_dressing_on == act_on:
        raise RuleViolation("Pas de suivi de pansement à distance le jour d'un pansement en présentiel.")
    month_start, month_end = month_bounds(act_on.year, act_on.month, zone)
    done = session.scalar(
        select(func.count(Appointment.id)).where(
            Appointment.performer_id == performer.id,
            Appointment.patient_id == patient_id,
            Appointment.telesoin_act == "suivi_pansement",
            Appointment.state.not_in(NOT_HAPPENING),
            Appointment.starts_at >= month_start,
            Appointment.starts_at < month_end,
        )
    )
    if done >= REMOTE_DRESSING_MONTHLY_CAP:
        raise RuleViolation(
            f"Au plus {REMOTE_DRESSING_MONTHLY_CAP} suivis de pansement à distance par mois et par patient."
        )


# --- the 20 % remote-care share ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RemoteShare:
    remote_amount: Decimal
    total_amount: Decimal | None
    estimated: bool  # some months of the period were not declared and are extrapolated
    overridden: bool = False  # a coordinator let this act go over the limit

    @property
    def ratio(self) -> Decimal | None:
        """The exact share, for comparisons with the thresholds."""
        return self.remote_amount / self.total_amount if self.total_amount else None

    @property
    def share(self) -> Decimal | None:
        """The share rounded for display (four decimals)."""
        return None if self.ratio is None else self.ratio.quantize(Decimal("0.0001"))

    @property
    def is_over(self) -> bool:
        return self.ratio is not None and self.ratio > REMOTE_SHARE_LIMIT

    @property
    def level(self) -> str:
        if self.ratio is None:
            return "inconnu"
        if self.is_over:
            return "depasse"
        return "alerte" if self.ratio >= REMOTE_SHARE_WARNING else "ok"


def _months(first: dt.date, last: dt.date) -> list[tuple[int, int]]:
    months, year, month = [], first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def remote_share(
    session: Session, professional_id: int, *, first: dt.date, last: dt.date, extra_remote: Decimal = Decimal(0)
) -> RemoteShare:
    """Télésoin fees in the hub ÷ the declared conventioned activity, over the months from `first` to `last`.
    Accompanied teleconsultations do not count. Undeclared months are estimated from the declared ones."""
    remote = session.scalar(
        select(func.sum(FeeEntry.amount)).where(
            FeeEntry.professional_id == professional_id,
            FeeEntry.is_remote_care.is_(True),
            FeeEntry.status.in_(LIVE),
            FeeEntry.act_on >= first,
            FeeEntry.act_on <= last,
        )
    )
    months = _months(first, last)
    declared = {
        (row.year, row.month): row.amount
        for row in session.scalars(
            select(DeclaredActivity).where(
                DeclaredActivity.professional_id == professional_id,
                (DeclaredActivity.year * 100 + DeclaredActivity.month).between(
                    months[0][0] * 100 + months[0][1], months[-1][0] * 100 + months[-1][1]
                ),
            )
        )
    }
    remote_amount = Decimal(remote or 0) + extra_remote
    if not declared:
        return RemoteShare(remote_amount, None, estimated=True)
    average = sum(declared.values(), Decimal(0)) / len(declared)
    total = sum((declared.get(m, average) for m in months), Decimal(0))
    return RemoteShare(remote_amount, total, estimated=len(declared) < len(months))


def rolling_year(day: dt.date) -> tuple[dt.date, dt.date]:
    """The twelve months ending with `day`'s month: the share is judged on whole declared months."""
    first_month = (day.year - 1, day.month + 1) if day.month < 12 else (day.year, 1)
    return dt.date(*first_month, 1), day


def booked_remote_care(
    session: Session, performer: Professional, *, first: dt.date, last: dt.date, zone: str
) -> Decimal:
    """Télésoin sessions booked but not done yet in the period, at today's key-letter value: each booking
    must count those already planned, or sessions booked ahead would each pass the check alone."""
    code = REMOTE_CARE_CODES.get(performer.profession)
    start, _ = month_bounds(first.year, first.month, zone)
    end = month_bounds(last.year, last.month, zone)[1]
    coefficients = session.scalar(
        select(func.sum(func.coalesce(Appointment.act_coefficient, 1))).where(
            Appointment.performer_id == performer.id,
            Appointment.kind == AppointmentKind.TELESOIN,
            Appointment.state.in_(PLANNED),
            Appointment.starts_at >= start,
            Appointment.starts_at < end,
        )
    )
    if not coefficients or code is None:
        return Decimal(0)
    return tariff_on(session, code, last).amount * Decimal(coefficients)


def planned_remote_share(
    session: Session, performer: Professional, *, act_on: dt.date, zone: str, extra_remote: Decimal = Decimal(0)
) -> RemoteShare:
    """An IDEL's or kiné's share over the rolling year of `act_on`, counting the télésoin sessions booked and not
    done yet, and `extra_remote` (an act about to be booked). Unknown for the other professions."""
    if performer.profession not in REMOTE_CARE_CODES:
        return RemoteShare(Decimal(0), None, estimated=True)
    first, last = rolling_year(act_on)
    booked = booked_remote_care(session, performer, first=first, last=last, zone=zone)
    return remote_share(session, performer.id, first=first, last=last, extra_remote=extra_remote + booked)


def share_warning(share: RemoteShare, performer: Professional) -> str | None:
    """The warning to show where a télésoin session is booked, when it takes the performer's share to the
    warning threshold (15 %) without passing the limit (20 %)."""
    if share.level != "alerte":
        return None
    assert share.share is not None  # a share at the warning level has a ratio
    return (
        f"Attention : avec cette séance, le télésoin de {performer.full_name} atteint {percent(share.share)} de son "
        f"activité sur douze mois (alerte à {percent(REMOTE_SHARE_WARNING, places=0)}, plafond à "
        f"{percent(REMOTE_SHARE_LIMIT, places=0)})."
    )


def check_remote_share(
    session: Session,
    actor,
    *,
    performer: Professional,
    act_amount: Decimal,
    act_on: dt.date,
    override_reason: str | None,
    zone: str,
) -> RemoteShare:
    """Refuse a télésoin act that would take an IDEL's or kiné's remote share over 20 % of the rolling
    year, unless a coordinator overrides it with a reason. The booking audits an override
    (`remote_share.override`) once the appointment exists, so that the line names it and its reason."""
    share = planned_remote_share(session, performer, act_on=act_on, zone=zone, extra_remote=act_amount)
    if not share.is_over:
        return share
    assert share.share is not None  # a share over the limit has a ratio
    limit = percent(REMOTE_SHARE_LIMIT, places=0)
    if not (override_reason or "").strip():
        raise RuleViolation(
            f"Avec cette séance, le télésoin de {performer.full_name} atteindrait {percent(share.share)} de son "
            f"activité sur douze mois : au-delà du plafond de {limit}. Une dérogation motivée de la coordination "
            "est nécessaire.",
            remote_share=str(share.share),
        )
    if not getattr(actor, "has_role", lambda _r: False)(Role.COORDINATOR):
        raise RuleViolation(f"Seule la coordination peut déroger au plafond de {limit} de télésoin.")
    return replace(share, overridden=True)


@dataclass(frozen=True)
class ShareOverride:
    """One override of the 20 % share, as the coordination reviews it."""

    appointment_id: int
    professional_id: int
    professional_name: str
    starts_at: dt.datetime
    share: Decimal | None
    reason: str | None
    overridden_at: dt.datetime
    overridden_by: str


def remote_share_overrides(
    session: Session, cpts_id: int, *, page: int = 1, per_page: int = 20
) -> tuple[list[ShareOverride], int]:
    """The CPTS's overrides, most recent first, and their count: the audit line says when, by whom and at
    which share; the appointment holds the reason (free text, possibly about the patient's health, which
    the audit never holds)."""
    where = (
        AuditEvent.action == "remote_share.override",
        AuditEvent.cpts_id == cpts_id,
        AuditEvent.target_type == Appointment.__tablename__,
    )
    total = session.scalar(select(func.count(AuditEvent.id)).where(*where)) or 0
    lines = session.scalars(
        select(AuditEvent).where(*where).order_by(AuditEvent.id.desc()).offset((page - 1) * per_page).limit(per_page)
    ).all()
    ids = [int(line.target_id) for line in lines if line.target_id is not None]
    booked = {
        a.id: a
        for a in session.scalars(
            select(Appointment).where(Appointment.id.in_(ids), Appointment.cpts_id == cpts_id)
        ).all()
    }
    overrides = []
    for line in lines:
        appointment = booked.get(int(line.target_id or 0))
        if appointment is None:
            continue
        share = json.loads(line.details or "{}").get("share")
        overrides.append(
            ShareOverride(
                appointment_id=appointment.id,
                professional_id=appointment.performer_id,
                professional_name=appointment.performer.full_name,
                starts_at=appointment.starts_at,
                share=Decimal(share) if share is not None else None,
                reason=appointment.remote_share_override_reason,
                overridden_at=line.occurred_at,
                overridden_by=line.actor_label,
            )
        )
    return overrides, total


def declare_activity(
    session: Session,
    actor,
    professional: Professional,
    *,
    year: int,
    month: int,
    amount: Decimal,
    source: str = "declared",
) -> DeclaredActivity:
    """Record (or correct) a month's total conventioned activity."""
    row = session.scalar(
        select(DeclaredActivity).where(
            DeclaredActivity.professional_id == professional.id,
            DeclaredActivity.year == year,
            DeclaredActivity.month == month,
        )
    )
    if row is None:
        row = DeclaredActivity(professional_id=professional.id, year=year, month=month)
        session.add(row)
    row.amount, row.source, row.recorded_by_user_id = amount, source, getattr(actor, "id", None)
    session.flush()
    audit.record(
        session,
        actor=actor,
        action="activity.declare",
        target=professional,
        details={"year": year, "month": month, "source": source},
    )
    return row
