"""The locking read of a state change (hub.auth.policies, issue 17): one statement per model, loaders and column,
built once with bound parameters, which still reads only the user's CPTS and, for a report's writes, its author."""

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session

from hub.auth import policies
from hub.errors import NotFound
from hub.models import Report, Role
from tests import factories
from workflows import reports


@pytest.fixture
def draft(db_session, cpts):
    t = factories.territory(db_session, cpts)
    author = factories.user(db_session, cpts, Role.PROFESSIONAL, professional_row=t.cardiologist)
    colleague = factories.clinician(db_session, cpts)
    stranger = factories.user(db_session, factories.cpts(db_session), Role.PROFESSIONAL)
    row = factories.report(db_session, t.patient, author=t.cardiologist, created_by=t.coordinator)
    db_session.commit()
    return row.id, author, colleague, stranger


def test_the_locking_statement_is_built_once(app, draft):
    report_id, author, _colleague, _stranger = draft
    executed = []

    def orm_statement(state):
        executed.append(state.statement)

    event.listen(Session, "do_orm_execute", orm_statement)
    try:
        for _ in range(2):
            with app.extensions["hub.sessions"]() as session:
                user = session.get(type(author), author.id)
                found = policies.report_for(session, user, report_id, "sign", lock=True, load=reports.SIGN_LOAD)
                assert found.id == report_id and found.author is not None
                session.rollback()
    finally:
        event.remove(Session, "do_orm_execute", orm_statement)
    locking = [statement for statement in executed if statement.column_descriptions[0]["entity"] is Report]
    # The same statement object at each request (it was built, with its loaders and cache key, at every call).
    assert locking == [policies._locking_statement(Report, reports.SIGN_LOAD, "author_id")] * 2


@pytest.mark.parametrize("who", ["colleague", "stranger"])
def test_only_the_author_of_the_cpts_reads_a_draft_to_write_it(app, draft, who):
    report_id, _author, colleague, stranger = draft
    with app.extensions["hub.sessions"]() as session:
        user = session.get(type(colleague), (colleague if who == "colleague" else stranger).id)
        with pytest.raises(NotFound):
            policies.report_for(session, user, report_id, "update", lock=True)
