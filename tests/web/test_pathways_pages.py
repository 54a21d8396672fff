import datetime as dt

import pytest
from sqlalchemy import event, func, select

from hub.db import utcnow
from hub.models import CarePathway, EligibilityAssessment, PathwayTemplate, Role, StepState
from tests import ZONE, factories
from workflows import pathways


@pytest.fixture
def patient(db_session, cpts, gp):
    row = factories.patient(db_session, cpts, attending_gp_id=gp.professional_id, birth_date=dt.date(1950, 2, 2))
    db_session.commit()
    return row


def template_id(session, code="insuffisance_cardiaque") -> int:
    return session.scalar(
        select(PathwayTemplate.id).where(PathwayTemplate.cpts_id.is_(None), PathwayTemplate.code == code)
    )


def test_the_gp_starts_a_pathway_from_the_record_and_sees_its_timeline(auth, client, db_session, gp, patient):
    auth.login(gp)
    page = client.get(f"/patients/{patient.id}")
    assert "Parcours de soins" in page.text and "Démarrer un parcours" in page.text
    response = auth.post(
        f"/patients/{patient.id}/parcours", data={"template_id": template_id(db_session), "started_on": "2026-12-01"}
    )
    assert response.status_code == 302
    page = client.get(f"/patients/{patient.id}")
    assert "Parcours démarré." in page.text
    assert "Téléconsultation cardiologique assistée" in page.text and "Sauter l'étape" in page.text


def test_a_step_is_skipped_with_its_reason_and_refused_without(auth, client, db_session, gp, patient):
    pathway = pathways.start(
        db_session,
        gp,
        patient=patient,
        template=db_session.get(PathwayTemplate, template_id(db_session)),
        started_on=dt.date(2026, 12, 1),
    )
    db_session.commit()
    auth.login(gp)
    url = f"/parcours/{pathway.id}/etapes/{pathway.steps[2].id}/sauter"
    auth.post(url, data={})
    assert "Ce champ est obligatoire." in client.get(f"/patients/{patient.id}").text
    db_session.expire_all()
    assert db_session.get(CarePathway, pathway.id).steps[2].state is StepState.PLANNED
    auth.post(url, data={"reason": "Non demandée par le cardiologue"})
    db_session.expire_all()
    step = db_session.get(CarePathway, pathway.id).steps[2]
    assert step.state is StepState.SKIPPED and step.skip_reason == "Non demandée par le cardiologue"


def test_the_eligibility_checklist_is_accessible_and_records_the_alternative(auth, client, db_session, gp, patient):
    auth.login(gp)
    url = f"/patients/{patient.id}/eligibilite"
    page = client.get(url)
    assert page.status_code == 200 and page.text.count("<fieldset") >= 8 and "<legend" in page.text
    refused = auth.post(url, data={"modality": "telesoin", "profession": "infirmier"})
    assert refused.status_code == 422 and "Répondez à cette question." in refused.text
    assert db_session.scalar(select(func.count()).select_from(EligibilityAssessment)) == 0
    answers = {
        "modality": "telesoin",
        "profession": "infirmier",
        "act_kind": "follow_up",
        "clinical_situation_compatible": "true",
        "can_communicate_remotely": "true",
        "can_use_tools": "true",
        "physical_factors_ok": "true",
        "psychological_factors_ok": "true",
        "social_factors_ok": "true",
        "needs_direct_contact": "true",
        "needs_equipment_not_at_hand": "false",
        "is_first_care": "false",
        "alternative": "home_visit",
    }
    done = auth.post(url, data=answers)
    assert done.status_code == 302
    page = client.get(done.headers["Location"])
    assert "Non éligible" in page.text and "Déplacement à domicile" in page.text
    assert "contact direct" in page.text


def test_the_coordinators_queue_lists_the_next_due_steps(auth, client, db_session, coordinator, patient):
    pathways.start(
        db_session,
        coordinator,
        patient=patient,
        template=db_session.get(PathwayTemplate, template_id(db_session)),
        started_on=pathways.today(ZONE),
    )
    db_session.commit()
    auth.login(coordinator)
    page = client.get("/parcours/a-programmer")
    assert page.status_code == 200 and "Adressage par le médecin traitant" in page.text
    assert "Téléconsultation cardiologique assistée" in page.text  # due in 14 days: within the horizon
    assert "Échocardiographie" not in page.text


def _count_page_queries(client, engine, url) -> int:
    count = 0

    def counter(*_args):
        nonlocal count
        count += 1

    event.listen(engine, "before_cursor_execute", counter)
    try:
        assert client.get(url).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", counter)
    return count


@pytest.mark.parametrize("url", ["/patients/{patient_id}", "/parcours/a-programmer"])
def test_the_record_and_the_queue_keep_a_constant_number_of_queries(
    auth, client, db_session, engine, cpts, coordinator, patient, url
):
    template = db_session.get(PathwayTemplate, template_id(db_session))
    auth.login(coordinator)
    counts = []
    for target in (1, 8):  # 4 steps, then 32
        while len(pathways.pathways_of(db_session, patient.id)) < target:
            pathways.start(db_session, coordinator, patient=patient, template=template, started_on=pathways.today(ZONE))
            pathways.start(
                db_session,
                coordinator,
                patient=factories.patient(db_session, cpts),
                template=template,
                started_on=pathways.today(ZONE),
            )
        db_session.commit()
        counts.append(_count_page_queries(client, engine, url.format(patient_id=patient.id)))
    assert counts[0] == counts[1]


def test_an_admin_copies_a_shipped_template_and_edits_its_steps(auth, client, db_session, cpts):
    admin = factories.user(db_session, cpts, Role.ADMIN)
    db_session.commit()
    auth.login(admin)
    shipped = client.get("/admin/parcours").text
    assert "Copier dans la CPTS" in shipped and "suivi assisté à 3 mois." in shipped
    assert "seed" not in shipped.lower(), "no development notes shown to users"
    response = auth.post(
        "/admin/parcours/copier", data={"source_id": template_id(db_session, "post_avc"), "code": "avc_cpts"}
    )
    assert response.status_code == 302
    edit_url = response.headers["Location"]
    page = client.get(edit_url)
    assert page.status_code == 200 and "Bilan et première séance en présentiel" in page.text
    remote_first = {
        "row_count": "1",
        "steps-0-name": "Télésoin",
        "steps-0-modality": "telesoin",
        "steps-0-profession": "masseur_kinesitherapeute",
    }
    refused = auth.post(edit_url, data=remote_first)
    assert refused.status_code == 422 and "présentiel" in refused.text
    rows = {
        "row_count": "3",
        "steps-0-name": "Bilan",
        "steps-0-modality": "in_person",
        "steps-0-profession": "masseur_kinesitherapeute",
        "steps-1-name": "Télésoin",
        "steps-1-modality": "telesoin",
        "steps-1-profession": "masseur_kinesitherapeute",
        "steps-1-interval_days": "7",
        "steps-2-name": "",
    }
    assert auth.post(edit_url, data=rows).status_code == 302
    copy = db_session.scalar(select(PathwayTemplate).where(PathwayTemplate.code == "avc_cpts"))
    db_session.refresh(copy)
    assert [(s.name, s.interval_days) for s in copy.steps] == [("Bilan", 0), ("Télésoin", 7)]
    shipped_edit = auth.post(f"/admin/parcours/{template_id(db_session, 'post_avc')}/etapes", data=rows)
    assert shipped_edit.status_code == 422 and "Un modèle livré ne se modifie pas" in shipped_edit.text


def test_the_coordinator_books_a_due_step_into_a_slot_of_its_modality(auth, client, db_session, cpts, coordinator):
    from hub.models import Appointment, Profession

    cardiologist = factories.professional(db_session, cpts, Profession.SPECIALIST)
    program = factories.program(db_session, cpts, performer=cardiologist)
    now = utcnow()
    slot = factories.slot(db_session, program, now + dt.timedelta(days=14))  # when the step is due
    patient = factories.consenting_patient(db_session, cpts, recorded_by=coordinator, eligible=False)
    pathway = pathways.start(
        db_session,
        coordinator,
        patient=patient,
        template=db_session.get(PathwayTemplate, template_id(db_session)),
        started_on=now.date(),
    )
    teleconsultation = next(s for s in pathway.steps if s.modality.value == "assisted_teleconsultation")
    db_session.commit()
    auth.login(coordinator)
    assert "Programmer</a>" in client.get(f"/parcours/a-programmer?until={(now + dt.timedelta(days=90)).date()}").text
    url = f"/parcours/{pathway.id}/etapes/{teleconsultation.id}/programmer"
    page = client.get(url)
    assert page.status_code == 200 and f'value="{slot.id}"' in page.text

    refused = auth.post(url, data={"slot_id": slot.id, "place_kind": "lieu_dedie"})
    assert refused.status_code == 422, "no eligibility checklist yet: nothing is booked"
    assert "Vérifier l'éligibilité de ce patient (liste HAS)</a>" in refused.text
    assert db_session.scalar(select(func.count(Appointment.id)).where(Appointment.patient_id == patient.id)) == 0

    factories.eligible_for_remote_care(db_session, patient, assessed_by=coordinator)
    db_session.commit()
    assert auth.post(url, data={"slot_id": slot.id, "place_kind": "lieu_dedie"}).status_code == 302
    db_session.expire_all()
    step = db_session.get(CarePathway, pathway.id).steps[teleconsultation.position - 1]
    assert step.state is StepState.BOOKED and step.appointment_id is not None
    assert db_session.get(Appointment, step.appointment_id).slot_id == slot.id
    again = auth.post(url, data={"slot_id": slot.id, "place_kind": "lieu_dedie"})
    assert again.status_code == 422, "a booked step is not booked twice"


def test_an_in_person_step_has_no_slot_to_offer(auth, client, db_session, coordinator, patient):
    pathway = pathways.start(
        db_session,
        coordinator,
        patient=patient,
        template=db_session.get(PathwayTemplate, template_id(db_session)),
        started_on=dt.date(2026, 12, 1),
    )
    db_session.commit()
    auth.login(coordinator)
    page = client.get(f"/parcours/{pathway.id}/etapes/{pathway.steps[0].id}/programmer")
    assert page.status_code == 200 and "Aucun créneau libre" in page.text
