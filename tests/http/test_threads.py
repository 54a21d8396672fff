"""The request cycle under threads: the web nodes run gunicorn's threaded workers (deploy/gunicorn_conf.py), so one
process serves several requests at once. Each request's user, database session, request id and audit context must
stay its own."""

import threading

import pytest
from sqlalchemy import select

from hub.models import AuditEvent
from hub.services import accounts
from tests import factories

THREADS = 4
REQUESTS = 8


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
