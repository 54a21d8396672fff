"""Issue 16, item 7, through the pages: the coordinator enters a patient without a médecin traitant, sees the list
triaged by fragility and proposes the patient to the nearest GP with places; the GP declares capacity and answers
from the desk."""

import datetime as dt

from sqlalchemy import select

from hub.models import GpProposal, GpSearch, GpSearchState, Patient, Profession, Professional
from tests import factories

VERGT, CHALAGNAC, BERGERAC = "24571", "24094", "24037"
TODAY = factories.now().astimezone(factories.PARIS).date()


def text(response) -> str:
    return response.get_data(as_text=True)


def test_the_coordinator_enters_triages_and_proposes(auth, db_session, cpts, coordinator):
    near = factories.clinician(
        db_session, cpts, Profession.GENERAL_PRACTITIONER, commune_insee=CHALAGNAC, new_patient_capacity=2
    )
    far = factories.clinician(
        db_session, cpts, Profession.GENERAL_PRACTITIONER, commune_insee=BERGERAC, new_patient_capacity=1
    )
    frail = factories.patient(db_session, cpts, birth_date=dt.date(1935, 3, 1), commune_insee=VERGT)
    other = factories.patient(db_session, cpts, birth_date=dt.date(1990, 3, 1), commune_insee=VERGT)
    db_session.commit()
    auth.login(coordinator)

    page = text(auth.client.get("/patients-sans-medecin"))
    assert "Finalité" in page and f'<option value="{frail.id}"' in page and "Aucun patient en attente" in page
    # Reached from the coordinator's desk (the menu is full): the tile's count and the entry form's link.
    assert 'href="/patients-sans-medecin#inscrire">Inscrire un patient sur la liste</a>' in text(auth.client.get("/"))

    refused = auth.post("/patients-sans-medecin", data={"patient_id": frail.id, "consent_method": "oral"})
    assert refused.status_code == 422 and 'id="e-consent_on"' in text(refused)
    assert db_session.scalars(select(GpSearch)).all() == []

    form = {"consent_on": TODAY.isoformat(), "consent_method": "oral"}
    auth.post("/patients-sans-medecin", data=form | {"patient_id": other.id})
    entered = auth.post(
        "/patients-sans-medecin",
        data=form | {"patient_id": frail.id, "has_ald": "true", "chronic_conditions": "bpco", "is_isolated": "true"},
    )
    assert entered.status_code == 302
    search = db_session.scalar(select(GpSearch).where(GpSearch.patient_id == frail.id))

    listing = text(auth.client.get("/patients-sans-medecin"))
    assert listing.index(frail.display_name) < listing.index(other.display_name), "the most fragile first"
    assert "Priorité haute : 1" in listing and "Priorité basse : 1" in listing
    assert "ALD, BPCO ou insuffisance respiratoire, isolement" in listing and "Proposer à un médecin" in listing
    assert f'<option value="{frail.id}"' not in listing, "already on the list"

    detail = text(auth.client.get(f"/patients-sans-medecin/{search.id}"))
    assert detail.index(near.professional.full_name) < detail.index(far.professional.full_name), "nearest first"
    assert "2 places" in detail and "Recueilli le" in detail
    proposed = auth.post(f"/patients-sans-medecin/{search.id}/proposer", data={"gp_id": near.professional_id})
    assert proposed.status_code == 302
    again = auth.post(f"/patients-sans-medecin/{search.id}/proposer", data={"gp_id": near.professional_id})
    assert again.status_code == 409 and "déjà proposé" in text(again)
    detail = text(auth.client.get(f"/patients-sans-medecin/{search.id}"))
    assert f"Attendre la réponse de {near.professional.full_name}" in detail
    assert f'value="{near.professional_id}"' not in detail, "not proposed twice to the same GP"
    desk = text(auth.client.get("/"))
    assert '<span class="fs-3 fw-bold">2</span> patients en attente' in desk
    assert "Dont 1 à proposer à un médecin." in desk


def test_the_gp_declares_capacity_and_accepts_or_refuses_from_the_desk(auth, db_session, cpts, coordinator):
    doctor = factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER, commune_insee=VERGT)
    db_session.commit()
    auth.login(doctor)
    assert 'value="0"' in text(auth.client.get("/patients-sans-medecin/capacite"))
    assert auth.post("/patients-sans-medecin/capacite", data={"capacity": "-2"}).status_code == 422
    assert auth.post("/patients-sans-medecin/capacite", data={"capacity": "2"}).status_code == 302
    db_session.expire_all()
    assert db_session.get(Professional, doctor.professional_id).new_patient_capacity == 2
    profile = text(auth.client.get("/me"))
    assert "J'accepte <strong>2</strong> nouveaux patients médecin traitant." in profile
    assert 'href="/patients-sans-medecin/capacite"' in profile

    from workflows import gp_matching

    consent = {"consent_on": TODAY, "consent_method": "oral"}
    proposals = []
    for _ in range(2):
        patient = factories.patient(db_session, cpts, commune_insee=VERGT)
        search = gp_matching.enter(db_session, coordinator, patient, consent, now=factories.now())
        proposals.append(gp_matching.propose(db_session, coordinator, search, doctor.professional, now=factories.now()))
    db_session.commit()
    first, second = proposals

    desk = text(auth.client.get("/"))
    assert "Patients proposés" in desk and 'Vous acceptez <span class="fw-bold">2</span> nouveaux patients' in desk
    assert f'id="proposition-{first.id}"' in desk and f'id="proposition-{second.id}"' in desk

    assert auth.post(f"/patients-sans-medecin/propositions/{first.id}/accepter").status_code == 302
    no_reason = auth.post(f"/patients-sans-medecin/propositions/{second.id}/refuser", data={})
    assert no_reason.status_code == 303
    assert (
        auth.post(f"/patients-sans-medecin/propositions/{second.id}/refuser", data={"reason": "Complet"}).status_code
        == 302
    )

    db_session.expire_all()
    assert db_session.get(Patient, first.search.patient_id).attending_gp_id == doctor.professional_id
    assert db_session.get(Professional, doctor.professional_id).new_patient_capacity == 1
    states = {p.id: (p.state.value, p.reason) for p in db_session.scalars(select(GpProposal))}
    assert states == {first.id: ("acceptee", None), second.id: ("refusee", "Complet")}
    assert db_session.get(GpSearch, second.search_id).state is GpSearchState.WAITING
    desk = text(auth.client.get("/"))
    assert "Aucun patient proposé en attente de votre réponse." in desk


def test_withdrawal_from_the_page_is_traced_and_a_stranger_meets_404(auth, db_session, cpts, coordinator):
    from workflows import gp_matching

    patient = factories.patient(db_session, cpts)
    search = gp_matching.enter(
        db_session, coordinator, patient, {"consent_on": TODAY, "consent_method": "written"}, now=factories.now()
    )
    db_session.commit()
    auth.login(coordinator)
    refused = auth.post(f"/patients-sans-medecin/{search.id}/retirer", data={"outcome": "retire"})
    assert refused.status_code == 422 and 'id="e-reason"' in text(refused)
    done = auth.post(f"/patients-sans-medecin/{search.id}/retirer", data={"outcome": "retire", "reason": "Refus"})
    assert done.status_code == 302
    db_session.expire_all()
    assert db_session.get(GpSearch, search.id).state is GpSearchState.WITHDRAWN
    assert "Retiré de la liste" in text(auth.client.get(f"/patients-sans-medecin/{search.id}"))
    stranger = factories.coordinator(db_session, factories.cpts(db_session))
    db_session.commit()
    auth.login(stranger)
    assert auth.client.get(f"/patients-sans-medecin/{search.id}").status_code == 404


def test_accepting_without_a_place_left_says_so_and_changes_nothing(auth, db_session, cpts, coordinator):
    from workflows import gp_matching

    doctor = factories.clinician(db_session, cpts, Profession.GENERAL_PRACTITIONER, new_patient_capacity=1)
    patient = factories.patient(db_session, cpts)
    search = gp_matching.enter(
        db_session, coordinator, patient, {"consent_on": TODAY, "consent_method": "oral"}, now=factories.now()
    )
    proposal = gp_matching.propose(db_session, coordinator, search, doctor.professional, now=factories.now())
    doctor.professional.new_patient_capacity = 0  # the last place went elsewhere meanwhile
    db_session.commit()
    auth.login(doctor)
    answer = auth.post(f"/patients-sans-medecin/propositions/{proposal.id}/accepter")
    assert answer.status_code == 303
    assert "plus de place pour un nouveau patient" in text(auth.client.get("/"))
    db_session.expire_all()
    assert db_session.get(Patient, patient.id).attending_gp_id is None
    assert db_session.get(GpSearch, search.id).state is GpSearchState.WAITING
