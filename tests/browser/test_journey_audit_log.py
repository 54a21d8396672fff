"""The CPTS's administrator checks the audit chain, in Chromium (issue 17, item 1): from « Administration » to
« Journal d'audit », once the worker has chained and checkpointed the rows, « Vérifier la chaîne maintenant » (a walk
only) finds it intact; a row rewritten with the database owner's
rights is then named as a break (« Ligne réécrite ») by the next verification. axe-core on every page, 1366 and
390 px. The row is put back afterwards: the browser tests share their database."""

from types import MappingProxyType

import pytest
from sqlalchemy import select, text

from hub import audit
from hub.models import AuditEvent, AuditLink
from tests.browser.support import DESKTOP, PHONE, assert_no_horizontal_scroll, check_axe


def look(page, shoot, label: str) -> None:
    check_axe(page)
    shoot(page, label)
    page.set_viewport_size({"width": PHONE, "height": 844})
    assert_no_horizontal_scroll(page)
    check_axe(page)
    shoot(page, f"{label} telephone")
    page.set_viewport_size({"width": DESKTOP, "height": 768})


@pytest.fixture
def checkpoints(browser_app, tmp_path):
    """This test's checkpoint file: the one of the tests' configuration may attest another database's chain."""
    config = browser_app.config["HUB"]
    path = tmp_path / "audit-checkpoints.jsonl"
    browser_app.config["HUB"] = MappingProxyType({**config, "AUDIT_CHECKPOINT_FILE": str(path)})
    yield path
    browser_app.config["HUB"] = config


def set_target(sessions, event_id: int, value: str | None) -> None:
    """Rewrite one audit row as the tables' owner would (lifting the append-only trigger on PostgreSQL)."""
    with sessions.begin() as session:
        postgresql = session.get_bind().dialect.name == "postgresql"
        if postgresql:
            session.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        session.execute(
            text("UPDATE audit_events SET target_id = :value WHERE id = :id"), {"value": value, "id": event_id}
        )
        if postgresql:
            session.execute(text("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only"))


def test_the_admin_verifies_the_audit_chain_and_sees_a_rewritten_row(
    page_at, people, sessions, shoot, checkpoints, browser_app
):
    admin = page_at(DESKTOP, people.admin)
    admin.locator("nav.hub-wide").get_by_role("link", name="Administration", exact=True).click()
    admin.wait_for_url("**/admin")
    admin.get_by_role("link", name="Journal d'audit").click()
    admin.wait_for_url("**/admin/journal-audit")
    assert "Le fichier des points de contrôle n'existe pas" in admin.locator("main").inner_text()
    look(admin, shoot, "journal d'audit")

    # What the worker does every few seconds; the page only walks.
    audit.run_sequencer(sessions, key=audit.key_bytes(browser_app.config["HUB"]), checkpoint_file=checkpoints)
    admin.get_by_role("button", name="Vérifier la chaîne maintenant").click()
    admin.wait_for_url("**/admin/journal-audit")
    main = admin.locator("main").inner_text()
    assert "Chaîne intègre" in main
    assert f"par {people.admin} : chaîne intègre" in admin.locator("#audit-last-verification").inner_text()
    assert "aucun" not in admin.locator("#audit-checkpoint").inner_text()
    look(admin, shoot, "chaine integre")

    with sessions() as session:
        event_id, target, seq = session.execute(
            select(AuditEvent.id, AuditEvent.target_id, AuditLink.seq)
            .join(AuditLink, AuditLink.event_id == AuditEvent.id)
            .order_by(AuditLink.seq)
            .limit(1)
        ).one()
    set_target(sessions, event_id, "rewritten")
    try:
        admin.get_by_role("button", name="Vérifier la chaîne maintenant").click()
        admin.wait_for_url("**/admin/journal-audit")
        assert "Chaîne altérée : 1 rupture(s)" in admin.locator("main").inner_text()
        assert "chaîne altérée, 1 rupture" in admin.locator("#audit-last-verification").inner_text()
        row = admin.locator("#audit-breaks tbody tr").first.inner_text()
        assert str(seq) in row and "Ligne réécrite" in row and f"l'événement {event_id}" in row
        look(admin, shoot, "ligne reecrite")
    finally:
        set_target(sessions, event_id, target)
    admin.get_by_role("button", name="Vérifier la chaîne maintenant").click()
    admin.wait_for_url("**/admin/journal-audit")
    assert "Chaîne intègre" in admin.locator("main").inner_text()
