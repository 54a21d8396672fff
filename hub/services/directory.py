"""Organisations and professionals of a CPTS."""

from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from hub import audit
from hub.errors import NotFound, ValidationFailed
from hub.models import (
    CLINICAL_PROFESSIONS,
    Organisation,
    OrganisationKind,
    Profession,
    Professional,
    Role,
    User,
    UserRole,
    professional_organisations,
)


def create_cpts(session: Session, *, name: str, finess: str | None = None, commune_insee: str | None = None):
    cpts = Organisation(name=name, kind=OrganisationKind.CPTS, finess=finess, commune_insee=commune_insee)
    session.add(cpts)
    session.flush()  # callers attach members to the new id
    return cpts


def create_organisation(session: Session, actor, data: dict) -> Organisation:
    if data["kind"] is OrganisationKind.CPTS:
        raise ValidationFailed({"kind": "Une CPTS ne peut pas être créée depuis une autre CPTS."})
    _check_finess_free(session, data.get("finess"))
    organisation = Organisation(cpts_id=actor.cpts_id, **data)
    session.add(organisation)
    session.flush()  # the audit line names the new organisation
    audit.record(session, actor=actor, action="organisation.create", target=organisation)
    return organisation


def update_organisation(session: Session, actor, organisation: Organisation, changes: dict) -> Organisation:
    if "kind" in changes and (changes["kind"] is OrganisationKind.CPTS) != (organisation.kind is OrganisationKind.CPTS):
        raise ValidationFailed({"kind": "Une CPTS reste une CPTS, et une structure ne peut pas en devenir une."})
    if changes.get("finess") and changes["finess"] != organisation.finess:
        _check_finess_free(session, changes["finess"])
    changed = sorted(key for key, value in changes.items() if getattr(organisation, key) != value)
    for key in changed:
        setattr(organisation, key, changes[key])
    if changed:
        audit.record(
            session,
            actor=actor,
            action="organisation.update",
            target=organisation,
            details={"fields": changed},
        )
    return organisation


def _check_finess_free(session: Session, finess: str | None) -> None:
    if finess and session.scalar(select(Organisation.id).where(Organisation.finess == finess)):
        raise ValidationFailed({"finess": "Ce numéro FINESS est déjà enregistré."})


def list_organisations(session: Session, cpts_id: int, *, page=1, per_page=50):
    query = select(Organisation).where((Organisation.cpts_id == cpts_id) | (Organisation.id == cpts_id))
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.scalars(
        query.order_by(Organisation.kind, Organisation.name).limit(per_page).offset((page - 1) * per_page)
    )
    return list(rows), total


def get_organisation(session: Session, cpts_id: int, organisation_id: int) -> Organisation:
    organisation = session.get(Organisation, organisation_id)
    if organisation is None or organisation.tenant_id != cpts_id:
        raise NotFound("Structure introuvable.")
    return organisation


def _check_professional(session: Session, cpts_id: int, data: dict, *, exclude_id: int | None = None) -> None:
    errors = {}
    profession = data.get("profession")
    if profession is Profession.SPECIALIST and not data.get("specialty"):
        errors["specialty"] = "Indiquez la spécialité du médecin spécialiste."
    if profession is not Profession.COORDINATOR and not data.get("rpps"):
        errors["rpps"] = "Le numéro RPPS est obligatoire pour un professionnel de santé."
    if data.get("rpps"):
        query = select(Professional.id).where(Professional.rpps == data["rpps"])
        if exclude_id is not None:
            query = query.where(Professional.id != exclude_id)
        if session.scalar(query):
            errors["rpps"] = "Ce numéro RPPS est déjà enregistré."
    for organisation_id in data.get("organisation_ids") or []:
        organisation = session.get(Organisation, organisation_id)
        if organisation is None or organisation.tenant_id != cpts_id:
            errors["organisation_ids"] = "Structure inconnue dans la CPTS."
    if errors:
        raise ValidationFailed(errors)


def create_professional(session: Session, actor, data: dict) -> Professional:
    data = dict(data)
    _check_professional(session, actor.cpts_id, data)
    organisation_ids = data.pop("organisation_ids", None) or []
    professional = Professional(cpts_id=actor.cpts_id, **data)
    professional.organisations = [session.get_one(Organisation, i) for i in organisation_ids]  # checked above
    session.add(professional)
    session.flush()  # the audit line names the new professional
    audit.record(session, actor=actor, action="professional.create", target=professional)
    return professional


def update_professional(session: Session, actor, professional: Professional, changes: dict) -> Professional:
    merged = {
        "profession": professional.profession,
        "specialty": professional.specialty,
        "rpps": professional.rpps,
        **changes,
    }
    _check_professional(session, professional.cpts_id, merged, exclude_id=professional.id)
    changes = dict(changes)
    changed = []
    if "organisation_ids" in changes:
        ids = changes.pop("organisation_ids") or []
        if sorted(ids) != sorted(o.id for o in professional.organisations):
            professional.organisations = [session.get_one(Organisation, i) for i in ids]  # checked above
            changed.append("organisation_ids")
    for key, value in changes.items():
        if getattr(professional, key) != value:
            setattr(professional, key, value)
            changed.append(key)
    if changed:
        audit.record(
            session,
            actor=actor,
            action="professional.update",
            target=professional,
            details={"fields": sorted(changed)},
        )
    return professional


def list_professionals(session: Session, cpts_id: int, *, profession=None, text=None, page=1, per_page=50):
    query = select(Professional).where(Professional.cpts_id == cpts_id)
    if profession:
        query = query.where(Professional.profession == profession)
    if text:
        pattern = f"%{text.strip().upper()}%"
        query = query.where(
            func.upper(Professional.last_name).like(pattern) | func.upper(Professional.first_name).like(pattern)
        )
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = session.scalars(
        query.options(selectinload(Professional.organisations))
        .order_by(Professional.last_name, Professional.first_name, Professional.id)
        .limit(per_page)
        .offset((page - 1) * per_page)
    )
    return list(rows), total


def get_professional(session: Session, cpts_id: int, professional_id: int) -> Professional:
    professional = session.get(Professional, professional_id)
    if professional is None or professional.cpts_id != cpts_id:
        raise NotFound("Professionnel introuvable.")
    return professional


def general_practitioners(session: Session, cpts_id: int) -> list[Professional]:
    return list(
        session.scalars(
            select(Professional)
            .where(Professional.cpts_id == cpts_id, Professional.profession == Profession.GENERAL_PRACTITIONER)
            .order_by(Professional.last_name)
        )
    )


def all_organisations(session: Session, cpts_id: int) -> list[Organisation]:
    """The CPTS and every structure of it, unpaginated (for choice lists), the CPTS first."""
    return list(
        session.scalars(
            select(Organisation)
            .where((Organisation.cpts_id == cpts_id) | (Organisation.id == cpts_id))
            .order_by(Organisation.cpts_id.is_not(None), Organisation.name)
        )
    )


def active_clinicians(session: Session, cpts_id: int, *, professions=CLINICAL_PROFESSIONS) -> list[Professional]:
    """The active health professionals (coordinators excluded) of a CPTS, of the given professions, by name."""
    return list(
        session.scalars(
            select(Professional)
            .where(
                Professional.cpts_id == cpts_id,
                Professional.is_active.is_(True),
                Professional.profession.in_(professions),
            )
            .order_by(Professional.last_name, Professional.first_name)
        )
    )


def coordinators_by_cpts(session: Session, cpts_ids: Iterable[int] | None = None) -> dict[int, list[Professional]]:
    """Who the coordination is, for the alerts it receives: per CPTS (all of them when `cpts_ids` is None),
    the active professionals behind an active account with the coordinator role, by id."""
    query = (
        select(User.cpts_id, Professional)
        .join(UserRole, UserRole.user_id == User.id)
        .join(Professional, Professional.id == User.professional_id)
        .where(UserRole.role == Role.COORDINATOR, User.is_active.is_(True), Professional.is_active.is_(True))
        .order_by(Professional.id)
    )
    if cpts_ids is not None:
        query = query.where(User.cpts_id.in_(list(cpts_ids)))
    coordinators: dict[int, list[Professional]] = {}
    for cpts_id, professional in session.execute(query):
        coordinators.setdefault(cpts_id, []).append(professional)
    return coordinators


def officine_pharmacists(session: Session, organisation_id: int) -> list[Professional]:
    """The officine's active pharmacists who accompany teleconsultations, by name: who assists its patients."""
    return list(
        session.scalars(
            select(Professional)
            .join(professional_organisations, professional_organisations.c.professional_id == Professional.id)
            .where(
                professional_organisations.c.organisation_id == organisation_id,
                Professional.profession == Profession.PHARMACIST,
                Professional.is_active.is_(True),
                Professional.accompanies_teleconsultation.is_(True),
            )
            .order_by(Professional.last_name, Professional.first_name, Professional.id)
        )
    )
