"""The tariff table as the admin edits it: the versions of each code, and a new version from a date.

History is never edited in place: a new version closes the open one on the day before it starts, and a
version that would overlap another, or reprice acts already valued, is refused.
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from hub import audit
from hub.errors import ValidationFailed
from hub.formatting import french_date
from hub.models import FeeEntry, Tariff, TariffUnit


@dataclass(frozen=True)
class TariffCode:
    code: str
    versions: list[Tariff]  # the newest first

    @property
    def current(self) -> Tariff:
        return self.versions[0]


def tariff_history(session: Session) -> list[TariffCode]:
    """Every code with its versions, newest first: one query."""
    codes: dict[str, list[Tariff]] = {}
    for tariff in session.scalars(select(Tariff).order_by(Tariff.code, Tariff.effective_from.desc())):
        codes.setdefault(tariff.code, []).append(tariff)
    return [TariffCode(code, versions) for code, versions in codes.items()]


def list_tariffs(
    session: Session, *, code: str | None = None, page: int = 1, per_page: int = 50
) -> tuple[list[Tariff], int]:
    conditions = [Tariff.code == code] if code else []
    total = session.execute(select(func.count(Tariff.id)).where(*conditions)).scalar_one()
    rows = session.scalars(
        select(Tariff)
        .where(*conditions)
        .order_by(Tariff.code, Tariff.effective_from)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return list(rows), total


def add_version(session: Session, actor, *, code: str, label: str, amount: Decimal, effective_from: dt.date) -> Tariff:
    """A new price for `code` from `effective_from`; the rule parameters (unit, block, caps, profession)
    carry over from the latest version. The open version ends the day before."""
    latest = session.scalar(
        select(Tariff).where(Tariff.code == code).order_by(Tariff.effective_from.desc()).limit(1).with_for_update()
    )
    if latest is not None:
        _check_follows(session, latest, effective_from)
        if latest.effective_until is None:
            latest.effective_until = effective_from - dt.timedelta(days=1)
    tariff = Tariff(
        code=code,
        label=label,
        amount=amount,
        effective_from=effective_from,
        unit=latest.unit if latest else TariffUnit.ACT,
        profession=latest.profession if latest else None,
        block_size=latest.block_size if latest else None,
        yearly_cap_amount=latest.yearly_cap_amount if latest else None,
        yearly_cap_per_patient=latest.yearly_cap_per_patient if latest else None,
    )
    session.add(tariff)
    session.flush()  # the audit line names the new version
    audit.record(
        session,
        actor=actor,
        action="tariff.add_version",
        target=tariff,
        details={"code": code, "amount": str(amount), "effective_from": effective_from.isoformat()},
    )
    return tariff


def _check_follows(session: Session, latest: Tariff, effective_from: dt.date) -> None:
    if effective_from <= latest.effective_from:
        raise ValidationFailed(
            {
                "effective_from": f"La version en vigueur de {latest.code} commence le "
                f"{french_date(latest.effective_from)} : une nouvelle version doit commencer après "
                "(l'historique ne se modifie pas)."
            }
        )
    if latest.effective_until is not None and effective_from <= latest.effective_until:
        raise ValidationFailed(
            {
                "effective_from": f"Cette version chevaucherait la précédente, en vigueur jusqu'au "
                f"{french_date(latest.effective_until)} : choisissez une date postérieure."
            }
        )
    valued = session.scalar(
        select(func.count(FeeEntry.id)).where(FeeEntry.tariff_id == latest.id, FeeEntry.act_on >= effective_from)
    )
    if valued:
        raise ValidationFailed(
            {
                "effective_from": f"{valued} acte(s) {latest.code} datés du {french_date(effective_from)} ou après "
                "sont déjà valorisés au tarif en vigueur : choisissez une date postérieure au dernier acte."
            }
        )
