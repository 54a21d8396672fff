"""Two workers claiming the same batch of signed reports at the same moment, on committed connections: each report
goes to one of them. The claim is one multi-row UPDATE … RETURNING; PostgreSQL re-checks the lease on every row it had
to wait for, SQLite serialises the writers."""

import datetime as dt
import threading

import pytest

from hub.models import AppointmentState, Role
from tests import ZONE, factories
from tests.factories import NOW
from workflows import reports

pytestmark = pytest.mark.concurrency


def test_two_workers_claiming_one_batch_at_once_get_disjoint_reports(committed, tmp_path):
    factory, created = committed
    with factory() as session:
        org = factories.cpts(session)
        created.append(org.id)
        t = factories.territory(session, org)
        t.cardiologist.mssante_address = "cardio@ch.mssante.fr"
        user = factories.user(session, t.cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
        signed = []
        for hour in range(8):
            when = dt.datetime(2026, 11, 23, 8, 0, tzinfo=dt.UTC) + dt.timedelta(hours=hour)
            appointment = factories.visit(session, t, when, state=AppointmentState.DONE, now=NOW)
            report = reports.start_report(session, user, appointment)
            report = reports.update_draft(session, user, report, acts="ECG.", conclusion="RAS.")
            signed.append(reports.sign(session, user, report, upload_dir=tmp_path, zone=ZONE).id)
        session.commit()
    start = threading.Barrier(2)
    claimed: list[list[int]] = [[], []]

    def worker(index: int) -> None:
        start.wait()
        now = dt.datetime.now(dt.UTC)
        claimed[index] = [
            report_id for report_id, _ in reports._claim_rendering(factory, now, reports.RENDER_LEASE, 10)
        ]

    threads = [threading.Thread(target=worker, args=(index,)) for index in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert not set(claimed[0]) & set(claimed[1])
    assert sorted(claimed[0] + claimed[1]) == sorted(signed)
