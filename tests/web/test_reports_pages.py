"""The report pages: « Ma séance », the form and its signature, the report page with its versions and
deliveries, the PDF, « Comptes rendus en retard », the patient's timeline; S2 and constant query counts."""

import datetime as dt
import html
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from hub.documents import store
from hub.models import (
    AttachmentKind,
    AuditEvent,
    Delivery,
    PlaceKind,
    Referral,
    ReferralAttachment,
    ReferralState,
    Report,
    ReportState,
)
from tests import ZONE, factories
from tests.api import test_reports_api as api_tests
from tests.api.test_reports_api import MONDAY_13H_UTC, WRITTEN, session_of
from tests.factories import NOW
from tests.queries import count_queries
from workflows import appointments, deliveries, reports

clinic = api_tests.clinic
MONDAY = "2026-11-23"
ZONE_INFO = ZoneInfo(ZONE)


def text_of(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def form(**fields) -> dict:
    """The form as sent; « Signer et envoyer » with its « Je confirme… » ticked unless a test says otherwise."""
    values = {"acts": "", "prescriptions": "", "technical_incidents": "", "conclusion": "", "follow_up": ""}
    confirmed = {"confirm": "true"} if fields.get("action") == "sign" else {}
    return values | {"follow_up_modality": "", "action": "save"} | confirmed | fields


def start(auth, clinic) -> Report:
    started = auth.post(f"/reports/start/{clinic.appointment.id}")
    assert started.status_code == 302, started.get_data(as_text=True)
    report_id = int(started.headers["Location"].split("/")[-2])
    return auth.session.get(Report, report_id)


def test_walk_through_draft_sign_and_correct(client, auth, clinic, db_session, app):
    auth.login(clinic.cardiologist)
    worklist = text_of(client.get(f"/reports/session?day={MONDAY}"))
    patient = clinic.t.patient
    assert "Ma séance" in worklist and patient.display_name in worklist
    assert f"{patient.age_on(dt.date(2026, 11, 23))} ans" in worklist
    assert clinic.t.idel.full_name in worklist and "Cabinet" in worklist and "06 12 34 56 78" in worklist
    assert f"par {clinic.idel.display_name}" in worklist, "who traced the identity"
    assert "Vérifications avant la séance : Caméra testée, Son testé" in worklist
    assert "Rédiger le compte rendu" in worklist

    report = start(auth, clinic)
    page = text_of(client.get(f"/reports/{report.id}/edit"))
    assert "Copie aux autres participants" in page and clinic.t.idel.full_name in page
    assert "La signature fige le compte rendu" in page and "une correction sera une nouvelle version" in page
    saved = auth.post(f"/reports/{report.id}/edit", data=form(acts=WRITTEN["acts"]))
    assert saved.status_code == 302
    assert "Continuer le compte rendu" in text_of(client.get(f"/reports/session?day={MONDAY}"))

    signed = auth.post(f"/reports/{report.id}/edit", data=form(**WRITTEN, action="sign"))
    assert signed.status_code == 302 and signed.headers["Location"].endswith(f"/reports/{report.id}")
    preparing = text_of(client.get(f"/reports/{report.id}"))
    assert "Document en préparation" in preparing and "Télécharger le PDF" not in preparing
    early = client.get(f"/reports/{report.id}/pdf")
    assert early.status_code == 302 and early.headers["Location"].endswith(f"/reports/{report.id}")
    assert "Le document est en préparation" in text_of(client.get(f"/reports/{report.id}"))
    factories.render_signed_reports(app)  # the worker's pass
    shown = text_of(client.get(f"/reports/{report.id}"))
    assert "Signé, envoi en attente" in shown and WRITTEN["conclusion"] in shown
    assert "Médecin traitant" in shown and "gp@cabinet.mssante.fr" in shown and "Envoi en attente" in shown
    assert "Corriger (nouvelle version)" in shown and "Télécharger le PDF" in shown
    pdf = client.get(f"/reports/{report.id}/pdf")
    assert pdf.data.startswith(b"%PDF-") and pdf.headers["Cache-Control"] == "no-store"
    assert pdf.headers["Content-Disposition"].startswith("attachment")

    corrected = auth.post(f"/reports/{report.id}/supersede")
    assert corrected.status_code == 302
    correction_id = int(corrected.headers["Location"].split("/")[-2])
    assert auth.post(f"/reports/{correction_id}/edit", data=form(**WRITTEN, action="sign")).status_code == 302
    assert "remplace la version 1" in text_of(client.get(f"/reports/{correction_id}"))
    original = text_of(client.get(f"/reports/{report.id}"))
    assert "remplacé par la version 2" in original and "Corriger (nouvelle version)" not in original

    auth.login(clinic.gp)
    record = text_of(client.get(f"/patients/{patient.id}"))
    assert "Compte rendu de téléconsultation" in record and f'href="/reports/{correction_id}"' in record


@pytest.mark.parametrize(
    ("gp", "said"),
    [(True, "puis il part vers ses destinataires."), (False, "il n'a aucun destinataire et se lit dans le hub.")],
)
def test_the_signature_says_whether_the_report_goes_anywhere(client, auth, clinic, db_session, gp, said):
    if not gp:
        clinic.t.patient.attending_gp_id = None
        db_session.commit()
    auth.login(clinic.cardiologist)
    report = start(auth, clinic)
    signed = auth.post(f"/reports/{report.id}/edit", data=form(**WRITTEN, action="sign"))
    assert signed.status_code == 302
    page = text_of(client.get(f"/reports/{report.id}"))
    assert f"Compte rendu signé : son document est en préparation, {said}" in page
    assert ("ses destinataires" in page) is gp


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"acts": "ECG", "action": "sign"}, "conclusion", "Conclusion : à remplir pour signer."),
        ({"acts": "ECG", "action": "sign", "confirm": ""}, "confirm", "Cochez « Je confirme la signature"),
        (
            {"acts": "ECG", "follow_up_modality": "teleportation"},
            "follow_up_modality",
            "Modalité du suivi demandé : Valeur inconnue",
        ),
        ({"acts": "x" * 20_001}, "acts", "Actes réalisés : Au plus 20000 caractères."),
    ],
)
def test_a_refused_form_says_why_next_to_the_field_and_saves_nothing(
    client, auth, clinic, db_session, fields, field, message
):
    auth.login(clinic.cardiologist)
    report = start(auth, clinic)
    refused = auth.post(f"/reports/{report.id}/edit", data=form(**fields))
    assert refused.status_code == 422
    page = text_of(refused)
    assert f'id="e-{field}"' in page and message in page
    db_session.expire_all()
    stored = db_session.get(Report, report.id)
    assert stored.acts == "" and stored.state is ReportState.DRAFT
    assert db_session.scalar(select(func.count(Delivery.id))) == 0


@pytest.mark.parametrize("frozen", [False, True])
def test_the_worklist_links_the_referral_letter_and_its_attachments(client, auth, clinic, db_session, frozen):
    t = clinic.t
    letter_bytes = b"%PDF-1.4 lettre figee"
    frozen_letter = (
        {"letter_sha256": store.store_blob(clinic.uploads, letter_bytes), "letter_size": len(letter_bytes)}
        if frozen
        else {}
    )
    referral = Referral(
        cpts_id=t.cpts.id,
        patient_id=t.patient.id,
        author_id=clinic.gp.professional_id,
        created_by_user_id=clinic.gp.id,
        target_specialist_id=t.cardiologist.id,
        reason="Dyspnée d'effort",
        state=ReferralState.SCHEDULED,
        appointment_id=clinic.appointment.id,
        **frozen_letter,
    )
    db_session.add(referral)
    db_session.flush()
    stored = store.store_upload(clinic.uploads, b"%PDF-1.4 ordonnance", "bilan.pdf", max_bytes=1024)
    attachment = ReferralAttachment(
        referral_id=referral.id, kind=AttachmentKind.BIOLOGY_PRESCRIPTION, uploaded_by_user_id=clinic.gp.id, **stored
    )
    db_session.add(attachment)
    db_session.commit()
    auth.login(clinic.cardiologist)
    page = text_of(client.get(f"/reports/session?day={MONDAY}"))
    if frozen:  # the letter as it was frozen when the referral was scheduled
        letter = f"/referrals/appointments/{clinic.appointment.id}/letter.pdf"
    else:
        letter = f"/referrals/{referral.id}/letter.pdf"
    download = f"/referrals/{referral.id}/attachments/{attachment.id}"
    assert letter in page and download in page
    assert client.get(letter).data == letter_bytes if frozen else client.get(letter).data.startswith(b"%PDF-")
    editor = text_of(client.get(f"/reports/{start(auth, clinic).id}/edit"))
    assert letter in editor and download in editor, "the letter and the ECG beside the report being written"
    assert client.get(download).data == b"%PDF-1.4 ordonnance"


def other_patient(db_session, clinic):
    t = clinic.t
    patient = factories.consenting_patient(
        db_session, t.cpts, recorded_by=t.coordinator, commune_insee="24571", phone="0612345678"
    )
    factories.in_care_team(db_session, patient, t.idel)
    return patient


def refer(db_session, clinic, appointment) -> tuple[Referral, ReferralAttachment]:
    """The GP's referral scheduled into the appointment, with a prescription attached."""
    referral = Referral(
        cpts_id=appointment.cpts_id,
        patient_id=appointment.patient_id,
        author_id=clinic.gp.professional_id,
        created_by_user_id=clinic.gp.id,
        target_specialist_id=clinic.t.cardiologist.id,
        reason="Dyspnée d'effort",
        state=ReferralState.SCHEDULED,
        appointment_id=appointment.id,
    )
    db_session.add(referral)
    db_session.flush()
    stored = store.store_upload(clinic.uploads, b"%PDF-1.4 ordonnance", "bilan.pdf", max_bytes=1024)
    attachment = ReferralAttachment(
        referral_id=referral.id, kind=AttachmentKind.BIOLOGY_PRESCRIPTION, uploaded_by_user_id=clinic.gp.id, **stored
    )
    db_session.add(attachment)
    db_session.flush()
    return referral, attachment


def test_the_worklist_keeps_a_constant_number_of_queries(client, auth, clinic, db_session, engine):
    auth.login(clinic.cardiologist)
    refer(db_session, clinic, clinic.appointment)
    counts = []
    for more in (0, 3):
        for n in range(more):  # each with its own patient, IDEL check-in and referral with a document
            appointment = session_of(
                db_session,
                clinic.t,
                MONDAY_13H_UTC + dt.timedelta(hours=2 * (n + 1)),
                patient=other_patient(db_session, clinic),
            )
            refer(db_session, clinic, appointment)
        db_session.commit()
        with count_queries(engine) as seen:
            page = client.get(f"/reports/session?day={MONDAY}")
        assert page.status_code == 200
        counts.append(len(seen))
        assert text_of(page).count("Rédiger le compte rendu") == 1 + more
    assert counts[0] == counts[1], counts


def test_a_day_without_sessions_and_the_neighbouring_days(client, auth, clinic):
    auth.login(clinic.cardiologist)
    page = text_of(client.get("/reports/session?day=2026-11-24"))
    assert "Aucun patient à cette séance." in page
    assert "day=2026-11-23" in page and "day=2026-11-25" in page


@pytest.mark.parametrize("who", ["outsider", "stranger_specialist"])
def test_no_report_page_outside_the_patients_care_s2(client, auth, clinic, db_session, who):
    auth.login(clinic.cardiologist)
    report = start(auth, clinic)
    auth.post(f"/reports/{report.id}/edit", data=form(**WRITTEN, action="sign"))
    auth.login(getattr(clinic, who))
    responses = [
        client.get(f"/reports/{report.id}"),
        client.get(f"/reports/{report.id}/pdf"),
        client.get(f"/reports/{report.id}/edit"),
        auth.post(f"/reports/{report.id}/supersede"),
        auth.post(f"/reports/start/{clinic.appointment.id}"),
    ]
    assert [r.status_code for r in responses] == [404] * len(responses)
    assert WRITTEN["conclusion"] not in "".join(text_of(r) for r in responses)
    denied = db_session.scalars(select(AuditEvent.action).where(AuditEvent.outcome == "denied")).all()
    assert denied.count("report.read") == 2 and "report.supersede" in denied and "appointment.read" in denied


def test_a_serial_telesoin_session_goes_without_its_report_but_not_the_last(client, auth, clinic, db_session):
    t = clinic.t
    program = factories.program(db_session, t.cpts, telesoin=True, performer=t.cardiologist)
    sessions = []
    for day in (23, 30):
        slot = factories.slot(db_session, program, dt.datetime(2026, 11, day, 9, 0, tzinfo=dt.UTC))
        sessions.append(
            appointments.book(
                db_session, t.coordinator, slot=slot, patient=t.patient, place_kind=PlaceKind.HOME, now=NOW
            )
        )
    db_session.commit()
    auth.login(clinic.cardiologist)
    page = text_of(client.get(f"/reports/session?day={MONDAY}"))
    assert "Séance sans compte rendu (série)" in page
    assert auth.post(f"/reports/waive/{sessions[0].id}", data={"reason": ""}).status_code == 302
    assert sessions[0].report_waived_reason is None
    waived = auth.post(f"/reports/waive/{sessions[0].id}", data={"reason": "Séance 2 sur 6"})
    assert waived.status_code == 302
    db_session.expire_all()
    assert db_session.get(type(sessions[0]), sessions[0].id).report_waived_reason == "Séance 2 sur 6"
    assert "Séance sans compte rendu (série) : Séance 2 sur 6" in text_of(client.get(f"/reports/session?day={MONDAY}"))
    auth.post(f"/reports/waive/{sessions[1].id}", data={"reason": "Dernière"})
    db_session.expire_all()
    assert db_session.get(type(sessions[1]), sessions[1].id).report_waived_reason is None, "never the last one"
    page = text_of(client.get("/reports/session?day=2026-11-30"))
    assert "La dernière séance d'une série de télésoin doit avoir son compte rendu." in page


def late_sessions(db_session, clinic, count: int, *, first_day: int):
    """Sessions done last week whose report nobody signed: past the 48 h delay."""
    first = dt.datetime(2026, 11, first_day, 7, 0, tzinfo=dt.UTC)
    done = [session_of(db_session, clinic.t, first + dt.timedelta(hours=2 * n)) for n in range(count)]
    db_session.commit()
    return done


def test_the_coordinator_sees_what_is_late(client, auth, clinic, db_session):
    [late] = late_sessions(db_session, clinic, 1, first_day=17)
    auth.login(clinic.coordinator)
    page = text_of(client.get("/reports/overdue"))
    assert "Comptes rendus en retard" in page and "Compte rendu non signé" in page
    assert clinic.t.patient.display_name in page and clinic.t.cardiologist.full_name in page
    assert "/planning/appointments/" in page
    # Signed since, but the médecin traitant's copy has not left within its delay.
    report = reports.start_report(db_session, clinic.cardiologist, late)
    reports.update_draft(db_session, clinic.cardiologist, report, **WRITTEN)
    factories.sign_and_render(db_session, clinic.cardiologist, report, upload_dir=clinic.uploads, zone=ZONE)
    db_session.commit()
    page = text_of(client.get("/reports/overdue"))
    assert "Envoi en attente : médecin traitant" in page and f'href="/reports/{report.id}"' in page
    auth.login(clinic.cardiologist)
    assert client.get("/reports/overdue").status_code == 403


def test_a_failed_rendering_is_said_to_the_author_and_listed_for_the_coordinator(
    client, auth, clinic, db_session, app, tmp_path
):
    """The worker cannot render the signed report: its author reads that it failed and that the coordination
    knows (not « en préparation »), and the coordinator's « en retard » list names it."""
    report = reports.start_report(db_session, clinic.cardiologist, clinic.appointment)
    reports.update_draft(db_session, clinic.cardiologist, report, **WRITTEN)
    reports.sign(db_session, clinic.cardiologist, report, upload_dir=clinic.uploads, zone=ZONE)
    db_session.commit()
    blocked = factories.unwritable_upload_dir(tmp_path)
    assert reports.render_pending(app.extensions["hub.sessions"], upload_dir=blocked, zone=ZONE).endswith("1 échec(s)")
    auth.login(clinic.cardiologist)
    page = text_of(client.get(f"/reports/{report.id}"))
    assert "La mise en forme du document a échoué, la coordination est prévenue" in page
    assert "Document en préparation" not in page
    auth.login(clinic.coordinator)
    late = text_of(client.get("/reports/overdue"))
    assert "Document non mis en forme : la mise en forme a échoué (1 tentative(s))" in late
    assert f'href="/reports/{report.id}"' in late


def test_a_correction_waiting_for_an_original_that_fails_says_so_to_its_author_and_the_coordinator(
    client, auth, clinic, db_session, app, tmp_path
):
    """The original's rendering fails and its correction, rendered only after it (R7), is never tried: its page, its
    PDF link and the « en retard » list name the version it waits for, not « en préparation »."""
    original = reports.start_report(db_session, clinic.cardiologist, clinic.appointment)
    reports.update_draft(db_session, clinic.cardiologist, original, **WRITTEN)
    reports.sign(db_session, clinic.cardiologist, original, upload_dir=clinic.uploads, zone=ZONE)
    correction = reports.supersede(db_session, clinic.cardiologist, original)
    reports.update_draft(db_session, clinic.cardiologist, correction, conclusion="ECG normal.")
    reports.sign(db_session, clinic.cardiologist, correction, upload_dir=clinic.uploads, zone=ZONE)
    db_session.commit()
    blocked = factories.unwritable_upload_dir(tmp_path)
    assert reports.render_pending(app.extensions["hub.sessions"], upload_dir=blocked, zone=ZONE).endswith("1 échec(s)")
    auth.login(clinic.cardiologist)
    page = text_of(client.get(f"/reports/{correction.id}"))
    assert "Document en attente de la mise en forme de la version 1, dont la mise en forme échoue" in page
    assert "Document en préparation" not in page
    flashed = text_of(client.get(f"/reports/{correction.id}/pdf", follow_redirects=True))
    assert "Le document est en attente de la mise en forme de la version 1, dont la mise en forme échoue" in flashed
    auth.login(clinic.coordinator)
    late = text_of(client.get("/reports/overdue"))
    assert "Document non mis en forme : la mise en forme a échoué (1 tentative(s))" in late, "the original"
    assert "Document non mis en forme : en attente de la version 1, dont la mise en forme échoue" in late
    assert f'href="/reports/{correction.id}"' in late


def test_the_late_list_keeps_a_constant_number_of_queries(client, auth, clinic, db_session, engine):
    auth.login(clinic.coordinator)
    counts, shown = [], []
    for count, day in ((1, 17), (4, 18)):
        late_sessions(db_session, clinic, count, first_day=day)
        with count_queries(engine) as seen:
            page = client.get("/reports/overdue")
        counts.append(len(seen))
        shown.append(text_of(page).count("Compte rendu non signé"))
    assert shown[1] - shown[0] == 4
    assert counts[0] == counts[1], counts


def test_the_navigation_links(client, auth, clinic):
    auth.login(clinic.cardiologist)
    home = text_of(client.get("/"))
    assert "Ma séance" in home and "Comptes rendus en retard" not in home
    auth.login(clinic.coordinator)
    home = text_of(client.get("/"))
    assert "Comptes rendus en retard" in home and "Ma séance" not in home


def test_the_receivers_answers_show_on_the_report_page(client, auth, clinic, db_session, app):
    """The MDNs read back: the médecin traitant's copy refused (903), the IDEL's acknowledged."""
    clinic.t.idel.mssante_address = "idel@c.mssante.fr"
    db_session.commit()
    auth.login(clinic.cardiologist)
    report = start(auth, clinic)
    auth.post(f"/reports/{report.id}/edit", data=form(**WRITTEN, action="sign", copy_participants="true"))
    factories.render_signed_reports(app)
    by_address = {d.address: d for d in db_session.scalars(select(Delivery).where(Delivery.report_id == report.id))}
    deliveries.apply_dispositions(
        db_session,
        [
            SimpleNamespace(
                token=by_address["gp@cabinet.mssante.fr"].message_id, acknowledged=False, code="903", text="INS absent"
            ),
            SimpleNamespace(token=by_address["idel@c.mssante.fr"].message_id, acknowledged=True, code=None, text=None),
        ],
    )
    db_session.commit()
    page = text_of(client.get(f"/reports/{report.id}"))
    assert "Refusé par le destinataire (903 : INS absent)" in page
    assert "Professionnel participant" in page and "Acquitté" in page


def test_ma_seance_opens_on_the_next_session_day(clock, client, auth, clinic):
    """On Monday 16 November the cardiologist's next patients are on the 23rd: « Ma séance » opens there."""
    auth.login(clinic.cardiologist)
    page = text_of(client.get("/reports/session"))
    assert "Ma séance — lundi 23 novembre 2026" in page and clinic.t.patient.display_name in page
    clock.move_to(MONDAY_13H_UTC + dt.timedelta(days=1))  # the day after: no session planned any more
    auth.login(clinic.cardiologist)  # a week later, the login has long expired
    assert "Aucun patient à cette séance." in text_of(client.get("/reports/session"))


def test_the_editor_shows_the_recipients_and_signing_asks_for_a_confirmation(client, auth, clinic, db_session, app):
    auth.login(clinic.cardiologist)
    report = start(auth, clinic)
    page = text_of(client.get(f"/reports/{report.id}/edit"))
    gp_due = clinic.appointment.ends_at + dt.timedelta(hours=48)
    assert "Destinataires à la signature" in page
    assert f"Médecin traitant : {clinic.gp.professional.full_name}" in page
    assert f"{gp_due.astimezone(ZONE_INFO).day} novembre 2026" in page and "Je confirme la signature" in page

    unconfirmed = auth.post(f"/reports/{report.id}/edit", data=form(**WRITTEN, action="sign", confirm=""))
    assert unconfirmed.status_code == 422
    refused = text_of(unconfirmed)
    assert 'id="e-confirm"' in refused and "Cochez « Je confirme la signature et l'envoi »" in refused
    assert WRITTEN["conclusion"] in refused, "what was typed is shown again"
    db_session.expire_all()
    assert db_session.get(Report, report.id).state is ReportState.DRAFT and db_session.get(Report, report.id).acts == ""

    empty = text_of(auth.post(f"/reports/{report.id}/edit", data=form(action="sign")))
    assert "Actes réalisés : à remplir pour signer." in empty and "Conclusion : à remplir pour signer." in empty
    assert 'id="e-acts"' in empty and 'id="e-conclusion"' in empty

    signed = auth.post(f"/reports/{report.id}/edit", data=form(**WRITTEN, action="sign"))
    assert signed.status_code == 302
    factories.render_signed_reports(app)
    db_session.expire_all()
    (delivery,) = db_session.get(Report, report.id).deliveries
    assert delivery.due_at == gp_due, "due from the session's end, not from the signature"
