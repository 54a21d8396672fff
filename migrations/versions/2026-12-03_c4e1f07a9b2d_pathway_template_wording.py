"""Pathway templates: the shipped descriptions without the development notes (« (seeds 000, 004) »)

Revision ID: c4e1f07a9b2d
Revises: e3c9a1f07b2d
Create Date: 2026-12-03 23:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "c4e1f07a9b2d"
down_revision = "e3c9a1f07b2d"
branch_labels = None
depends_on = None

# code: (as shipped, as a user reads it). A description a CPTS has changed since is left as it is.
WORDING = {
    "insuffisance_cardiaque": (
        "Adressage par le médecin traitant, téléconsultation cardiologique assistée par l'IDEL, échographie en "
        "présentiel si le cardiologue la demande, suivi assisté à 3 mois (seed 004, CPTS VIVEVAL).",
        "Adressage par le médecin traitant, téléconsultation cardiologique assistée par l'IDEL, échographie en "
        "présentiel si le cardiologue la demande, suivi assisté à 3 mois.",
    ),
    "residents_ehpad": (
        "Deux téléconsultations assistées puis une consultation en présentiel, en boucle (seed 004).",
        "Deux téléconsultations assistées puis une consultation en présentiel, en boucle.",
    ),
    "post_avc": (
        "Première séance en présentiel, puis télésoin en alternance avec le présentiel : un suivi exclusivement "
        "à distance n'est pas recommandé (HAS, seed 002).",
        "Première séance en présentiel, puis télésoin en alternance avec le présentiel : un suivi exclusivement "
        "à distance n'est pas recommandé (HAS).",
    ),
    "reeducation_msk": (
        "Bilan en présentiel, télésoin en alternance avec le présentiel (seeds 000, 001).",
        "Bilan en présentiel, télésoin en alternance avec le présentiel.",
    ),
    "rehabilitation_bpco": (
        "Réentraînement à l'effort avec le kiné, en présentiel puis en télésoin, et surveillance infirmière à "
        "distance après une exacerbation (seeds 000, 004).",
        "Réentraînement à l'effort avec le kiné, en présentiel puis en télésoin, et surveillance infirmière à "
        "distance après une exacerbation.",
    ),
}

templates = sa.table("pathway_templates", sa.column("code", sa.String), sa.column("description", sa.Text))


def _reword(before: int, after: int) -> None:
    for code, texts in WORDING.items():
        op.execute(
            templates.update()
            .where(templates.c.code == code, templates.c.description == texts[before])
            .values(description=texts[after])
        )


def upgrade() -> None:
    _reword(0, 1)


def downgrade() -> None:
    _reword(1, 0)
