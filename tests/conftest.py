"""Test set-up: the database is built once by running the migrations; each test runs inside an outer
transaction that is rolled back, with the application's commits turned into savepoints.

SQLite by default; PostgreSQL when TEST_DATABASE_URL is set (postgresql+psycopg://…)."""

import datetime as dt
import os
import tempfile
from types import MappingProxyType

import pytest
import time_machine
from sqlalchemy import text
from sqlalchemy.orm import sessionmaker

from hub import create_app, migrate
from hub.db import make_engine
from hub.models import PlaceKind, Profession, Role
from hub.services import accounts
from scheduling.periodic import JobContext
from tests import factories
from tests.imap_server import ImapServer
from tests.servers import TestCA
from workflows import appointments

# A service reading the account's rows from an API view not marked needs_account fails its tests (in production it
# reads them with a warning: hub.services.accounts.Caller).
accounts.Caller.strict = True

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def _database_url(tmp_root: str) -> str:
    return TEST_DATABASE_URL or f"sqlite:///{tmp_root}/hub-test.sqlite3"


def reset_database(url: str) -> None:
    """An empty database: on PostgreSQL the public schema is dropped and made again."""
    if not url.startswith("postgresql"):
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


def test_config(url: str) -> dict:
    return {
        "ENV": "testing",
        "SECRET_KEY": "test-secret-key-that-is-long-enough-to-pass",
        "DATABASE_URL": url,
        # Checkpoints of the test database's audit chain stay out of the instance folder (the development log's).
        "AUDIT_CHECKPOINT_FILE": os.path.join(tempfile.gettempdir(), f"hub-test-audit-{os.getpid()}.jsonl"),
        "ARGON2_TIME_COST": 1,
        "ARGON2_MEMORY_COST": 8192,
    }


@pytest.fixture(scope="session")
def database_url():
    with tempfile.TemporaryDirectory() as tmp_root:
        url = _database_url(tmp_root)
        reset_database(url)
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        yield url


@pytest.fixture(scope="session")
def app(database_url):
    application = create_app(test_config(database_url))
    yield application
    application.extensions["hub.engine"].dispose()


@pytest.fixture
def engine(app):
    return app.extensions["hub.engine"]


@pytest.fixture
def db_session(app, engine):
    """The test's session, sharing the rolled-back outer transaction with every request of the test."""
    connection = engine.connect()
    outer = connection.begin()
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    committed_factory = app.extensions["hub.sessions"]
    app.extensions["hub.sessions"] = factory
    session = factory()
    try:
        yield session
    finally:
        session.close()
        app.extensions["hub.sessions"] = committed_factory
        outer.rollback()
        connection.close()


@pytest.fixture
def client(app, db_session):
    return app.test_client()


class AuthActions:
    """Log a user in through the real server-side session machinery, or through the full login pages."""

    def __init__(self, client, session):
        self.client = client
        self.session = session

    def login(self, user):
        token = accounts.start_session(self.session, user)
        self.session.commit()
        with self.client.session_transaction() as browser_session:
            browser_session["auth_token"] = token
            browser_session["sid"] = f"test-sid-{user.id}"
        return token

    def csrf(self) -> str:
        from flask import session as flask_session

        from hub.http.csrf import csrf_token

        with self.client.session_transaction() as browser_session:
            sid = browser_session.setdefault("sid", "test-sid-anonymous")
        with self.client.application.test_request_context():
            flask_session["sid"] = sid
            return csrf_token()

    def post(self, url, data=None, **kwargs):
        data = dict(data or {})
        data.setdefault("csrf_token", self.csrf())
        return self.client.post(url, data=data, **kwargs)


@pytest.fixture
def auth(client, db_session):
    return AuthActions(client, db_session)


@pytest.fixture
def cpts(db_session):
    return factories.cpts(db_session)


@pytest.fixture
def committed(app):
    """A session factory whose commits are real, for tests with several threads or processes.

    Use it instead of `db_session`: on SQLite the rolled-back outer transaction holds the write lock.
    Rows are removed afterwards by CPTS. Audit rows stay (the log is append-only): the sequencer chains them, as the
    worker would, so that no later test finds rows of this one waiting outside the chain.
    """
    from hub import audit

    factory = app.extensions["hub.sessions"]
    created: list[int] = []
    yield factory, created
    with factory() as session:
        for cpts_id in created:
            purge_cpts(session, cpts_id)
        session.commit()
    audit.run_sequencer(factory, key=audit.key_bytes(app.config["HUB"]), checkpoint_file=None)


def purge_cpts(session, cpts_id: int) -> None:
    from sqlalchemy import delete, select

    from hub.models import (
        Allocation,
        ApiToken,
        Appointment,
        Attendance,
        CalendarFeed,
        CarePathway,
        CarePathwayStep,
        CareTeamMember,
        ConnectorSetting,
        Consent,
        DeclaredActivity,
        Delivery,
        EligibilityAssessment,
        FeeEntry,
        FreedSlotTask,
        GpProposal,
        GpSearch,
        IdempotentRequest,
        IdentityCheck,
        LoginAttempt,
        Organisation,
        OutboxMessage,
        PathwayStepTemplate,
        PathwayTemplate,
        Patient,
        Professional,
        ProgramClosure,
        Referral,
        ReferralAttachment,
        Report,
        Resource,
        SatisfactionSurvey,
        SessionIncident,
        SessionProgram,
        Slot,
        TeleexpertiseAttachment,
        TeleexpertiseRequest,
        User,
        UserRole,
        UserSession,
        VideoRoom,
        VisitOffer,
        WaitingEntry,
        professional_organisations,
    )

    users = select(User.id).where(User.cpts_id == cpts_id)
    patients = select(Patient.id).where(Patient.cpts_id == cpts_id)
    professionals = select(Professional.id).where(Professional.cpts_id == cpts_id)
    logins = select(User.login).where(User.cpts_id == cpts_id)
    appointments = select(Appointment.id).where(Appointment.cpts_id == cpts_id)
    programs = select(SessionProgram.id).where(SessionProgram.cpts_id == cpts_id)
    referrals = select(Referral.id).where(Referral.cpts_id == cpts_id)
    pathways = select(CarePathway.id).where(CarePathway.cpts_id == cpts_id)
    requests = select(TeleexpertiseRequest.id).where(TeleexpertiseRequest.cpts_id == cpts_id)
    for statement in (
        delete(Delivery).where(Delivery.cpts_id == cpts_id),
        delete(TeleexpertiseAttachment).where(TeleexpertiseAttachment.request_id.in_(requests)),
        delete(TeleexpertiseRequest).where(TeleexpertiseRequest.cpts_id == cpts_id),
        delete(Report).where(Report.cpts_id == cpts_id),
        delete(ConnectorSetting).where(ConnectorSetting.cpts_id == cpts_id),
        delete(FeeEntry).where(FeeEntry.cpts_id == cpts_id),
        delete(DeclaredActivity).where(DeclaredActivity.professional_id.in_(professionals)),
        delete(CarePathwayStep).where(CarePathwayStep.pathway_id.in_(pathways)),
        delete(CarePathway).where(CarePathway.cpts_id == cpts_id),
        delete(PathwayStepTemplate).where(
            PathwayStepTemplate.template_id.in_(select(PathwayTemplate.id).where(PathwayTemplate.cpts_id == cpts_id))
        ),
        delete(PathwayTemplate).where(PathwayTemplate.cpts_id == cpts_id),
        delete(FreedSlotTask).where(FreedSlotTask.cpts_id == cpts_id),
        delete(WaitingEntry).where(WaitingEntry.cpts_id == cpts_id),
        delete(ReferralAttachment).where(ReferralAttachment.referral_id.in_(referrals)),
        delete(Referral).where(Referral.cpts_id == cpts_id),
        delete(EligibilityAssessment).where(EligibilityAssessment.patient_id.in_(patients)),
        delete(SessionIncident).where(SessionIncident.cpts_id == cpts_id),
        delete(Allocation).where(Allocation.appointment_id.in_(appointments)),
        delete(Allocation).where(Allocation.slot_id.in_(select(Slot.id).where(Slot.program_id.in_(programs)))),
        delete(VisitOffer).where(VisitOffer.appointment_id.in_(appointments)),
        delete(Attendance).where(Attendance.cpts_id == cpts_id),
        delete(VideoRoom).where(VideoRoom.cpts_id == cpts_id),
        delete(SatisfactionSurvey).where(SatisfactionSurvey.cpts_id == cpts_id),
        delete(Appointment).where(Appointment.cpts_id == cpts_id),
        delete(Slot).where(Slot.program_id.in_(programs)),
        delete(ProgramClosure).where(ProgramClosure.program_id.in_(programs)),
        delete(SessionProgram).where(SessionProgram.cpts_id == cpts_id),
        delete(Resource).where(Resource.cpts_id == cpts_id),
        delete(OutboxMessage).where(OutboxMessage.cpts_id == cpts_id),
        delete(CalendarFeed).where(CalendarFeed.professional_id.in_(professionals)),
        delete(IdempotentRequest).where(IdempotentRequest.user_id.in_(users)),
        delete(LoginAttempt).where(LoginAttempt.login.in_(logins)),
        delete(UserSession).where(UserSession.user_id.in_(users)),
        delete(ApiToken).where(ApiToken.user_id.in_(users)),
        delete(GpProposal).where(GpProposal.search_id.in_(select(GpSearch.id).where(GpSearch.cpts_id == cpts_id))),
        delete(GpSearch).where(GpSearch.cpts_id == cpts_id),
        delete(IdentityCheck).where(IdentityCheck.patient_id.in_(patients)),
        delete(Consent).where(Consent.patient_id.in_(patients)),
        delete(CareTeamMember).where(CareTeamMember.patient_id.in_(patients)),
        delete(Patient).where(Patient.cpts_id == cpts_id),
        delete(UserRole).where(UserRole.user_id.in_(users)),
        delete(User).where(User.cpts_id == cpts_id),
        delete(professional_organisations).where(professional_organisations.c.professional_id.in_(professionals)),
        delete(Professional).where(Professional.cpts_id == cpts_id),
        delete(Organisation).where(Organisation.cpts_id == cpts_id),
        delete(Organisation).where(Organisation.id == cpts_id),
    ):
        session.execute(statement)


# The users most tests need, one of each role, in the test's CPTS.


@pytest.fixture
def gp(db_session, cpts):
    return factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER)


@pytest.fixture
def nurse(db_session, cpts):
    return factories.user(db_session, cpts, Role.PROFESSIONAL)


@pytest.fixture
def coordinator(db_session, cpts):
    return factories.coordinator(db_session, cpts)


@pytest.fixture
def admin(db_session, cpts):
    return factories.user(db_session, cpts, Role.ADMIN)


# The territory of the scheduling, report and fee tests, and what its tests start from.


@pytest.fixture
def clock():
    """The territory's Monday morning, frozen (modules that need it for every test mark themselves with
    `pytestmark = pytest.mark.usefixtures("clock")`, so that it is frozen before any row is made)."""
    with time_machine.travel(factories.NOW, tick=False) as traveller:
        yield traveller


@pytest.fixture
def territory(db_session, cpts) -> factories.Territory:
    return factories.territory(db_session, cpts)


@pytest.fixture
def slot(db_session, territory):
    """A free slot of the territory's program, next Monday at 14:00."""
    return factories.slot(db_session, territory.program, factories.MONDAY_14H.astimezone(dt.UTC))


@pytest.fixture
def visit(db_session, territory, slot):
    """A Monday 14:00 visit proposed to the patient's own IDEL."""
    appointment = appointments.book(
        db_session, territory.coordinator, slot=slot, patient=territory.patient, place_kind=PlaceKind.DEDICATED_PLACE
    )
    db_session.commit()
    return appointment


@pytest.fixture
def kine(db_session, territory):
    """The account of a kiné of the territory who does télésoin."""
    return factories.clinician(
        db_session, territory.cpts, Profession.PHYSIOTHERAPIST, does_telesoin=True, email="kine@example.org"
    )


@pytest.fixture
def kine_session(db_session, territory, kine):
    """The kiné's télésoin session with the territory's patient, next Monday at 14:00, the patient checked in."""
    appointment = factories.telesoin_session(db_session, territory, performer=kine.professional)
    db_session.commit()
    return appointment


@pytest.fixture
def newcomer(db_session, territory):
    """A consenting patient with their own IDEL, but no eligibility checklist yet."""
    patient = factories.consenting_patient(
        db_session, territory.cpts, recorded_by=territory.coordinator, eligible=False, commune_insee="24571"
    )
    factories.in_care_team(db_session, patient, territory.idel)
    return patient


# Infrastructure several packages share.


@pytest.fixture
def sessions(app, db_session):
    """The session factory the worker and the dispatcher use, inside the test's rolled-back transaction."""
    return app.extensions["hub.sessions"]


@pytest.fixture
def context(sessions):
    """What a periodic job receives, in the territory's zone."""
    return JobContext(sessions, factories.PARIS)


@pytest.fixture
def uploads(app, tmp_path, monkeypatch):
    """The application's upload directory, in the test's own temporary directory."""
    directory = tmp_path / "uploads"
    monkeypatch.setitem(app.config, "HUB", MappingProxyType({**app.config["HUB"], "UPLOAD_DIR": str(directory)}))
    return directory


@pytest.fixture(scope="session")
def test_ca(tmp_path_factory):
    return TestCA(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def imap_server(test_ca):
    """A Dovecot IMAP server on loopback (TLS from the test CA), for the acknowledgements."""
    with ImapServer(test_ca) as server:
        yield server
