"""The directory's one answer to "who is the coordination" (the alerts of late reports and unconfirmed visits)."""

from hub.models import Profession, Role
from hub.services import directory
from tests import factories


def test_the_coordination_is_the_active_coordinators_of_each_cpts(db_session):
    here, there = factories.cpts(db_session), factories.cpts(db_session)
    first = factories.coordinator(db_session, here)
    second = factories.coordinator(db_session, here)
    elsewhere = factories.coordinator(db_session, there)
    factories.coordinator(db_session, here).is_active = False  # a closed account
    factories.coordinator(db_session, here, is_active=False)  # a professional no longer active
    factories.clinician(db_session, here, Profession.NURSE)
    factories.user(db_session, here, Role.ADMIN)
    db_session.flush()

    everyone = directory.coordinators_by_cpts(db_session)
    assert everyone[here.id] == [first.professional, second.professional]
    assert everyone[there.id] == [elsewhere.professional]
    assert directory.coordinators_by_cpts(db_session, [there.id]) == {there.id: [elsewhere.professional]}
    assert directory.coordinators_by_cpts(db_session, []) == {}
