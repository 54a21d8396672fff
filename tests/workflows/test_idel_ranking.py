"""Issue 16, item 6: one ranking of the IDELs wherever one is chosen — the patient's own first, then distance,
then the visits given this month, then the pending offers — with the days and communes each one serves."""

import datetime as dt

from sqlalchemy import select

from hub.models import AppointmentState, PlaceKind, Profession, Slot, VisitOffer, VisitOfferState
from tests import factories
from tests.factories import MONDAY_14H, NOW
from tests.queries import count_queries
from workflows import accompaniment, appointments, idel_ranking

VERGT, CHALAGNAC, COURSAC, BERGERAC = "24571", "24094", "24139", "24037"


def nurse(db_session, t, commune, last_name, **fields):
    return factories.professional(
        db_session,
        t.cpts,
        Profession.NURSE,
        commune_insee=commune,
        last_name=last_name,
        accompanies_teleconsultation=True,
        **fields,
    )


THIS_MONTH = NOW.replace(day=2)


def given_visits(db_session, t, idel, count, *, month_start=THIS_MONTH):
    """`count` accompaniments the IDEL gave (done) this month, on other patients."""
    for i in range(count):
        other = factories.patient(db_session, t.cpts)
        factories.appointment(
            db_session,
            patient_row=other,
            performer=t.cardiologist,
            accompanying=idel,
            created_by=t.coordinator,
            starts_at=month_start + dt.timedelta(days=i, hours=1),
            state=AppointmentState.DONE,
        )


def pending_offers(db_session, t, idel, count):
    """`count` visits offered to the IDEL that wait for an answer."""
    for i in range(count):
        other = factories.patient(db_session, t.cpts)
        visit = factories.appointment(
            db_session,
            patient_row=other,
            performer=t.cardiologist,
            accompanying=idel,
            created_by=t.coordinator,
            starts_at=MONDAY_14H + dt.timedelta(days=7 + i),
            state=AppointmentState.PROPOSED,
        )
        db_session.add(VisitOffer(appointment_id=visit.id, professional_id=idel.id, offered_at=NOW))
    db_session.flush()


def slot_at(db_session, t, start=MONDAY_14H):
    return factories.slot(db_session, t.program, start.astimezone(dt.UTC))


def suggest(db_session, t, slot, place=PlaceKind.DEDICATED_PLACE):
    return accompaniment.suggest(db_session, slot=slot, patient=t.patient, place_kind=place, now=NOW)


def test_own_idel_first_then_distance_then_visits_this_month_then_pending_offers(db_session, territory):
    t = territory
    t.other_idel.commune_insee = BERGERAC  # far away
    busy_near = nurse(db_session, t, CHALAGNAC, "Arnaud")  # nearest by name, but gave 2 visits this month
    idle_near = nurse(db_session, t, CHALAGNAC, "Bernard")
    asked_far = nurse(db_session, t, COURSAC, "Caron")  # same distance as Dubois, one offer waiting
    free_far = nurse(db_session, t, COURSAC, "Dubois")
    unknown = nurse(db_session, t, "75056", "Aaron")  # Paris: not in the data set, last
    given_visits(db_session, t, busy_near, 2)
    given_visits(db_session, t, idle_near, 1, month_start=NOW.replace(day=1) - dt.timedelta(days=20))  # October
    pending_offers(db_session, t, asked_far, 1)

    found = suggest(db_session, t, slot_at(db_session, t))

    order = [c.professional.id for c in found.candidates]
    assert order == [t.idel.id, idle_near.id, busy_near.id, free_far.id, asked_far.id, t.other_idel.id, unknown.id]
    by_id = {c.professional.id: c for c in found.candidates}
    assert by_id[t.idel.id].reason.startswith("IDEL du patient · 0,0\u00a0km")
    assert by_id[idle_near.id].reason == "5,8\u00a0km · 0 visite ce mois · 0 proposition en attente"
    assert by_id[busy_near.id].reason == "5,8\u00a0km · 2 visites ce mois · 0 proposition en attente"
    assert by_id[asked_far.id].reason == "11,0\u00a0km · 0 visite ce mois · 1 proposition en attente"
    assert by_id[unknown.id].reason.startswith("distance inconnue")


def test_fairness_after_three_visits_the_same_nurse_drops_below_an_equally_near_one(db_session, territory):
    t = territory
    t.other_idel.commune_insee = BERGERAC
    first = nurse(db_session, t, CHALAGNAC, "Aubert")
    second = nurse(db_session, t, CHALAGNAC, "Blanc")
    slot = slot_at(db_session, t)
    assert [c.professional.id for c in suggest(db_session, t, slot).candidates][1:3] == [first.id, second.id]

    given_visits(db_session, t, first, 3)

    assert [c.professional.id for c in suggest(db_session, t, slot).candidates][1:3] == [second.id, first.id]


def test_the_second_round_of_offers_follows_the_same_ranking(db_session, territory):
    t = territory
    t.other_idel.commune_insee = BERGERAC
    first = nurse(db_session, t, CHALAGNAC, "Aubert")
    second = nurse(db_session, t, CHALAGNAC, "Blanc")
    given_visits(db_session, t, first, 3)
    slot = slot_at(db_session, t)
    suggested = [c.professional.id for c in suggest(db_session, t, slot).candidates if not c.is_own]
    appointment = appointments.book(
        db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW
    )

    offers = appointments.offer_to_other_idels(db_session, appointment, now=NOW + dt.timedelta(hours=3))

    assert [o.professional_id for o in offers] == suggested == [second.id, first.id, t.other_idel.id]
    db_session.flush()
    assert all(o.state is VisitOfferState.PENDING and o.round == 2 for o in offers)


def test_a_nurse_who_does_not_work_that_day_is_not_offered_the_visit(db_session, territory):
    t = territory
    t.idel.working_days = "2345"  # not on Mondays
    t.other_idel.working_days = "12345"
    weekend = nurse(db_session, t, VERGT, "Weekend", working_days="67")
    slot = slot_at(db_session, t)

    found = suggest(db_session, t, slot)

    assert [c.professional.id for c in found.candidates] == [t.other_idel.id]
    assert found.own_note == f"{t.idel.full_name}, IDEL du patient, ne travaille pas le lundi."
    saturday = slot_at(db_session, t, MONDAY_14H + dt.timedelta(days=5))
    assert [c.professional.id for c in suggest(db_session, t, saturday).candidates] == [weekend.id]
    appointment = appointments.book(
        db_session,
        t.coordinator,
        slot=slot,
        patient=t.patient,
        place_kind=PlaceKind.DEDICATED_PLACE,
        accompanying=t.other_idel,
        now=NOW,
    )
    assert appointments.suitable_idels(db_session, appointment, exclude={t.other_idel.id}, now=NOW) == []


def test_a_home_visit_goes_only_to_nurses_serving_the_patients_commune(db_session, territory):
    t = territory
    t.idel.commune_insee = COURSAC  # the own IDEL moved and does not come to Vergt any more
    t.other_idel.commune_insee = CHALAGNAC
    serving = nurse(db_session, t, COURSAC, "Serre", served_communes=f"{VERGT} {CHALAGNAC}")
    slot = slot_at(db_session, t)

    found = suggest(db_session, t, slot, PlaceKind.HOME)

    assert [c.professional.id for c in found.candidates] == [serving.id]
    assert found.candidates[0].reason.endswith("intervient à domicile dans la commune du patient")
    assert found.own_note == (
        f"{t.idel.full_name}, IDEL du patient, n'intervient pas à domicile dans la commune du patient."
    )


def test_the_counts_come_from_grouped_queries_whatever_the_number_of_nurses(db_session, territory, engine):
    t = territory
    slot = slot_at(db_session, t)
    db_session.flush()

    def statements() -> int:
        db_session.expire_all()
        loaded = db_session.get(Slot, slot.id)
        loaded.program  # noqa: B018  (loaded before counting: the ranking's queries only)
        with count_queries(engine) as seen:
            idel_ranking.rank(
                db_session,
                pool=appointments.idel_pool(db_session, t.cpts.id),
                patient=t.patient,
                window=accompaniment.window(loaded),
                at_home=False,
                own_id=t.idel.id,
                zone=loaded.program.zone,
                now=NOW,
            )
        return len(seen)

    few = statements()
    for i in range(6):
        extra = nurse(db_session, t, CHALAGNAC, f"Extra{i}")
        given_visits(db_session, t, extra, 1)
        pending_offers(db_session, t, extra, 1)
    db_session.flush()
    assert statements() == few


def test_month_bounds_are_the_local_calendar_month():
    start, end = idel_ranking.month_bounds(dt.datetime(2026, 11, 30, 23, 30, tzinfo=dt.UTC), "Europe/Paris")
    assert (start, end) == (
        dt.datetime(2026, 11, 30, 23, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 12, 31, 23, 0, tzinfo=dt.UTC),
    ), "00:30 on 1 December, Paris time, is in December"


def test_a_booking_does_not_ask_the_own_idel_on_a_day_she_does_not_work(db_session, territory):
    t = territory
    t.idel.working_days = "2345"  # not on Mondays
    book = dict(patient=t.patient, place_kind=PlaceKind.DEDICATED_PLACE, now=NOW)
    monday = appointments.book(db_session, t.coordinator, slot=slot_at(db_session, t), **book)
    assert monday.accompanying_id is None, "left for the coordination to choose, from the ranking"
    db_session.flush()
    assert db_session.scalars(select(VisitOffer).where(VisitOffer.appointment_id == monday.id)).all() == []
    tuesday = appointments.book(
        db_session, t.coordinator, slot=slot_at(db_session, t, MONDAY_14H + dt.timedelta(days=1)), **book
    )
    assert tuesday.accompanying_id == t.idel.id
    chosen = appointments.book(
        db_session,
        t.coordinator,
        slot=slot_at(db_session, t, MONDAY_14H + dt.timedelta(days=7)),
        accompanying=t.idel,
        **book,
    )
    assert chosen.accompanying_id == t.idel.id, "the coordinator's explicit choice stands (she may have agreed)"


def test_a_group_session_she_accompanies_counts_as_one_visit(db_session, territory):
    """Four participants of one group session are one visit for the IDEL who accompanies them (issue 16, items 2
    and 6): counting appointments would push her below a nurse who did two home visits."""
    t = territory
    idel = nurse(db_session, t, CHALAGNAC, "Aubert")
    group_slot = factories.slot(db_session, t.program, THIS_MONTH.astimezone(dt.UTC) + dt.timedelta(hours=3))
    for _ in range(4):
        factories.appointment(
            db_session,
            patient_row=factories.patient(db_session, t.cpts),
            performer=t.cardiologist,
            accompanying=idel,
            created_by=t.coordinator,
            starts_at=group_slot.starts_at,
            slot_id=group_slot.id,
            program_id=t.program.id,
            state=AppointmentState.DONE,
        )
    given_visits(db_session, t, idel, 1)  # and one single visit
    counts = idel_ranking._visits_this_month(db_session, [idel.id], zone="Europe/Paris", now=NOW)
    assert counts == {idel.id: 2}
