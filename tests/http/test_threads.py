"""The request cycle under threads: the web nodes run gunicorn's threaded workers (deploy/gunicorn_conf.py), so one
process serves several requests at once. Each request's user, database session, request id and audit context must
stay its own."""

import datetime as dt
import threading
import uuid

import pytest
from sqlalchemy import func, select

from hub.models import Appointment, AuditEvent
from hub.services import accounts
from tests import factories

THREADS = 4
REQUESTS = 8
ROUNDS = 6  # per thread of the mixed test


@pytest.mark.concurrency
def test_concurrent_requests_keep_their_own_user_session_and_audit_context(app, committed):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        users = [factories.coordinator(session, org) for _ in range(THREADS)]
        patient = factories.consenting_patient(session, org, recorded_by=users[0])
        tokens = [accounts.create_api_token(session, user, name="threads")[1] for user in users]
        session.commit()
        user_ids, patient_id = [user.id for user in users], patient.id

    barrier = threading.Barrier(THREADS)
    answers: dict[int, list[tuple[int, str, int | None]]] = {n: [] for n in range(THREADS)}

    def read(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        for _ in range(REQUESTS):
            response = client.get(
                f"/api/v1/patients/{patient_id}",
                headers={"Authorization": f"Bearer {tokens[n]}"},
                environ_base={"REMOTE_ADDR": f"10.0.0.{n + 1}"},
            )
            body = response.get_json()
            answers[n].append((response.status_code, response.headers["X-Request-Id"], body.get("id")))

    threads = [threading.Thread(target=read, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    request_ids = {request_id: n for n, rows in answers.items() for _status, request_id, _id in rows}
    assert all(status == 200 and read_id == patient_id for rows in answers.values() for status, _r, read_id in rows)
    assert len(request_ids) == THREADS * REQUESTS  # one id per request, none shared
    with factory() as session:
        events = session.execute(
            select(AuditEvent.request_id, AuditEvent.actor_user_id, AuditEvent.ip, AuditEvent.target_id).where(
                AuditEvent.request_id.in_(request_ids)
            )
        ).all()
    # Each read's audit row names the user, address and request of the thread that sent it.
    assert sorted((request_id, user_id, ip, target) for request_id, user_id, ip, target in events) == sorted(
        (request_id, user_ids[n], f"10.0.0.{n + 1}", str(patient_id)) for request_id, n in request_ids.items()
    )


@pytest.mark.concurrency
def test_pages_reads_and_replayed_bookings_from_threads_each_keep_their_own_user_and_audit_row(app, committed, clock):
    """Eight threads at once through one app: pages with session cookies (flask-login, the CSRF session, the layout
    cache), API reads with tokens, API bookings sent twice with the same Idempotency-Key. Each page names its own
    user and no other, each booking is made once and replayed once, and each request leaves one audit row naming
    its own user, address and action."""
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        territory = factories.territory(session, org)
        page_users = [factories.coordinator(session, org, last_name=f"Pagezz{n}") for n in range(3)]
        api_users = [factories.coordinator(session, org, last_name=f"Apizz{n}") for n in range(3)]
        book_users = [factories.coordinator(session, org, last_name=f"Bookzz{n}") for n in range(2)]
        patients = [factories.consenting_patient(session, org, recorded_by=territory.coordinator) for _ in range(2)]
        start = factories.MONDAY_14H.astimezone(dt.UTC)
        slots = [
            [
                factories.slot(session, territory.program, start + dt.timedelta(days=7 * (r + 1) + n, hours=3))
                for r in range(ROUNDS)
            ]
            for n in range(len(book_users))
        ]
        first_slot_id = factories.slot(session, territory.program, start + dt.timedelta(days=2, hours=3)).id
        cookies = [accounts.start_session(session, user) for user in page_users]
        tokens = [accounts.create_api_token(session, user, name="threads")[1] for user in api_users + book_users]
        session.commit()
        patient_id = territory.patient.id
        user_ids = {"page": [u.id for u in page_users], "api": [u.id for u in api_users]}
        user_ids["book"] = [u.id for u in book_users]
        booked_patient_ids = [p.id for p in patients]
        slot_ids = [[s.id for s in row] for row in slots]
        names = [u.display_name for u in page_users]

    # The desk is audited only when it shows patient rows: one visit booked beforehand, so that every home page has
    # one, whichever of the threads' bookings have committed.
    booked_before = app.test_client().post(
        "/api/v1/appointments",
        json={"slot_id": first_slot_id, "patient_id": patient_id, "place_kind": "lieu_dedie"},
        headers={"Authorization": f"Bearer {tokens[len(api_users)]}", "Idempotency-Key": str(uuid.uuid4())},
    )
    assert booked_before.status_code == 201

    barrier = threading.Barrier(len(page_users) + len(api_users) + len(book_users))
    answers: list[tuple[str, int, str, str]] = []  # (kind, thread number, request id, expected audit action)
    failures: list[str] = []
    lock = threading.Lock()

    def answered(kind: str, n: int, response, action: str, failure: str | None) -> None:
        with lock:
            answers.append((kind, n, response.headers["X-Request-Id"], action))
            if failure:
                failures.append(failure)

    def pages(n: int) -> None:
        client = app.test_client()
        with client.session_transaction() as cookie_session:
            cookie_session["auth_token"] = cookies[n]
            cookie_session["sid"] = f"threads-sid-{n}"
        barrier.wait()
        for _ in range(ROUNDS):
            for url, action in (("/", "desk.read"), (f"/patients/{patient_id}", "patient.read")):
                response = client.get(url, environ_base={"REMOTE_ADDR": f"10.1.0.{n + 1}"})
                body = response.get_data(as_text=True)
                others = [name for i, name in enumerate(names) if i != n and name in body]
                wrong = response.status_code != 200 or names[n] not in body or bool(others)
                answered(
                    "page", n, response, action, f"page {n} {url} {response.status_code} {others}" if wrong else None
                )

    def reads(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        for _ in range(2 * ROUNDS):
            response = client.get(
                f"/api/v1/patients/{patient_id}",
                headers={"Authorization": f"Bearer {tokens[n]}"},
                environ_base={"REMOTE_ADDR": f"10.2.0.{n + 1}"},
            )
            wrong = response.status_code != 200 or response.get_json().get("id") != patient_id
            answered("api", n, response, "patient.read", f"api {n} {response.status_code}" if wrong else None)

    def bookings(n: int) -> None:
        client = app.test_client()
        barrier.wait()
        for r in range(ROUNDS):
            body = {"slot_id": slot_ids[n][r], "patient_id": booked_patient_ids[n], "place_kind": "lieu_dedie"}
            first = None
            for action in ("appointment.book", "appointment.book_replayed"):
                response = client.post(
                    "/api/v1/appointments",
                    json=body,
                    headers={
                        "Authorization": f"Bearer {tokens[len(api_users) + n]}",
                        "Idempotency-Key": f"00000000-0000-4000-8000-0000000{n}{r:04d}",
                    },
                    environ_base={"REMOTE_ADDR": f"10.3.0.{n + 1}"},
                )
                first = first or response.get_json()
                wrong = response.status_code != 201 or response.get_json() != first
                answered(
                    "book", n, response, action, f"book {n} {r} {action} {response.status_code}" if wrong else None
                )

    threads = [threading.Thread(target=pages, args=(n,)) for n in range(len(page_users))]
    threads += [threading.Thread(target=reads, args=(n,)) for n in range(len(api_users))]
    threads += [threading.Thread(target=bookings, args=(n,)) for n in range(len(book_users))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert not failures, failures[:10]
    request_ids = [request_id for _kind, _n, request_id, _action in answers]
    assert len(answers) == 96 and len(set(request_ids)) == len(request_ids)
    address = {"page": "10.1.0.{}", "api": "10.2.0.{}", "book": "10.3.0.{}"}
    with factory() as session:
        events = session.execute(
            select(AuditEvent.request_id, AuditEvent.actor_user_id, AuditEvent.ip, AuditEvent.action).where(
                AuditEvent.request_id.in_(request_ids)
            )
        ).all()
        booked = session.scalar(
            select(func.count()).select_from(Appointment).where(Appointment.patient_id.in_(booked_patient_ids))
        )
    assert booked == len(book_users) * ROUNDS
    assert sorted(tuple(event) for event in events) == sorted(
        (request_id, user_ids[kind][n], address[kind].format(n + 1), action) for kind, n, request_id, action in answers
    )
