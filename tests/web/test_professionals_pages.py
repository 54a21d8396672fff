from hub.models import Profession, Role
from tests import factories


def test_directory_lists_the_cpts_professionals(auth, db_session, cpts, nurse):
    gp = factories.professional(
        db_session,
        cpts,
        Profession.GENERAL_PRACTITIONER,
        last_name="Généraliste",
        mssante_address="g.generaliste@medecin.mssante.fr",
        phone="0553112233",
        commune_insee="24037",
    )
    kine = factories.professional(
        db_session, cpts, Profession.PHYSIOTHERAPIST, last_name="Kinésithérapeute", does_telesoin=True
    )
    foreign = factories.professional(db_session, factories.cpts(db_session), last_name="Étranger")
    db_session.commit()
    auth.login(nurse)
    response = auth.client.get("/professionals")
    body = response.get_data(as_text=True)
    assert response.status_code == 200 and "Annuaire des professionnels" in body
    assert gp.full_name in body and "Médecin généraliste" in body and "g.generaliste@medecin.mssante.fr" in body
    assert "05 53 11 22 33" in body and "Bergerac" in body, "a phone in pairs, a commune by its name"
    assert "0553112233" not in body and "24037" not in body
    assert kine.full_name in body and "Télésoin" in body
    assert foreign.full_name not in body
    assert "Nouveau professionnel" not in body, "only for those who manage the directory"


def test_directory_filters(auth, db_session, cpts, nurse):
    gp = factories.professional(db_session, cpts, Profession.GENERAL_PRACTITIONER, last_name="Dupont")
    kine = factories.professional(db_session, cpts, Profession.PHYSIOTHERAPIST, last_name="Dupuis")
    db_session.commit()
    auth.login(nurse)
    body = auth.client.get("/professionals", query_string={"profession": "medecin_generaliste"}).get_data(as_text=True)
    assert gp.full_name in body and kine.full_name not in body
    assert '<option value="medecin_generaliste" selected>' in body
    body = auth.client.get("/professionals", query_string={"q": "dupuis"}).get_data(as_text=True)
    assert kine.full_name in body and gp.full_name not in body


def test_unknown_profession_filter_is_explained(auth, nurse):
    auth.login(nurse)
    response = auth.client.get("/professionals", query_string={"profession": "sorcier"})
    assert response.status_code == 200
    assert "Valeur inconnue" in response.get_data(as_text=True)


def test_directory_is_paginated(auth, app, db_session, cpts, nurse):
    per_page = app.config["HUB"]["API_PAGE_SIZE"]
    for index in range(per_page):
        factories.professional(db_session, cpts, last_name=f"Zz{index:03d}")
    db_session.commit()
    auth.login(nurse)
    first = auth.client.get("/professionals").get_data(as_text=True)
    assert "Page 1 sur 2" in first and "page=2" in first
    second = auth.client.get("/professionals", query_string={"page": 2}).get_data(as_text=True)
    assert "Page 2 sur 2" in second and "ZZ049" in second and "ZZ000" not in second


def test_professional_page(auth, db_session, cpts, nurse):
    msp = factories.organisation(db_session, cpts, name="MSP du Bourg")
    cardiologist = factories.professional(
        db_session, cpts, Profession.SPECIALIST, accompanies_teleconsultation=True, organisations=[msp]
    )
    db_session.commit()
    auth.login(nurse)
    body = auth.client.get(f"/professionals/{cardiologist.id}").get_data(as_text=True)
    assert cardiologist.full_name in body and "Médecin spécialiste (Cardiologie)" in body
    assert cardiologist.rpps in body and "MSP du Bourg" in body


def test_another_cpts_professional_is_not_found(auth, db_session, nurse):
    foreign = factories.professional(db_session, factories.cpts(db_session))
    db_session.commit()
    auth.login(nurse)
    assert auth.client.get(f"/professionals/{foreign.id}").status_code == 404


def test_admin_sees_edit_links(auth, db_session, cpts):
    pro = factories.professional(db_session, cpts)
    auth.login(factories.user(db_session, cpts, Role.ADMIN))
    body = auth.client.get(f"/professionals/{pro.id}").get_data(as_text=True)
    assert f"/admin/professionals/{pro.id}/edit" in body
    assert "Nouveau professionnel" in auth.client.get("/professionals").get_data(as_text=True)
