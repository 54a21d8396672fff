"""Issue 16, item 7: a GP's capacity and a patient's place on the list are taken once, whatever the race — two
acceptances over the GP's last place, or two GPs accepting the same patient at once: one wins, one gets a 409."""

import datetime as dt
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from hub.errors import Conflict
from hub.models import ConsentMethod, GpProposal, GpSearch, GpSearchState, Patient, Profession, Professional, User
from tests import factories
from workflows import gp_matching

pytestmark = pytest.mark.concurrency
NOW = dt.datetime(2026, 12, 4, 9, 0, tzinfo=dt.UTC)
CONSENT = {"consent_on": dt.date(2026, 12, 3), "consent_method": ConsentMethod.ORAL.value}


def proposed(session, org, coordinator, patient, doctor):
    search = gp_matching.enter(session, coordinator, patient, CONSENT, now=NOW)
    return gp_matching.propose(session, coordinator, search, doctor.professional, now=NOW)


def accept_at_once(factory, pairs):
    """Each (GP user id, proposal id) accepts in its own thread and session, released together."""
    barrier, results = threading.Barrier(len(pairs)), []

    def accept(user_id, proposal_id):
        barrier.wait()
        try:
            with factory() as session:
                user = session.get(User, user_id)
                gp_matching.accept(session, user, gp_matching.proposal_for(session, user, proposal_id), now=NOW)
                session.commit()
            results.append("accepted")
        except Conflict as exc:
            results.append(("conflict", exc.status))
        except Exception as exc:  # reported, and fails the test
            results.append(("error", repr(exc)))

    threads = [threading.Thread(target=accept, args=pair) for pair in pairs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return sorted(results, key=str)


def test_two_acceptances_over_the_last_place_one_wins(committed):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.coordinator(session, org)
        doctor = factories.clinician(session, org, Profession.GENERAL_PRACTITIONER, new_patient_capacity=2)
        first, second = (proposed(session, org, coordinator, factories.patient(session, org), doctor) for _ in range(2))
        doctor.professional.new_patient_capacity = 1  # the last place, for two patients proposed
        session.commit()
        pairs = [(doctor.id, first.id), (doctor.id, second.id)]
        doctor_id, patient_ids = doctor.professional_id, [first.search.patient_id, second.search.patient_id]

    assert accept_at_once(factory, pairs) == [("conflict", 409), "accepted"]

    with factory() as session:
        assert session.get(Professional, doctor_id).new_patient_capacity == 0
        followed = [session.get(Patient, pid).attending_gp_id for pid in patient_ids]
        assert sorted(followed, key=str) == [doctor_id, None]
        states = sorted(s.value for s in session.scalars(select(GpSearch.state).where(GpSearch.cpts_id == org.id)))
        assert states == ["en_attente", "medecin_trouve"], "the loser's patient still waits"


def test_two_gps_accepting_the_same_patient_at_once_one_wins(committed):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinator = factories.coordinator(session, org)
        doctors = [
            factories.clinician(session, org, Profession.GENERAL_PRACTITIONER, new_patient_capacity=1) for _ in range(2)
        ]
        patient = factories.patient(session, org)
        search = gp_matching.enter(session, coordinator, patient, CONSENT, now=NOW)
        proposals = [gp_matching.propose(session, coordinator, search, d.professional, now=NOW) for d in doctors]
        session.commit()
        pairs = [(d.id, p.id) for d, p in zip(doctors, proposals, strict=True)]
        doctor_ids, patient_id, search_id = [d.professional_id for d in doctors], patient.id, search.id

    assert accept_at_once(factory, pairs) == [("conflict", 409), "accepted"]

    with factory() as session:
        winner = session.get(Patient, patient_id).attending_gp_id
        assert winner in doctor_ids
        assert session.get(GpSearch, search_id).state is GpSearchState.MATCHED
        capacities = {d: session.get(Professional, d).new_patient_capacity for d in doctor_ids}
        assert capacities == {d: 0 if d == winner else 1 for d in doctor_ids}, "the loser's place is not taken"
        answered = session.scalars(select(GpProposal.state).where(GpProposal.search_id == search_id)).all()
        assert sorted(s.value for s in answered) == ["acceptee", "retiree"]


def test_the_database_holds_one_waiting_entry_per_patient(db_session, cpts, coordinator):
    patient = factories.patient(db_session, cpts)
    first = gp_matching.enter(db_session, coordinator, patient, CONSENT, now=NOW)
    twin = GpSearch(
        cpts_id=cpts.id,
        patient_id=patient.id,
        state=GpSearchState.WAITING,
        consent_on=NOW.date(),
        consent_method=ConsentMethod.ORAL,
        entered_at=NOW,
        entered_by_user_id=coordinator.id,
    )
    with pytest.raises(IntegrityError), db_session.begin_nested():
        db_session.add(twin)
        db_session.flush()
    first.state = GpSearchState.WITHDRAWN  # once the first is closed, the patient may enter again
    db_session.flush()
    assert gp_matching.enter(db_session, coordinator, patient, CONSENT, now=NOW).state is GpSearchState.WAITING


def test_two_coordinators_entering_one_patient_at_once_make_one_entry(committed):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        coordinators = [factories.coordinator(session, org).id for _ in range(2)]
        patient_id = factories.patient(session, org).id
        session.commit()
    barrier, results = threading.Barrier(2), []

    def enter(user_id):
        barrier.wait()
        try:
            with factory() as session:
                user, patient = session.get(User, user_id), session.get(Patient, patient_id)
                gp_matching.enter(session, user, patient, CONSENT, now=NOW)
                session.commit()
            results.append("entered")
        except Conflict as exc:
            results.append(("conflict", exc.status))
        except Exception as exc:  # reported, and fails the test
            results.append(("error", repr(exc)))

    threads = [threading.Thread(target=enter, args=(user_id,)) for user_id in coordinators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results, key=str) == [("conflict", 409), "entered"]
    with factory() as session:
        assert len(session.scalars(select(GpSearch).where(GpSearch.patient_id == patient_id)).all()) == 1
