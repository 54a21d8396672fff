import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from hub.errors import RuleViolation
from hub.models import (
    AppointmentState,
    DeclaredActivity,
    FeeEntry,
    PlaceKind,
    Profession,
    Slot,
    TelesoinActCode,
)
from tests import ZONE, factories
from tests.factories import NOW, PARIS, SEEN_ON, carry_out, check_in
from workflows import appointments, fees


@pytest.mark.parametrize(
    ("code", "day", "amount"),
    [
        ("TE2", dt.date(2025, 12, 31), "20.00"),
        ("TE2", dt.date(2026, 1, 1), "23.00"),
        ("TCG", dt.date(2026, 6, 1), "25.00"),
        ("TC", dt.date(2026, 6, 1), "25.00"),
        ("TLS", dt.date(2026, 6, 1), "10.00"),
        ("TLL", dt.date(2026, 6, 1), "12.00"),
        ("TLD", dt.date(2026, 6, 1), "15.00"),
        ("RQD", dt.date(2026, 6, 1), "10.00"),
        ("TLM", dt.date(2026, 6, 1), "25.00"),
        ("TMK", dt.date(2026, 6, 1), "2.15"),
        ("TMI", dt.date(2026, 6, 1), "3.15"),
    ],
)
def test_the_tariff_in_force_on_the_act_date(db_session, code, day, amount):
    assert fees.tariff_on(db_session, code, day).amount == Decimal(amount)


def test_no_tariff_before_the_first_version(db_session):
    with pytest.raises(RuleViolation, match="Aucun tarif TMK"):
        fees.tariff_on(db_session, "TMK", dt.date(2024, 2, 8))


def act(professional, code, day, key, **kwargs):
    return fees.Act(professional, code, day, key, **kwargs)


@pytest.mark.parametrize(("count", "paid"), [(3, 3), (4, 4), (5, 4), (6, 4)])
@pytest.mark.parametrize("code", ["RQD", "TE2"])
def test_teleexpertise_is_paid_four_times_a_year_per_patient(db_session, cpts, code, count, paid):
    doctor = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    patient = factories.patient(db_session, cpts)
    entries = [
        fees.accrue(db_session, act(doctor, code, dt.date(2026, 3, 1 + n), f"te:{code}:{n}", patient_id=patient.id))
        for n in range(count)
    ]
    assert sum(1 for e in entries if e.amount > 0) == paid
    if count > 4:
        assert "Plafond atteint" in entries[-1].note and entries[-1].amount == 0


def test_the_cap_is_per_patient_and_per_year(db_session, cpts):
    doctor = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    first, second = factories.patient(db_session, cpts), factories.patient(db_session, cpts)
    for n in range(4):
        fees.accrue(db_session, act(doctor, "RQD", dt.date(2026, 12, 1 + n), f"a{n}", patient_id=first.id))
    assert fees.accrue(db_session, act(doctor, "RQD", dt.date(2026, 12, 30), "b", patient_id=second.id)).amount > 0
    assert fees.accrue(db_session, act(doctor, "RQD", dt.date(2027, 1, 1), "c", patient_id=first.id)).amount > 0


@pytest.mark.parametrize(
    ("assistances", "paid_total"),
    [(4, "0"), (5, "25.00"), (9, "25.00"), (10, "50.00"), (150, "750.00"), (155, "750.00")],
)
def test_pharmacist_assistance_by_blocks_of_five_up_to_750_a_year(db_session, cpts, assistances, paid_total):
    pharmacist = factories.professional(db_session, cpts, Profession.PHARMACIST)
    for n in range(assistances):
        day = dt.date(2026, 1, 1) + dt.timedelta(days=n % 360)
        fees.accrue(db_session, act(pharmacist, "TLM", day, f"tlm:{n}"))
    total = db_session.scalar(select(func.sum(FeeEntry.amount)).where(FeeEntry.professional_id == pharmacist.id))
    assert Decimal(total) == Decimal(paid_total)


def test_accrual_is_idempotent(db_session, cpts):
    doctor = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    first = fees.accrue(db_session, act(doctor, "TCG", dt.date(2026, 5, 4), "same"))
    again = fees.accrue(db_session, act(doctor, "TCG", dt.date(2026, 5, 4), "same"))
    assert first.id == again.id


@pytest.mark.parametrize(
    ("instant", "year"),
    [
        (dt.datetime(2026, 12, 31, 23, 30, tzinfo=PARIS), 2026),  # 22:30Z
        (dt.datetime(2027, 1, 1, 0, 30, tzinfo=PARIS), 2027),  # 23:30Z on 31 December
        (dt.datetime(2026, 3, 31, 23, 30, tzinfo=PARIS), 2026),
    ],
)
def test_act_dates_are_paris_calendar_dates(instant, year):
    day = fees.local_day(instant.astimezone(dt.UTC), ZONE)
    assert day.year == year and day == instant.date()


def test_a_fifth_expertise_at_2330_on_31_december_counts_in_that_year(db_session, cpts):
    """T11: the act at 23:30 Paris on 31 December (22:30Z) is the 5th of its year, not the 1st of the next."""
    doctor = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    patient = factories.patient(db_session, cpts)
    for n in range(4):
        fees.accrue(db_session, act(doctor, "RQD", dt.date(2026, 11, 1 + n), f"n{n}", patient_id=patient.id))
    late = fees.local_day(dt.datetime(2026, 12, 31, 22, 30, tzinfo=dt.UTC), ZONE)
    assert fees.accrue(db_session, act(doctor, "RQD", late, "late", patient_id=patient.id)).amount == 0
    next_year = fees.local_day(dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC), ZONE)
    assert fees.accrue(db_session, act(doctor, "RQD", next_year, "ny", patient_id=patient.id)).amount > 0


@pytest.mark.parametrize("code", ["TMK", "TMI"])
def test_key_letter_times_coefficient(db_session, cpts, code):
    therapist = factories.professional(
        db_session, cpts, Profession.PHYSIOTHERAPIST if code == "TMK" else Profession.NURSE
    )
    entry = fees.accrue(
        db_session, act(therapist, code, dt.date(2026, 6, 1), "k", coefficient=Decimal("8.1"), is_remote_care=True)
    )
    price = {"TMK": Decimal("2.15"), "TMI": Decimal("3.15")}[code] * Decimal("8.1")
    assert entry.amount == price.quantize(Decimal("0.01"))


@pytest.mark.parametrize(
    ("place", "code"),
    [(PlaceKind.DEDICATED_PLACE, "TLL"), (PlaceKind.HOME, "TLD"), (PlaceKind.NURSING_VISIT, "TLS")],
)
def test_assisted_teleconsultation_accrues_for_doctor_and_idel(db_session, territory, place, code):
    t = territory
    t.cardiologist.rpps = factories.valid_rpps()
    t.idel.served_communes = "24571"
    slot = factories.slot(db_session, t.program, dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC))
    appointment = appointments.book(db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=place, now=NOW)
    carry_out(db_session, t.idel_user, appointment)
    entries = {e.professional_id: e for e in db_session.scalars(select(FeeEntry))}
    assert (entries[t.cardiologist.id].code, entries[t.cardiologist.id].amount) == ("TC", Decimal("25.00"))
    assert (entries[t.idel.id].code, entries[t.idel.id].prescriber_rpps) == (code, t.cardiologist.rpps)
    assert entries[t.idel.id].is_remote_care is False, "accompaniment does not count toward the 20 %"


def test_degraded_appointment_accrues_nothing(db_session, territory):
    t = territory
    slot = factories.slot(db_session, t.program, dt.datetime(2026, 11, 23, 13, 0, tzinfo=dt.UTC))
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )
    appointments.confirm(db_session, t.idel_user, appointment, now=NOW)
    check_in(db_session, t.idel_user, appointment)
    appointments.degrade(db_session, t.idel_user, appointment, reason="Coupure vidéo")
    assert fees.accrue_appointment(db_session, appointment, zone=ZONE) == []
    assert appointment.state is AppointmentState.DEGRADED


@pytest.fixture
def kine_program(db_session, territory):
    kine = factories.professional(db_session, territory.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True)
    program = factories.program(db_session, territory.cpts, telesoin=True, performer=kine, slot_minutes=30)
    return kine, program


def book_telesoin(db_session, t, program, start, **telesoin):
    """A télésoin session of the territory's patient, whom the booker attests was seen in person on SEEN_ON."""
    slot = db_session.scalar(select(Slot).where(Slot.program_id == program.id, Slot.starts_at == start))
    slot = slot or factories.slot(db_session, program, start)
    return appointments.book(
        db_session,
        t.coordinator,
        slot=slot,
        patient=t.patient,
        place_kind=PlaceKind.HOME,
        telesoin=appointments.TelesoinAct(**({"last_in_person_contact_on": SEEN_ON} | telesoin)),
        now=NOW,
    )


@pytest.mark.parametrize("act_name", ["bilan_initial", "renouvellement_bilan"])
def test_kine_assessment_is_never_telesoin(db_session, territory, kine_program, act_name):
    _kine, program = kine_program
    with pytest.raises(RuleViolation, match="jamais en télésoin"):
        book_telesoin(db_session, territory, program, dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC), act=act_name)


@pytest.mark.parametrize(("seen_on", "known"), [(dt.date(2025, 11, 26), True), (dt.date(2025, 11, 25), False)])
def test_the_in_person_care_is_within_twelve_months_to_the_day(db_session, territory, kine_program, seen_on, known):
    _kine, program = kine_program
    start = dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC)
    act = {"act": TelesoinActCode.LIMB_OR_SPINE, "last_in_person_contact_on": seen_on}
    if known:
        assert book_telesoin(db_session, territory, program, start, **act).last_in_person_contact_on == seen_on
    else:
        with pytest.raises(RuleViolation, match="depuis le 26/11/2025"):
            book_telesoin(db_session, territory, program, start, **act)


def test_idel_telesoin_only_for_the_four_acts(db_session, territory):
    t = territory
    nurse = factories.professional(db_session, t.cpts, Profession.NURSE)
    program = factories.program(db_session, t.cpts, telesoin=True, performer=nurse)
    with pytest.raises(RuleViolation, match="ne peut réaliser que"):
        book_telesoin(db_session, t, program, dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC), act="injection")
    start = dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC)
    with pytest.raises(RuleViolation, match="présentiel"):
        book_telesoin(db_session, t, program, start, act="suivi_pansement")
    with pytest.raises(RuleViolation, match="le jour d'un pansement"):
        book_telesoin(
            db_session, t, program, start, act="suivi_pansement", last_in_person_dressing_on=dt.date(2026, 11, 26)
        )
    for n in range(4):
        book_telesoin(
            db_session,
            t,
            program,
            start + dt.timedelta(days=n),
            act="suivi_pansement",
            last_in_person_dressing_on=dt.date(2026, 11, 20),
        )
    with pytest.raises(RuleViolation, match="Au plus 4"):
        book_telesoin(
            db_session,
            t,
            program,
            start + dt.timedelta(days=4),
            act="suivi_pansement",
            last_in_person_dressing_on=dt.date(2026, 11, 20),
        )
    book_telesoin(
        db_session,
        t,
        program,
        dt.datetime(2026, 12, 1, 9, tzinfo=dt.UTC),
        act="suivi_pansement",
        last_in_person_dressing_on=dt.date(2026, 11, 20),
    )


def declare_year(db_session, professional, amount):
    for month in range(1, 13):
        year = 2025 if month == 12 else 2026
        db_session.add(
            DeclaredActivity(professional_id=professional.id, year=year, month=month, amount=Decimal(amount))
        )
    db_session.flush()


def test_remote_share_blocks_beyond_twenty_percent_unless_overridden(db_session, territory, kine_program):
    t = territory
    kine, program = kine_program
    declare_year(db_session, kine, "100")  # 1,200 € over the rolling year: 20 % is 240 €
    for n in range(13):  # 13 × 2.15 × 8 = 223.60 €
        fees.accrue(
            db_session, act(kine, "TMK", dt.date(2026, 10, 1 + n), f"r{n}", coefficient=Decimal(8), is_remote_care=True)
        )
    share = fees.remote_share(db_session, kine.id, first=dt.date(2025, 12, 1), last=dt.date(2026, 11, 30))
    assert share.level == "alerte" and share.share == Decimal("0.1863")
    start = dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC)
    with pytest.raises(RuleViolation, match="plafond de 20\u00a0%"):
        book_telesoin(db_session, t, program, start, act=TelesoinActCode.LIMB_OR_SPINE, coefficient=Decimal(8))
    with pytest.raises(RuleViolation, match="Seule la coordination"):
        appointments.book(
            db_session,
            t.idel_user,
            slot=factories.slot(db_session, program, start + dt.timedelta(hours=1)),
            patient=t.patient,
            place_kind=PlaceKind.HOME,
            now=NOW,
            telesoin=appointments.TelesoinAct(
                act=TelesoinActCode.LIMB_OR_SPINE,
                coefficient=Decimal(8),
                last_in_person_contact_on=SEEN_ON,
                override_reason="Sortie d'hospitalisation",
            ),
        )
    booked = book_telesoin(
        db_session,
        t,
        program,
        start + dt.timedelta(hours=2),
        act=TelesoinActCode.LIMB_OR_SPINE,
        coefficient=Decimal(8),
        override_reason="Sortie d'hospitalisation, présentiel impossible",
    )
    assert booked.remote_share_override_reason.startswith("Sortie")


def test_accompaniments_do_not_count_toward_the_share(db_session, cpts):
    nurse = factories.professional(db_session, cpts, Profession.NURSE)
    declare_year(db_session, nurse, "100")
    for n in range(30):
        fees.accrue(db_session, act(nurse, "TLL", dt.date(2026, 10, 1 + n % 28), f"t{n}"))
    share = fees.remote_share(db_session, nurse.id, first=dt.date(2025, 12, 1), last=dt.date(2026, 11, 30))
    assert share.share == 0


def test_undeclared_months_are_estimated_and_marked(db_session, cpts):
    kine = factories.professional(db_session, cpts, Profession.PHYSIOTHERAPIST)
    db_session.add(DeclaredActivity(professional_id=kine.id, year=2026, month=10, amount=Decimal("1000")))
    share = fees.remote_share(db_session, kine.id, first=dt.date(2025, 12, 1), last=dt.date(2026, 11, 30))
    assert share.estimated and share.total_amount == Decimal("12000")
    nothing = fees.remote_share(
        db_session,
        factories.professional(db_session, cpts, Profession.NURSE).id,
        first=dt.date(2026, 1, 1),
        last=dt.date(2026, 12, 31),
    )
    assert nothing.share is None and nothing.level == "inconnu"


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(days=st.lists(st.integers(min_value=0, max_value=729), min_size=1, max_size=200))
def test_no_sequence_pays_a_pharmacist_more_than_750_a_year(db_session, cpts, days):
    pharmacist = factories.professional(db_session, cpts, Profession.PHARMACIST)
    for n, offset in enumerate(sorted(days)):
        fees.accrue(
            db_session,
            act(pharmacist, "TLM", dt.date(2026, 1, 1) + dt.timedelta(days=offset), f"h:{pharmacist.id}:{n}"),
        )
    rows = db_session.execute(
        select(FeeEntry.act_on, FeeEntry.amount).where(FeeEntry.professional_id == pharmacist.id)
    ).all()
    for year in (2026, 2027):
        assert sum((a for d, a in rows if d.year == year), Decimal(0)) <= Decimal(750)
    ledger = db_session.scalar(select(func.sum(FeeEntry.amount)).where(FeeEntry.professional_id == pharmacist.id))
    assert Decimal(ledger or 0) == sum((a for _d, a in rows), Decimal(0))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(acts=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 700)), min_size=1, max_size=40))
def test_no_sequence_pays_teleexpertise_more_than_four_times_a_year_per_patient(db_session, cpts, acts):
    doctor = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    patients = [factories.patient(db_session, cpts) for _ in range(3)]
    for n, (which, offset) in enumerate(acts):
        fees.accrue(
            db_session,
            act(
                doctor,
                "TE2",
                dt.date(2025, 6, 1) + dt.timedelta(days=offset),
                f"x:{doctor.id}:{n}",
                patient_id=patients[which].id,
            ),
        )
    paid = db_session.execute(
        select(FeeEntry.patient_id, FeeEntry.act_on).where(FeeEntry.professional_id == doctor.id, FeeEntry.amount > 0)
    ).all()
    per_key = {}
    for patient_id, day in paid:
        per_key[(patient_id, day.year)] = per_key.get((patient_id, day.year), 0) + 1
    assert all(count <= 4 for count in per_key.values())


def test_sessions_booked_ahead_count_toward_the_share(db_session, territory, kine_program):
    """Each booking counts the sessions already planned: twelve booked ahead cannot each pass alone."""
    t = territory
    kine, program = kine_program
    declare_year(db_session, kine, "100")  # 240 € of télésoin allowed over the rolling year
    start = dt.datetime(2026, 11, 23, 9, tzinfo=dt.UTC)
    booked = 0
    with pytest.raises(RuleViolation, match="plafond de 20\u00a0%"):
        for n in range(20):  # 17.20 € each: the 14th would reach 240.80 €
            patient = factories.consenting_patient(db_session, t.cpts, recorded_by=t.coordinator)
            slot = factories.slot(db_session, program, start + dt.timedelta(hours=n))
            appointments.book(
                db_session,
                t.coordinator,
                slot=slot,
                patient=patient,
                place_kind=PlaceKind.HOME,
                telesoin=appointments.TelesoinAct(
                    act=TelesoinActCode.LIMB_OR_SPINE, coefficient=Decimal(8), last_in_person_contact_on=SEEN_ON
                ),
                now=NOW,
            )
            booked += 1
    assert booked == 13


def test_an_unused_override_reason_is_not_kept(db_session, territory, kine_program):
    t = territory
    _kine, program = kine_program
    appointment = book_telesoin(
        db_session,
        t,
        program,
        dt.datetime(2026, 11, 26, 9, tzinfo=dt.UTC),
        act=TelesoinActCode.LIMB_OR_SPINE,
        override_reason="au cas où",
    )
    assert appointment.remote_share_override_reason is None


def test_the_limit_is_compared_unrounded():
    share = fees.RemoteShare(Decimal("200.04"), Decimal("1000"), estimated=False)
    assert share.share == Decimal("0.2000") and share.is_over and share.level == "depasse"


def test_remote_dressing_month_is_the_paris_month(db_session, territory):
    """T11 on a month's last day: a session at 23:30 Paris on 30 November (22:30Z) counts in November, one
    at 00:30 Paris on 1 December (23:30Z on 30 November) in December."""
    t = territory
    nurse = factories.professional(db_session, t.cpts, Profession.NURSE)
    program = factories.program(db_session, t.cpts, telesoin=True, performer=nurse)
    dressing = {"act": "suivi_pansement", "last_in_person_dressing_on": dt.date(2026, 11, 1)}
    for day in (24, 25, 26):
        book_telesoin(db_session, t, program, dt.datetime(2026, 11, day, 9, tzinfo=dt.UTC), **dressing)
    book_telesoin(db_session, t, program, dt.datetime(2026, 11, 30, 22, 30, tzinfo=dt.UTC), **dressing)  # 4th
    book_telesoin(db_session, t, program, dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC), **dressing)  # December
    with pytest.raises(RuleViolation, match="Au plus 4"):
        book_telesoin(db_session, t, program, dt.datetime(2026, 11, 27, 9, tzinfo=dt.UTC), **dressing)
