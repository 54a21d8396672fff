"""« Envois en retard » as the coordination and the admin see it when the worker is behind: on « Envois » and on the
home page, on a phone and a laptop, axe-core clean, leading to the waiting messages."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import delete, select

from hub.db import utcnow
from hub.models import Organisation, OutboxMessage
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe


@pytest.fixture
def late_message(sessions):
    """A message of the demo CPTS due for 40 minutes that no worker took; removed afterwards (the database is the
    package's)."""
    with sessions() as session:
        cpts_id = session.scalars(select(Organisation.id).order_by(Organisation.id).limit(1)).one()
        row = OutboxMessage(
            channel="email",
            recipient="retard@example.org",
            kind="reminder",
            payload="{}",
            idempotency_key=f"browser:{uuid.uuid4().hex}",
            cpts_id=cpts_id,
            next_attempt_at=utcnow() - dt.timedelta(minutes=40),
        )
        session.add(row)
        session.commit()
        message_id = row.id
    yield message_id
    with sessions() as session:
        session.execute(delete(OutboxMessage).where(OutboxMessage.id == message_id))
        session.commit()


@pytest.mark.parametrize("role", ["coordinator", "admin"])
def test_the_warning_on_the_desk_and_the_outbox_page(role, people, page_at, late_message):
    login = people.by_role()[role]
    for width in (PHONE, DESKTOP):
        page = page_at(width, login)
        page.goto("/")
        # A region named by its heading: what assistive technologies list and reach.
        warning = page.get_by_role("region", name="Envois en retard")
        assert warning.is_visible() and warning.get_attribute("id") == "envois-en-retard"
        assert "depuis 40 min" in warning.inner_text() and "ne sont pas perdus" in warning.inner_text()
        check_axe(page)
        assert_no_horizontal_scroll(page)
        warning.get_by_role("link", name="les envois en attente").click()
        page.wait_for_url("**/envois?state=pending")
        assert page.locator("#envois-en-retard").is_visible()
        assert "retard@example.org" in page.content()
        check_axe(page)
        assert_no_horizontal_scroll(page)
