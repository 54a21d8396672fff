"""The territory's indicators against a month played by hand (December 2026, Paris time): every figure below is
counted on paper from the rows `play_december` makes, on SQLite and PostgreSQL alike, with the acts at the edges
of the month and of the year (an act at 23:30 on 31 December, Paris time, is in 2026; one at 00:30 on 1 January,
which is still 2026 in UTC, is in 2027). P6: the number of queries does not depend on the data."""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

import pytest
from sqlalchemy import select

from hub.models import (
    Appointment,
    AppointmentKind,
    AppointmentState,
    Attendance,
    DeclaredActivity,
    Delivery,
    DeliveryState,
    FeeEntry,
    FeeStatus,
    IncidentKind,
    IncidentSeverity,
    PlaceKind,
    Profession,
    RecipientRole,
    SatisfactionSurvey,
    SessionIncident,
    Tariff,
    TeleexpertiseState,
)
from tests import ZONE, factories
from tests.factories import PARIS
from tests.queries import count_queries
from workflows import indicators
from workflows.indicators import Period, Scope

DONE, CANCELLED = AppointmentState.DONE, AppointmentState.CANCELLED


def paris(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=PARIS).astimezone(dt.UTC)


@dataclass
class Month:
    cardio: object  # the assisted program
    kine_program: object
    sessions: dict


def play_december(db, t) -> Month:
    """December 2026 of the territory: 9 sessions in the month (and one just after the year), referrals,
    reports and their deliveries, téléexpertises, fees, declared activity, surveys and incidents."""
    gp = factories.professional(db, t.cpts, Profession.GENERAL_PRACTITIONER)
    t.patient.attending_gp_id = gp.id
    orphan, other_orphan = (factories.patient(db, t.cpts, phone="0611111111") for _ in range(2))
    kine = factories.professional(db, t.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True)
    kine2 = factories.professional(db, t.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True)
    t.idel.does_telesoin = True
    t.other_idel.does_telesoin = True
    kine_program = factories.program(db, t.cpts, performer=kine, telesoin=True, name="Télésoin kiné")

    def assisted(name, starts_at, state, *, patient=None, **fields):
        return factories.appointment(
            db,
            patient_row=patient or t.patient,
            performer=t.cardiologist,
            accompanying=t.idel,
            created_by=t.coordinator,
            starts_at=starts_at,
            state=state,
            program_id=t.program.id,
            **fields,
        )

    def telesoin(starts_at, state, patient):
        return factories.appointment(
            db,
            patient_row=patient,
            performer=kine,
            accompanying=kine,
            created_by=t.coordinator,
            starts_at=starts_at,
            state=state,
            program_id=kine_program.id,
            kind=AppointmentKind.TELESOIN,
            place_kind=PlaceKind.HOME,
            accompanying_id=None,
            accompaniment_starts_at=None,
            accompaniment_ends_at=None,
        )

    s = {
        1: assisted(
            1, paris(2026, 12, 7, 14), DONE, created_at=paris(2026, 12, 1, 10), confirmed_at=paris(2026, 12, 1, 16)
        ),
        2: assisted(
            2, paris(2026, 12, 14, 14), DONE, created_at=paris(2026, 12, 2, 8), confirmed_at=paris(2026, 12, 3, 8)
        ),
        3: assisted(3, paris(2026, 12, 21, 14), CANCELLED, is_late_cancellation=False),
        4: assisted(4, paris(2026, 12, 28, 14), CANCELLED, is_late_cancellation=True),
        5: assisted(5, paris(2026, 12, 31, 23, 30), AppointmentState.DEGRADED, patient=orphan),
        6: assisted(6, paris(2026, 12, 15, 14), AppointmentState.NO_SHOW),
        7: assisted(7, paris(2027, 1, 1, 0, 30), DONE),  # 23:30 UTC on 31 December: in 2027
        8: assisted(
            8, paris(2026, 12, 1, 0, 15), DONE, created_at=paris(2026, 11, 20, 9), confirmed_at=paris(2026, 11, 20, 12)
        ),
        9: telesoin(paris(2026, 12, 8, 10), DONE, other_orphan),
        10: telesoin(paris(2026, 12, 9, 10), AppointmentState.PROPOSED, other_orphan),
    }
    # Referrals: sent 10 and 12 days before their session.
    for number, sent in ((1, paris(2026, 11, 27, 14)), (2, paris(2026, 12, 2, 14))):
        factories.referral(
            db,
            t.patient,
            author=factories.clinician(db, t.cpts, Profession.GENERAL_PRACTITIONER),
            appointment_id=s[number].id,
            submitted_at=sent,
        )
    # Reports: three deliveries due, one sent in time, one late, one still queued.
    for number, deliveries in ((1, ("in_time", "late")), (2, ("queued",))):
        report = factories.report(
            db, t.patient, author=t.cardiologist, created_by=t.coordinator, signed=True, appointment_row=s[number]
        )
        due = s[number].ends_at + dt.timedelta(days=2)
        for how in deliveries:
            message = factories.outbox_message(db, t.cpts)
            sent_at = {"in_time": due - dt.timedelta(hours=1), "late": due + dt.timedelta(hours=1)}.get(how)
            db.add(
                Delivery(
                    cpts_id=t.cpts.id,
                    report_id=report.id,
                    recipient_role=RecipientRole.ATTENDING_GP,
                    channel="mssante",
                    address="dr@exemple.mssante.fr",
                    outbox_message_id=message.id,
                    state=DeliveryState.SENT if sent_at else DeliveryState.QUEUED,
                    due_at=due,
                    sent_at=sent_at,
                )
            )
    # Téléexpertise: answered in 6 h and in 30 h, one expired; one sent on 1 January (Paris) is in 2027.
    consent = factories.consent(db, t.patient, recorded_by=t.coordinator)
    requester = factories.clinician(db, t.cpts, Profession.GENERAL_PRACTITIONER)
    for submitted, answered, state in (
        (paris(2026, 12, 3, 10), paris(2026, 12, 3, 16), TeleexpertiseState.ANSWERED),
        (paris(2026, 12, 10, 10), paris(2026, 12, 11, 16), TeleexpertiseState.CLOSED),
        (paris(2026, 12, 5, 10), None, TeleexpertiseState.EXPIRED),
        (paris(2027, 1, 1, 0, 30), None, TeleexpertiseState.SUBMITTED),
    ):
        factories.teleexpertise_request(
            db,
            t.patient,
            requester=requester,
            expert=t.cardiologist,
            consent_row=consent,
            state=state,
            submitted_at=submitted,
            answered_at=answered,
        )
    # Fees: TLS 2 × 10 €, TMI 40 €, TMK 150 € + 300 €; a cancelled one and one of 2027 left out.
    tariffs = {row.code: row.id for row in db.scalars(select(Tariff))}
    for professional, code, day, amount, remote, appointment, status in (
        (t.idel, "TLS", dt.date(2026, 12, 7), "10", False, s[1], FeeStatus.ACCRUED),
        (t.idel, "TLS", dt.date(2026, 12, 14), "10", False, s[2], FeeStatus.DECLARED),
        (t.idel, "TMI", dt.date(2026, 12, 10), "40", True, None, FeeStatus.PAID),
        (kine, "TMK", dt.date(2026, 12, 8), "150", True, s[9], FeeStatus.ACCRUED),
        (kine2, "TMK", dt.date(2026, 12, 9), "300", True, None, FeeStatus.ACCRUED),
        (t.idel, "TLD", dt.date(2026, 12, 15), "15", False, s[6], FeeStatus.CANCELLED),
        (t.idel, "TLS", dt.date(2027, 1, 1), "10", False, s[7], FeeStatus.ACCRUED),
    ):
        db.add(
            FeeEntry(
                cpts_id=t.cpts.id,
                professional_id=professional.id,
                tariff_id=tariffs[code],
                code=code,
                act_on=day,
                amount=Decimal(amount),
                is_remote_care=remote,
                status=status,
                appointment_id=appointment.id if appointment else None,
                source_key=f"indicators:{code}:{day}:{professional.id}",
            )
        )
    # Declared December activity: 1000 € each, but the other IDEL declared nothing.
    for professional in (t.idel, kine, kine2):
        db.add(DeclaredActivity(professional_id=professional.id, year=2026, month=12, amount=Decimal(1000)))
    # Surveys: two answers (one satisfied and would do it again, one neither), one unanswered.
    for number, answers in ((1, (4, 4, 4, True)), (2, (2, 3, 3, False)), (9, None)):
        values = dict(zip(("ease", "av_quality", "listened", "would_again"), answers or (), strict=False))
        db.add(
            SatisfactionSurvey(
                cpts_id=t.cpts.id,
                appointment_id=s[number].id,
                token_hash=f"{t.cpts.id:032d}{number:032d}",
                channel="sms",
                expires_at=s[number].ends_at + dt.timedelta(days=14),
                answered_at=s[number].ends_at + dt.timedelta(hours=2) if answers else None,
                **values,
            )
        )
    # Incidents: two technical ones on session 1, a fall back to phone on 5, an EI on 2, an EIG on 9; one of 2027.
    for number, kind, severity in (
        (1, IncidentKind.CONNECTION_LOST, IncidentSeverity.MINOR),
        (1, IncidentKind.EQUIPMENT_FAILURE, IncidentSeverity.MINOR),
        (5, IncidentKind.PHONE_FALLBACK, IncidentSeverity.MODERATE),
        (2, IncidentKind.ADVERSE_EVENT, IncidentSeverity.MODERATE),
        (9, IncidentKind.SERIOUS_ADVERSE_EVENT, IncidentSeverity.SEVERE),
        (7, IncidentKind.CONNECTION_LOST, IncidentSeverity.MINOR),
    ):
        db.add(
            SessionIncident(
                cpts_id=t.cpts.id,
                appointment_id=s[number].id,
                kind=kind,
                severity=severity,
                description="Incident",
                recorded_by_user_id=t.idel_user.id,
                recorded_at=s[number].starts_at,
            )
        )
    db.flush()
    return Month(cardio=t.program, kine_program=kine_program, sessions=s)


DECEMBER = Period(2026, 12, ZONE)
SESSIONS = ("Programmées", "Réalisées", "Annulées à temps", "Annulées tardivement", "Patient absent", "Mode dégradé")


def by_key(found: list) -> dict:
    return {indicator.key: indicator for indicator in found}


def row(indicator, label) -> tuple:
    return next(r for r in indicator.rows if r[0] == label)[1:]


@pytest.fixture
def december(db_session, territory):
    return play_december(db_session, territory)


def test_every_indicator_of_the_month_against_hand_counted_values(db_session, territory, december, monkeypatch):
    # Two answers: their shares and means are hidden below five (tested apart); here, their hand-counted values.
    monkeypatch.setattr(indicators, "MIN_ANSWERS_SHOWN", 2)
    found = by_key(indicators.compute(db_session, Scope(territory.cpts.id, DECEMBER)))
    assert found["seances_par_mois"].columns == ("Mois", *SESSIONS)
    assert found["seances_par_mois"].rows == (("décembre", 9, 4, 1, 1, 1, 1), ("Toute la CPTS", 9, 4, 1, 1, 1, 1))
    assert found["seances_par_program"].rows == (
        ("Téléconsultation cardiologie CH Périgueux", 7, 3, 1, 1, 1, 1),
        ("Télésoin kiné", 2, 1, 0, 0, 0, 0),
        ("Toute la CPTS", 9, 4, 1, 1, 1, 1),
    )
    assert found["seances_par_profession"].rows == (
        ("Masseur-kinésithérapeute", 2, 1, 0, 0, 0, 0),
        ("Médecin spécialiste", 7, 3, 1, 1, 1, 1),
        ("Toute la CPTS", 9, 4, 1, 1, 1, 1),
    )
    # Confirmation: 6 h, 24 h and 3 h; referral → appointment: 10 and 12 days; deliveries: 1 in time of 3.
    assert found["delais"].rows == (
        ("Délai de confirmation des visites (heures)", 3, 11.0),
        ("Délai adressage → rendez-vous (jours)", 2, 11.0),
        ("Comptes rendus envoyés dans leur délai (%)", 3, 33.3),
    )
    assert found["teleexpertise"].rows == (
        ("Demandes", 3),
        ("Répondues", 2),
        ("Délai moyen de réponse (heures)", 18.0),
        ("Expirées", 1),
    )
    # Shares: IDEL 40/1000 = 4 %, the other IDEL undeclared; kinés 150/1000 = 15 % and 300/1000 = 30 %.
    assert found["part_telesoin"].rows == (
        ("Moins de 5 %", 1, 0),
        ("De 5 à 10 %", 0, 0),
        ("De 10 à 15 %", 0, 0),
        ("De 15 à 20 %", 0, 1),
        ("Plus de 20 %", 0, 1),
        ("Activité non déclarée", 1, 0),
        ("À 15 % ou plus", 0, 2),
    )
    assert found["honoraires_par_code"].rows == (
        ("TLS", 2, Decimal("20.00")),
        ("TMI", 1, Decimal("40.00")),
        ("TMK", 2, Decimal("450.00")),
        ("Toute la CPTS", 5, Decimal("510.00")),
    )
    assert found["satisfaction"].rows == (
        ("Enquêtes envoyées", 3),
        ("Réponses", 2),
        ("Taux de réponse (%)", 66.7),
        ("Patients satisfaits (%)", 50.0),
        ("Referaient une séance à distance (%)", 50.0),
        ("Facilité (sur 4)", 3.0),
        ("Image et son (sur 4)", 3.5),
        ("Sentiment d'être écouté (sur 4)", 3.5),
    )
    # Held remote sessions: 1, 2, 5 (by phone), 8 and 9.
    assert found["incidents"].rows == (
        ("Séances à distance tenues", 5),
        ("Avec incident technique", 2),
        ("Taux d'incident technique (%)", 40.0),
        ("Avec événement indésirable", 2),
        ("Taux d'événement indésirable (%)", 40.0),
        ("Connexions perdues", 1),
        ("Bascules au téléphone", 1),
        ("Pannes de matériel", 1),
        ("EI", 1),
        ("EIG", 1),
    )
    assert found["patients_sans_medecin_traitant"].rows == (
        ("Patients vus", 3),
        ("Sans médecin traitant", 2),
        ("Part sans médecin traitant (%)", 66.7),
    )
    assert all(indicator.how.endswith(".") and len(indicator.how) > 80 for indicator in found.values())


def test_the_year_is_the_paris_calendar_year(db_session, territory, december):
    year = by_key(indicators.compute(db_session, Scope(territory.cpts.id, Period(2026, None, ZONE))))
    months = year["seances_par_mois"].rows
    assert len(months) == 13 and months[10] == ("novembre", 0, 0, 0, 0, 0, 0)
    assert months[11] == ("décembre", 9, 4, 1, 1, 1, 1) and months[12] == ("Toute la CPTS", 9, 4, 1, 1, 1, 1)
    following = by_key(indicators.compute(db_session, Scope(territory.cpts.id, Period(2027, None, ZONE))))
    assert following["seances_par_mois"].rows[0] == ("janvier", 1, 1, 0, 0, 0, 0)
    assert row(following["teleexpertise"], "Demandes") == (1,)
    assert row(following["honoraires_par_code"], "TLS") == (1, Decimal("10.00"))
    assert row(following["incidents"], "Connexions perdues") == (1,)
    # Over the year the December declaration stands for each month: 150 € and 300 € of 12 × 1 000 € are under 5 %.
    assert row(year["part_telesoin"], "Moins de 5 %") == (1, 2)


def test_with_fewer_than_five_answers_no_share_or_mean_is_shown(db_session, territory, december):
    found = by_key(indicators.compute(db_session, Scope(territory.cpts.id, DECEMBER)))
    assert found["satisfaction"].rows == (
        ("Enquêtes envoyées", 3),
        ("Réponses", 2),
        ("Taux de réponse (%)", 66.7),
        ("Patients satisfaits (%)", None),
        ("Referaient une séance à distance (%)", None),
        ("Facilité (sur 4)", None),
        ("Image et son (sur 4)", None),
        ("Sentiment d'être écouté (sur 4)", None),
    )


def test_a_program_filter_keeps_its_sessions_only(db_session, territory, december):
    scope = Scope(territory.cpts.id, DECEMBER, program_id=december.kine_program.id)
    found = by_key(indicators.compute(db_session, scope))
    assert found["seances_par_mois"].rows[-1] == ("Toute la CPTS", 2, 1, 0, 0, 0, 0)
    assert found["honoraires_par_code"].rows == (("TMK", 1, Decimal("150.00")), ("Toute la CPTS", 1, Decimal("150.00")))
    assert row(found["satisfaction"], "Enquêtes envoyées") == (1,)
    assert row(found["incidents"], "EIG") == (1,) and row(found["incidents"], "EI") == (0,)
    assert row(found["teleexpertise"], "Demandes") == (3,), "a téléexpertise belongs to no program"


def test_p6_the_query_count_does_not_depend_on_the_data(db_session, engine, territory):
    scope = Scope(territory.cpts.id, DECEMBER)
    db_session.flush()
    with count_queries(engine) as empty:
        indicators.compute(db_session, scope)
    play_december(db_session, territory)
    db_session.flush()
    with count_queries(engine) as full:
        indicators.compute(db_session, scope)
    assert len(full) == len(empty) == 17


def _note_attendance(db, cpts_id: int, user_id: int) -> None:
    """Attendance on the CPTS's held or missed December sessions: accompanying professional absent on the first."""
    missed = (AppointmentState.DONE, AppointmentState.DEGRADED, AppointmentState.NO_SHOW)
    rows = db.scalars(
        select(Appointment)
        .where(Appointment.cpts_id == cpts_id, Appointment.state.in_(missed))
        .order_by(Appointment.id)
    ).all()
    for number, appointment in enumerate(rows):
        db.add(
            Attendance(
                cpts_id=cpts_id,
                appointment_id=appointment.id,
                is_patient_present=appointment.state is not AppointmentState.NO_SHOW,
                is_accompanying_present=number != 0,
                is_performer_present=True,
                recorded_by_user_id=user_id,
            )
        )
    db.flush()


def test_p6_a_neighbour_cpts_changes_no_figure(db_session, territory):
    """The surveys, reports and attendances are joined to the sessions within the CPTS (their own cpts_id, for the
    plans' sake): the neighbour's rows must count neither for nor against this CPTS, and its own are all counted."""
    play_december(db_session, territory)
    _note_attendance(db_session, territory.cpts.id, territory.coordinator.id)
    alone = by_key(indicators.compute(db_session, Scope(territory.cpts.id, DECEMBER)))
    assert row(alone["presences"], "Accompagnant·e absent·e") == (1,)
    assert row(alone["satisfaction"], "Enquêtes envoyées") == (3,)
    assert alone["delais"].rows[2][1] == 3, "three deliveries due"
    neighbour = factories.territory(db_session, factories.cpts(db_session, "CPTS voisine"))
    play_december(db_session, neighbour)
    _note_attendance(db_session, neighbour.cpts.id, neighbour.coordinator.id)
    assert by_key(indicators.compute(db_session, Scope(territory.cpts.id, DECEMBER))) == alone
    assert by_key(indicators.compute(db_session, Scope(neighbour.cpts.id, DECEMBER))) == alone
