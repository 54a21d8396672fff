import csv
import datetime as dt
import io
import itertools
import re
from decimal import Decimal

import pytest
from sqlalchemy import select, true

from hub.errors import RuleViolation, ValidationFailed
from hub.models import DeclaredActivity, FeeEntry, FeeStatus, Profession, Role, Tariff
from hub.services import statements, tariffs
from hub.services.statements import Period
from tests import ZONE, factories
from tests.pdfs import pdf_text
from tests.queries import count_queries
from workflows import fees
from workflows import statements as shares

_keys = itertools.count(1)
TODAY = dt.date(2026, 11, 30)
MARCH = dt.date(2027, 3, 1)


def bulk_ledger(db_session, cpts, *, professionals: int, entries_each: int, year: int = 2026):
    """IDELs with accompaniments and télésoin acts spread over the year, inserted as rows (no workflow)."""
    tll = fees.tariff_on(db_session, "TLL", dt.date(year, 6, 1))
    tmi = fees.tariff_on(db_session, "TMI", dt.date(year, 6, 1))
    patient = factories.patient(db_session, cpts)
    rows = []
    for _ in range(professionals):
        nurse = factories.professional(db_session, cpts, Profession.NURSE)
        for n in range(entries_each):
            tariff, remote = (tmi, True) if n % 3 == 0 else (tll, False)
            capped = n == entries_each - 1
            rows.append(
                FeeEntry(
                    cpts_id=cpts.id,
                    professional_id=nurse.id,
                    patient_id=patient.id,
                    tariff_id=tariff.id,
                    code=tariff.code,
                    act_on=dt.date(year, 1 + n % 12, 1 + n % 28),
                    amount=Decimal(0) if capped else tariff.amount * (8 if remote else 1),
                    coefficient=Decimal(1) if not remote else Decimal(8),
                    is_remote_care=remote,
                    note="Plafond atteint : acte enregistré sans rémunération." if capped else None,
                    source_key=f"bulk:{next(_keys)}",
                )
            )
        for month in range(1, 7):
            rows.append(DeclaredActivity(professional_id=nurse.id, year=year, month=month, amount=Decimal("800")))
    db_session.add_all(rows)
    db_session.flush()
    return nurse


@pytest.fixture
def nurse(db_session, cpts):
    return factories.professional(db_session, cpts, Profession.NURSE, last_name="Delmas", first_name="Sophie")


@pytest.fixture
def nurse_user(db_session, cpts, nurse):
    return factories.user(db_session, cpts, Role.PROFESSIONAL, professional_row=nurse)


@pytest.fixture
def cardiologist(db_session, cpts):
    return factories.professional(db_session, cpts, Profession.SPECIALIST)


# --- the statement ----------------------------------------------------------------------------------------


def test_a_month_statement_lists_the_acts_with_initials_and_prescriber(db_session, cpts, nurse, cardiologist):
    patient = factories.patient(db_session, cpts, birth_name="LACOSTE", first_birth_given_name="HÉLÈNE")
    first = factories.fee_entry(
        db_session, nurse, "TLL", dt.date(2026, 11, 23), patient=patient, prescriber_rpps=cardiologist.rpps
    )
    factories.fee_entry(
        db_session, nurse, "TLD", dt.date(2026, 11, 23), patient=patient, prescriber_rpps=cardiologist.rpps
    )
    factories.fee_entry(db_session, nurse, "TLS", dt.date(2026, 10, 31), patient=patient)  # another month
    factories.fee_entry(db_session, nurse, "TLL", dt.date(2026, 12, 1), patient=patient)  # another month
    cancelled = factories.fee_entry(db_session, nurse, "TLL", dt.date(2026, 11, 24), patient=patient)
    cancelled.status, cancelled.cancel_reason = FeeStatus.CANCELLED, "Saisie en double"
    db_session.flush()

    result = statements.statement(db_session, nurse, Period(2026, 11))

    assert [(line.code, line.act_on.day) for line in result.lines] == [("TLL", 23), ("TLD", 23), ("TLL", 24)]
    line = result.lines[0]
    assert (line.id, line.amount, line.patient_initials, line.prescriber_rpps, line.prescriber_name) == (
        first.id,
        Decimal("12.00"),
        "H.L.",
        cardiologist.rpps,
        cardiologist.full_name,
    )
    assert "Accompagnement" in line.label or line.label
    assert result.total == Decimal("27.00"), "the cancelled act is outside the total"
    assert [(t.key, t.count, t.amount) for t in result.by_code] == [
        ("TLD", 1, Decimal("15.00")),
        ("TLL", 1, Decimal("12.00")),
    ]
    assert {t.label: t.count for t in result.by_status} == {"Acquis": 2, "Annulé": 1}
    assert result.lines[2].note == "Saisie en double"
    assert result.cpts_name == cpts.name


def test_a_year_statement_holds_the_act_of_31_december_at_2330(db_session, cpts, nurse):
    """T11: the act's date is its Paris date; 23:30 on 31 December belongs to that year."""
    late = fees.local_day(dt.datetime(2026, 12, 31, 22, 30, tzinfo=dt.UTC), ZONE)
    next_year = fees.local_day(dt.datetime(2026, 12, 31, 23, 30, tzinfo=dt.UTC), ZONE)
    factories.fee_entry(db_session, nurse, "TLL", late)
    factories.fee_entry(db_session, nurse, "TLL", next_year)
    assert [line.act_on for line in statements.statement(db_session, nurse, Period(2026)).lines] == [late]
    assert [line.act_on for line in statements.statement(db_session, nurse, Period(2026, 12)).lines] == [late]
    assert [line.act_on for line in statements.statement(db_session, nurse, Period(2027, 1)).lines] == [next_year]


@pytest.mark.parametrize(
    ("period", "first", "last", "label"),
    [
        (Period(2026, 2), dt.date(2026, 2, 1), dt.date(2026, 2, 28), "février 2026"),
        (Period(2028, 2), dt.date(2028, 2, 1), dt.date(2028, 2, 29), "février 2028"),
        (Period(2026, 12), dt.date(2026, 12, 1), dt.date(2026, 12, 31), "décembre 2026"),
        (Period(2026), dt.date(2026, 1, 1), dt.date(2026, 12, 31), "année 2026"),
    ],
)
def test_periods_are_calendar_months_and_years(period, first, last, label):
    assert (period.first, period.last, period.label) == (first, last, label)


def test_the_csv_reads_back_as_a_billing_software_would(db_session, cpts, nurse, cardiologist):
    patient = factories.patient(db_session, cpts, birth_name="LACOSTE", first_birth_given_name="HÉLÈNE")
    factories.fee_entry(
        db_session, nurse, "TLL", dt.date(2026, 11, 23), patient=patient, prescriber_rpps=cardiologist.rpps
    )
    factories.fee_entry(
        db_session, nurse, "TMI", dt.date(2026, 11, 25), patient=patient, coefficient=Decimal("8.1"), remote=True
    )
    capped = factories.fee_entry(db_session, nurse, "TLD", dt.date(2026, 11, 26), patient=patient)
    capped.amount, capped.note = Decimal(0), "=HYPERLINK(1)"  # free text never becomes a formula
    db_session.flush()

    data = statements.statement_csv(statements.statement(db_session, nurse, Period(2026, 11)))

    assert data.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM"
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig")), delimiter=";"))
    assert rows[0] == list(statements.CSV_COLUMNS)
    assert rows[0] == [
        "date",
        "code",
        "coefficient",
        "montant",
        "statut",
        "patient (initiales)",
        "prescripteur RPPS",
        "note",
    ]
    assert rows[1] == ["23/11/2026", "TLL", "1,00", "12,00", "Acquis", "H.L.", cardiologist.rpps, ""]
    assert rows[2][:5] == ["25/11/2026", "TMI", "8,10", "25,52", "Acquis"]
    assert rows[3][7] == "'=HYPERLINK(1)"
    assert "LACOSTE" not in data.decode("utf-8-sig") and "HÉLÈNE" not in data.decode("utf-8-sig")


def pdf_pages(data: bytes) -> int:
    """The page count of the page tree, checked against the page objects themselves."""
    count = int(re.search(rb"/Count (\d+)", data).group(1))
    assert len(re.findall(rb"/Type /Page\b(?!s)", data)) == count
    return count


def test_the_pdf_is_a_readable_pdf(db_session, cpts, nurse):
    patient = factories.patient(db_session, cpts)
    for n in range(60):  # more than a page
        factories.fee_entry(db_session, nurse, "TLL", dt.date(2026, 11, 1 + n % 30), patient=patient)
    document = statements.statement(db_session, nurse, Period(2026, 11))

    data = statements.statement_pdf(document, generated_on=TODAY)

    assert data.startswith(b"%PDF-")
    assert pdf_pages(data) >= 2
    text = pdf_text(data)
    assert "novembre 2026" in text and "TLL" in text and "Sophie DELMAS" in text
    assert "720,00" in text, "the total of 60 acts at 12 €"


def test_an_empty_statement_still_makes_a_pdf_and_a_csv(db_session, nurse):
    document = statements.statement(db_session, nurse, Period(2026, 3))
    assert pdf_pages(statements.statement_pdf(document, generated_on=TODAY)) == 1
    assert statements.statement_csv(document).decode("utf-8-sig").count("\r\n") == 1


# --- the CPTS ---------------------------------------------------------------------------------------------


def test_cpts_totals_by_profession_code_and_professional(db_session, cpts, nurse, cardiologist):
    factories.fee_entry(db_session, nurse, "TLL", dt.date(2026, 11, 2))
    factories.fee_entry(db_session, nurse, "TLD", dt.date(2026, 11, 3))
    factories.fee_entry(db_session, cardiologist, "TC", dt.date(2026, 11, 2))
    factories.fee_entry(db_session, cardiologist, "TC", dt.date(2026, 11, 3))
    foreign = factories.professional(db_session, factories.cpts(db_session), Profession.NURSE)
    factories.fee_entry(db_session, foreign, "TLL", dt.date(2026, 11, 2))
    factories.fee_entry(db_session, nurse, "TLL", dt.date(2026, 12, 1))  # another month
    factories.fee_entry(db_session, nurse, "TLS", dt.date(2026, 11, 4)).status = FeeStatus.CANCELLED
    db_session.flush()

    totals = statements.cpts_totals(db_session, cpts.id, Period(2026, 11))
    by_profession, by_code = totals.by_profession, totals.by_code

    assert [(t.label, t.count, t.amount) for t in by_profession] == [
        ("Infirmier·e", 2, Decimal("27.00")),
        ("Médecin spécialiste", 2, Decimal("50.00")),
    ]
    assert [(t.key, t.count, t.amount) for t in by_code] == [
        ("TC", 2, Decimal("50.00")),
        ("TLD", 1, Decimal("15.00")),
        ("TLL", 1, Decimal("12.00")),
    ]
    assert [(t.professional_id, t.name, t.count, t.amount) for t in totals.by_professional] == [
        (nurse.id, "Sophie DELMAS", 2, Decimal("27.00")),
        (cardiologist.id, cardiologist.full_name, 2, Decimal("50.00")),
    ]


def test_caps_reached_are_the_acts_recorded_at_zero_by_a_cap(db_session, cpts):
    """The notes of workflows.fees: a cap starts with CAP_NOTE_PREFIX, the pharmacist's blocks do not."""
    gp = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    pharmacist = factories.professional(db_session, cpts, Profession.PHARMACIST)
    patient = factories.patient(db_session, cpts)
    for n in range(6):
        factories.fee_entry(db_session, gp, "RQD", dt.date(2026, 11, 1 + n), patient=patient)
    for n in range(3):
        factories.fee_entry(db_session, pharmacist, "TLM", dt.date(2026, 11, 1 + n))

    caps = statements.cpts_totals(db_session, cpts.id, Period(2026, 11)).caps

    assert [(cap.professional_id, cap.code, cap.count, cap.last_on) for cap in caps] == [
        (gp.id, "RQD", 2, dt.date(2026, 11, 6))
    ]
    gp_statement = statements.statement(db_session, gp, Period(2026, 11))
    assert len(gp_statement.capped) == 2 and gp_statement.capped[0].note.startswith(statements.CAP_NOTE_PREFIX)
    assert statements.statement(db_session, pharmacist, Period(2026, 11)).capped == []


def test_a_code_priced_by_two_versions_in_the_period_is_one_line(db_session, cpts, admin):
    gp = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    patient = factories.patient(db_session, cpts)
    for month in (1, 2, 3, 4, 5):  # four paid, the fifth capped: all at the first version
        factories.fee_entry(db_session, gp, "RQD", dt.date(2026, month, 10), patient=patient)
    tariffs.add_version(
        db_session, admin, code="RQD", label="Requérant", amount=Decimal(11), effective_from=dt.date(2026, 7, 1)
    )
    factories.fee_entry(db_session, gp, "RQD", dt.date(2026, 8, 10), patient=patient)  # capped, at the second version
    factories.fee_entry(
        db_session, gp, "RQD", dt.date(2026, 8, 11), patient=factories.patient(db_session, cpts)
    )  # 11 €

    totals = statements.cpts_totals(db_session, cpts.id, Period(2026))

    assert [(t.key, t.count, t.amount) for t in totals.by_code] == [("RQD", 7, Decimal("51.00"))]
    assert [(cap.code, cap.count, cap.last_on) for cap in totals.caps] == [("RQD", 2, dt.date(2026, 8, 10))]
    assert [(t.count, t.amount) for t in totals.by_professional] == [(7, Decimal("51.00"))]


def test_the_pharmacist_yearly_cap_note_is_a_cap(db_session, cpts):
    pharmacist = factories.professional(db_session, cpts, Profession.PHARMACIST)
    for n in range(155):
        factories.fee_entry(db_session, pharmacist, "TLM", dt.date(2026, 1, 1) + dt.timedelta(days=n))
    capped = statements.statement(db_session, pharmacist, Period(2026)).capped
    assert [line.act_on for line in capped] == [dt.date(2026, 1, 1) + dt.timedelta(days=154)]


def declare(db_session, professional, months, amount):
    for year, month in months:
        db_session.add(
            DeclaredActivity(professional_id=professional.id, year=year, month=month, amount=Decimal(amount))
        )
    db_session.flush()


def test_batched_shares_equal_the_one_by_one_share(db_session, cpts):
    window = shares.ShareWindow(dt.date(2025, 12, 1), dt.date(2026, 11, 30))
    whole_year = shares.ShareWindow(dt.date(2025, 12, 1), dt.date(2026, 11, 30)).months
    undeclared, partial, declared, idle = (factories.professional(db_session, cpts, Profession.NURSE) for _ in range(4))
    kine = factories.professional(db_session, cpts, Profession.PHYSIOTHERAPIST)
    declare(db_session, partial, whole_year[:5], "900")
    declare(db_session, declared, whole_year, "1000")
    declare(db_session, kine, [(2026, 10)], "3000")
    declare(db_session, kine, [(2024, 10)], "99999")  # outside the window
    for professional in (undeclared, partial, declared, kine):
        for n in range(5):
            factories.fee_entry(
                db_session, professional, "TMI", dt.date(2026, 1 + n, 3), remote=True, coefficient=Decimal(8)
            )
        factories.fee_entry(db_session, professional, "TLL", dt.date(2026, 3, 3))  # an accompaniment: not counted
    factories.fee_entry(db_session, declared, "TMI", dt.date(2025, 11, 30), remote=True)  # before the window
    cancelled = factories.fee_entry(db_session, declared, "TMI", dt.date(2026, 6, 3), remote=True)
    cancelled.status = FeeStatus.CANCELLED
    db_session.flush()
    ids = [p.id for p in (undeclared, partial, declared, idle, kine)]

    batched = shares.remote_shares(db_session, ids, window)

    for professional_id in ids:
        one = fees.remote_share(db_session, professional_id, first=window.first, last=window.last)
        assert batched[professional_id] == one, professional_id
    assert batched[declared.id].estimated is False
    assert batched[undeclared.id].level == "inconnu" and batched[partial.id].estimated


def test_cpts_overview_watches_the_professionals_near_or_over_the_share(db_session, cpts):
    near, over, fine = (factories.professional(db_session, cpts, Profession.NURSE) for _ in range(3))
    kine = factories.professional(db_session, cpts, Profession.PHYSIOTHERAPIST)
    months = shares.ShareWindow(dt.date(2025, 12, 1), dt.date(2026, 11, 30)).months
    for professional in (near, over, fine, kine):
        declare(db_session, professional, months, "100")  # 1,200 € a year: 15 % is 180 €, 20 % is 240 €
    for professional, acts in ((near, 8), (over, 10), (fine, 2), (kine, 0)):
        for n in range(acts):  # 25.20 € each
            factories.fee_entry(
                db_session, professional, "TMI", dt.date(2026, 6, 1 + n), remote=True, coefficient=Decimal(8)
            )

    overview = shares.cpts_overview(db_session, cpts.id, Period(2026), today=TODAY)

    assert [(row.professional_id, row.share.level) for row in overview.watched] == [
        (over.id, "depasse"),
        (near.id, "alerte"),
    ]
    assert overview.share_count == 4 and overview.window.first == dt.date(2025, 12, 1)
    assert overview.act_count == 20 and overview.total == Decimal("504.00")
    assert {(row.professional_id, row.count) for row in overview.by_professional} == {
        (near.id, 8),
        (over.id, 10),
        (fine.id, 2),
    }


# --- constant query counts (P6) ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [3, 30])
def test_statement_and_overview_query_counts_do_not_grow_with_the_data(db_session, engine, cpts, size):
    nurse = bulk_ledger(db_session, cpts, professionals=size, entries_each=size)
    window = shares.share_window(today=TODAY)

    with count_queries(engine) as statement_queries:
        document = statements.statement(db_session, nurse, Period(2026))
        statements.statement_csv(document)
        shares.professional_share(db_session, nurse, window)
    with count_queries(engine) as overview_queries:
        overview = shares.cpts_overview(db_session, cpts.id, Period(2026), today=TODAY)
    with count_queries(engine) as list_queries:
        lines, total = statements.list_fees(db_session, true(), cpts_id=cpts.id, page=2, per_page=4)

    assert len(document.lines) == size and overview.share_count == size and total == size * size
    assert overview.caps and len(lines) == 4
    # statement (1) + CPTS name (1) + share (2); overview (4); a page of the list (2): at 3 and at 30 alike.
    assert (len(statement_queries), len(overview_queries), len(list_queries)) == (4, 4, 2)


# --- tariffs ----------------------------------------------------------------------------------------------


def versions(db_session, code):
    return db_session.execute(
        select(Tariff.amount, Tariff.effective_from, Tariff.effective_until)
        .where(Tariff.code == code)
        .order_by(Tariff.effective_from)
    ).all()


def test_a_new_version_closes_the_open_one_the_day_before(db_session, admin):
    ((_amount, shipped_from, _until),) = versions(db_session, "TLL")
    new = tariffs.add_version(
        db_session, admin, code="TLL", label="Accompagnement, lieu dédié", amount=Decimal(13), effective_from=MARCH
    )
    assert versions(db_session, "TLL") == [
        (Decimal("12.00"), shipped_from, dt.date(2027, 2, 28)),
        (Decimal("13.00"), MARCH, None),
    ]
    assert fees.tariff_on(db_session, "TLL", dt.date(2027, 2, 28)).amount == Decimal("12.00")
    assert fees.tariff_on(db_session, "TLL", dt.date(2027, 3, 1)).id == new.id
    assert new.unit is fees.TariffUnit.ACT


def test_rule_parameters_carry_over_and_a_new_code_starts_plain(db_session, admin):
    tlm = tariffs.add_version(
        db_session, admin, code="TLM", label="Assistance", amount=Decimal("30"), effective_from=dt.date(2027, 1, 1)
    )
    assert (tlm.block_size, tlm.yearly_cap_amount) == (5, Decimal("750.00"))
    new = tariffs.add_version(
        db_session, admin, code="TXX", label="Nouvel acte", amount=Decimal("5"), effective_from=dt.date(2027, 1, 1)
    )
    assert (new.unit, new.block_size, new.yearly_cap_per_patient, new.effective_until) == (
        fees.TariffUnit.ACT,
        None,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("effective_from", "message"),
    [
        (dt.date(2026, 1, 1), "doit commencer après"),  # the start of the version in force: history
        (dt.date(2025, 6, 1), "doit commencer après"),  # before it
    ],
)
def test_a_version_that_overlaps_history_is_refused(db_session, admin, effective_from, message):
    before = versions(db_session, "TE2")
    with pytest.raises(ValidationFailed) as refused:
        tariffs.add_version(
            db_session, admin, code="TE2", label="Téléexpertise", amount=Decimal(25), effective_from=effective_from
        )
    assert message in refused.value.errors["effective_from"]
    assert versions(db_session, "TE2") == before


def test_a_closed_version_leaves_room_only_after_its_end(db_session, admin):
    tariffs.add_version(
        db_session, admin, code="TXY", label="Acte", amount=Decimal(5), effective_from=dt.date(2027, 1, 1)
    )
    db_session.execute(select(Tariff).where(Tariff.code == "TXY")).scalar_one().effective_until = dt.date(2027, 6, 30)
    with pytest.raises(ValidationFailed) as refused:
        tariffs.add_version(
            db_session, admin, code="TXY", label="Acte", amount=Decimal(6), effective_from=dt.date(2027, 6, 30)
        )
    assert "chevaucherait" in refused.value.errors["effective_from"]
    after_gap = tariffs.add_version(
        db_session, admin, code="TXY", label="Acte", amount=Decimal(6), effective_from=dt.date(2027, 9, 1)
    )
    assert after_gap.effective_until is None


def test_acts_already_valued_are_not_repriced(db_session, cpts, admin, nurse):
    factories.fee_entry(db_session, nurse, "TLD", dt.date(2026, 11, 23))
    with pytest.raises(ValidationFailed) as refused:
        tariffs.add_version(
            db_session, admin, code="TLD", label="À domicile", amount=Decimal(16), effective_from=dt.date(2026, 11, 1)
        )
    assert "déjà valorisés" in refused.value.errors["effective_from"]
    assert tariffs.add_version(
        db_session, admin, code="TLD", label="À domicile", amount=Decimal(16), effective_from=dt.date(2026, 11, 24)
    ).amount == Decimal(16)


# --- declared activity ------------------------------------------------------------------------------------


def test_activity_csv_with_header_bom_and_decimal_comma(db_session, nurse, nurse_user):
    content = "année;mois;montant\r\n2026;9;4 250,50\r\n2026;10;3900\r\n\r\n".encode("utf-8-sig")
    rows = shares.import_activity(db_session, nurse_user, nurse, content, today=TODAY)
    assert [(row.year, row.month, row.amount, row.source) for row in rows] == [
        (2026, 9, Decimal("4250.50"), "imported"),
        (2026, 10, Decimal("3900.00"), "imported"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"2026;13;100\n", "ligne 1 : mois invalide"),
        (b"2026;9;-5\n2026;10;abc\n", "ligne 1 : montant invalide ; ligne 2 : montant invalide"),
        (b"2026;9;100\n2026;9;200\n", "ligne 2 : ce mois figure déjà"),
        (b"2026;9\n", "trois colonnes"),
        (b"annee;mois;montant\n", "aucune ligne"),
        (b"\x00\x01PK", "pas un fichier texte"),
        (b"2027;1;100\n", "pas encore commencé"),
    ],
)
def test_a_wrong_activity_csv_is_refused_whole(db_session, nurse, nurse_user, content, message):
    db_session.add(DeclaredActivity(professional_id=nurse.id, year=2026, month=9, amount=Decimal(1)))
    db_session.flush()
    with pytest.raises(ValidationFailed) as refused:
        shares.import_activity(db_session, nurse_user, nurse, content, today=TODAY)
    assert message in refused.value.errors["file"]
    rows = db_session.scalars(select(DeclaredActivity).where(DeclaredActivity.professional_id == nurse.id)).all()
    assert [(row.month, row.amount) for row in rows] == [(9, Decimal("1.00"))]


def test_only_idels_and_kines_declare_and_not_a_month_to_come(db_session, cpts, nurse, nurse_user):
    gp = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER)
    with pytest.raises(RuleViolation, match="infirmier"):
        shares.declare_month(db_session, nurse_user, gp, year=2026, month=10, amount=Decimal(1), today=TODAY)
    with pytest.raises(ValidationFailed):
        shares.declare_month(db_session, nurse_user, nurse, year=2026, month=12, amount=Decimal(1), today=TODAY)
    row = shares.declare_month(db_session, nurse_user, nurse, year=2026, month=11, amount=Decimal(5), today=TODAY)
    assert (row.amount, row.source) == (Decimal(5), "declared")


@pytest.mark.parametrize(
    ("today", "year", "first", "last"),
    [
        (TODAY, None, dt.date(2025, 12, 1), TODAY),
        (TODAY, 2026, dt.date(2026, 1, 1), TODAY),
        (TODAY, 2025, dt.date(2025, 1, 1), dt.date(2025, 12, 31)),
        (dt.date(2026, 12, 31), None, dt.date(2026, 1, 1), dt.date(2026, 12, 31)),
    ],
)
def test_share_windows(today, year, first, last):
    window = shares.share_window(today=today, year=year)
    assert (window.first, window.last) == (first, last)


def test_a_year_to_come_has_no_share(db_session):
    with pytest.raises(ValidationFailed):
        shares.share_window(today=TODAY, year=2027)
