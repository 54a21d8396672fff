"""Where and when a professional works, as they say it from « Mon profil » or the API: the communes they serve
at home and the weekdays they work. The ranking of who is offered a visit reads both (workflows.idel_ranking)."""

from dataclasses import dataclass

from sqlalchemy.orm import Session

from hub import audit
from hub.errors import Forbidden, ValidationFailed
from hub.formatting import DAYS
from hub.models import CLINICAL_PROFESSIONS, Professional, User
from hub.services.communes import BY_INSEE, COMMUNES, commune_name

NOT_A_CLINICIAN = "Seul·e un·e professionnel·le de santé déclare sa zone d'intervention."
# (ISO weekday, its French name), Monday first.
WEEKDAYS = tuple(enumerate(DAYS, start=1))


@dataclass(frozen=True)
class ServiceArea:
    practice_commune: str | None
    communes: list[str]
    days: list[int]


def own_professional(user: User) -> Professional:
    """The user's clinician record: a coordinator, an admin or an account without one has no service area."""
    professional = user.professional
    if professional is None or professional.profession not in CLINICAL_PROFESSIONS:
        raise Forbidden(NOT_A_CLINICIAN)
    return professional


def service_area(professional: Professional) -> ServiceArea:
    return ServiceArea(
        practice_commune=professional.commune_insee,
        communes=professional.served_communes.split(),
        days=[int(day) for day in professional.working_days],
    )


def commune_choices() -> list[tuple[str, str]]:
    """Every listed commune as (INSEE code, name), by name: people pick a name, never a code."""
    return sorted(((c.insee, c.name) for c in COMMUNES), key=lambda choice: choice[1])


def set_service_area(
    session: Session, actor: User, professional: Professional, *, communes: list[str], days: list[int]
) -> None:
    """Replace the communes served at home and the working days; a code not listed or a day outside 1–7 is refused
    with nothing changed. The practice's commune is always served and need not be listed."""
    unknown = [code for code in communes if code not in BY_INSEE]
    errors = {}
    if unknown:
        errors["communes"] = f"Commune inconnue du territoire : {', '.join(unknown)}."
    if not days:
        errors["days"] = "Cochez au moins un jour travaillé."
    elif any(day not in range(1, 8) for day in days):
        errors["days"] = "Jour inconnu : de 1 (lundi) à 7 (dimanche)."
    if errors:
        raise ValidationFailed(errors)
    served = sorted(set(communes) - {professional.commune_insee}, key=lambda code: BY_INSEE[code].name)
    professional.served_communes = " ".join(served)
    professional.working_days = "".join(str(day) for day in sorted(set(days)))
    audit.record(
        session,
        actor=actor,
        action="professional.service_area",
        target=professional,
        cpts_id=professional.cpts_id,
        details={"communes": served, "days": professional.working_days},
    )


def summary(professional: Professional) -> dict[str, str]:
    """The profile page's sentence: the days worked and the communes served, by name."""
    area = service_area(professional)
    days = ", ".join(DAYS[day - 1] for day in area.days) or "aucun"
    communes = [area.practice_commune] if area.practice_commune else []
    names = [commune_name(code) for code in communes + area.communes]
    return {"working_days": days, "served_communes": ", ".join(names) or "aucune"}
