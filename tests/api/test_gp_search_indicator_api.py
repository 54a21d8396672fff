"""Issue 16, item 7: the list of patients without a médecin traitant on « Indicateurs » and in the API."""

from tests.workflows.test_gp_search_indicator import play


def test_on_the_page_and_in_the_api(auth, api_as, db_session, territory):
    play(db_session, territory)
    db_session.commit()
    auth.login(territory.coordinator)
    page = auth.client.get("/indicateurs?year=2026&month=12").get_data(as_text=True)
    assert "Liste des patients sans médecin traitant" in page and "Délai médian jusqu" in page
    body = api_as(territory.coordinator).get("/api/v1/indicators?year=2026&month=12").get_json()
    listed = next(i for i in body["indicators"] if i["key"] == "liste_sans_medecin_traitant")
    assert listed["rows"][1] == ["Inscriptions dans la période", 5] and listed["rows"][4][1] == 10.0
