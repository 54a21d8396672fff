"""Administration of a CPTS: its structures, its professionals, its accounts. Every object is looked up
within the administrator's own CPTS, so that another CPTS's id is a 404."""

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user

from hub.auth.permissions import Permission
from hub.formatting import french_datetime
from hub.http.access import access
from hub.http.inputs import page_number
from hub.http.request import db
from hub.models import ORGANISATION_KIND_LABELS, PROFESSION_LABELS, ROLE_LABELS, OrganisationKind
from hub.schemas.account import LoginSettingsForm, PasswordForm, UserForm
from hub.schemas.directory import OrganisationForm, ProfessionalForm
from hub.services import accounts, audit_chain, directory, psc
from hub.web.pages import page_size, submit

bp = Blueprint("admin", __name__, url_prefix="/admin")

# A CPTS is a tenant, created with the hub's installation, never from within another CPTS.
KIND_CHOICES = [
    (kind.value, label) for kind, label in ORGANISATION_KIND_LABELS.items() if kind is not OrganisationKind.CPTS
]
PROFESSIONAL_FIELDS = tuple(ProfessionalForm().fields)


@bp.context_processor
def labels():
    return {
        "KIND_CHOICES": KIND_CHOICES,
        "ORGANISATION_KIND_LABELS": ORGANISATION_KIND_LABELS,
        "PROFESSION_LABELS": PROFESSION_LABELS,
        "ROLE_LABELS": ROLE_LABELS,
    }


@bp.get("")
@access(Permission.USERS_MANAGE)
def index():
    return render_template("admin/index.html")


# --- login settings ------------------------------------------------------------------------------------------


@bp.route("/login-settings", methods=["GET", "POST"])
@access(Permission.USERS_MANAGE)
def login_settings():
    enabled = bool(current_app.config["HUB"]["PSC_ENABLED"])
    settings = psc.login_settings(db(), current_user.cpts_id, psc_enabled=enabled)
    if request.method == "GET":
        return render_template("admin/login_settings.html", settings=settings, values=settings, errors={})
    _, values, errors = submit(
        LoginSettingsForm(),
        lambda data: psc.set_password_refused_to_psc_users(
            db(), current_user, current_user.cpts_id, refused=data["password_refused_to_psc_users"]
        ),
    )
    if errors:
        return render_template("admin/login_settings.html", settings=settings, values=values, errors=errors), 422
    flash("Réglages de connexion enregistrés.", "success")
    return redirect(url_for("admin.login_settings"))


# --- the audit chain ---------------------------------------------------------------------------------------


@bp.get("/journal-audit")
@access(Permission.AUDIT_CHAIN_VERIFY)
def audit_log():
    state = audit_chain.chain_state(db(), current_app.config["HUB"], cpts_id=current_user.cpts_id)
    return render_template("admin/audit_log.html", state=state, pending_age=audit_chain.oldest_pending_age(state))


@bp.post("/journal-audit/verifier")
@access(Permission.AUDIT_CHAIN_VERIFY)
def verify_audit_log():
    run = audit_chain.verify_for(db(), current_user, current_app.extensions["hub.sessions"], current_app.config["HUB"])
    waiting = f" {run.result.pending} ligne(s) en attente, que le worker enchaîne." if run.result.pending else ""
    if run.intact:
        seconds = f"{run.seconds:.1f}".replace(".", ",")
        flash(f"Chaîne intègre : {run.result.length} lignes vérifiées en {seconds} s.{waiting}", "success")
    elif run.result.breaks:
        flash(f"Chaîne altérée : {len(run.result.breaks)} rupture(s), détaillées ci-dessous.{waiting}", "danger")
    elif (stalled_since := run.result.stalled_since) is not None:
        since = french_datetime(stalled_since, current_app.config["HUB"]["TIMEZONE"])
        flash(
            f"Enchaînement arrêté : les {run.result.length} lignes enchaînées sont intègres, mais "
            f"{run.result.pending} ligne(s) attendent depuis {since}, hors de la protection de la chaîne. "
            "Vérifiez que le worker tourne (flask hub worker).",
            "danger",
        )
    return redirect(url_for("admin.audit_log"))


# --- structures ------------------------------------------------------------------------------------------


@bp.get("/organisations")
@access(Permission.ORGANISATIONS_MANAGE)
def organisations():
    return _organisations_page()


@bp.post("/organisations")
@access(Permission.ORGANISATIONS_MANAGE)
def create_organisation():
    organisation, values, errors = submit(
        OrganisationForm(), lambda data: directory.create_organisation(db(), current_user, data)
    )
    if organisation is None:
        return _organisations_page(values, errors, status=422)
    flash(f"Structure « {organisation.name} » créée.", "success")
    return redirect(url_for("admin.organisations"))


@bp.route("/organisations/<int:organisation_id>/edit", methods=["GET", "POST"])
@access(Permission.ORGANISATIONS_MANAGE)
def edit_organisation(organisation_id: int):
    organisation = directory.get_organisation(db(), current_user.cpts_id, organisation_id)
    if request.method == "GET":
        values = {key: getattr(organisation, key) for key in ("name", "kind", "finess", "commune_insee")}
        return render_template("admin/organisation_edit.html", organisation=organisation, values=values, errors={})
    _, values, errors = submit(
        OrganisationForm(),
        lambda data: directory.update_organisation(db(), current_user, organisation, data),
        partial=True,
    )
    if errors:
        return render_template(
            "admin/organisation_edit.html", organisation=organisation, values=values, errors=errors
        ), 422
    flash(f"Structure « {organisation.name} » mise à jour.", "success")
    return redirect(url_for("admin.organisations"))


def _organisations_page(values=None, errors=None, *, status: int = 200):
    page = page_number()
    rows, total = directory.list_organisations(db(), current_user.cpts_id, page=page, per_page=page_size())
    context = {"organisations": rows, "total": total, "page": page, "per_page": page_size()}
    return render_template("admin/organisations.html", values=values or {}, errors=errors or {}, **context), status


# --- professionals ---------------------------------------------------------------------------------------


@bp.route("/professionals/new", methods=["GET", "POST"])
@access(Permission.PROFESSIONALS_MANAGE)
def new_professional():
    if request.method == "GET":
        return _professional_form(None, {"is_active": "true"}, {})
    professional, values, errors = submit(
        ProfessionalForm(), lambda data: directory.create_professional(db(), current_user, data)
    )
    if professional is None:
        return _professional_form(None, values, errors, status=422)
    flash(f"{professional.full_name} ajouté·e à l'annuaire.", "success")
    return redirect(url_for("professionals.show", professional_id=professional.id))


@bp.route("/professionals/<int:professional_id>/edit", methods=["GET", "POST"])
@access(Permission.PROFESSIONALS_MANAGE)
def edit_professional(professional_id: int):
    professional = directory.get_professional(db(), current_user.cpts_id, professional_id)
    if request.method == "GET":
        return _professional_form(professional, _values_of(professional), {})
    # A full load: an unticked checkbox is absent from the form and must read as "no".
    _, values, errors = submit(
        ProfessionalForm(), lambda data: directory.update_professional(db(), current_user, professional, data)
    )
    if errors:
        return _professional_form(professional, values, errors, status=422)
    flash(f"Fiche de {professional.full_name} mise à jour.", "success")
    return redirect(url_for("professionals.show", professional_id=professional.id))


def _values_of(professional) -> dict:
    values = {key: getattr(professional, key) for key in PROFESSIONAL_FIELDS if key != "organisation_ids"}
    values["is_active"] = "true" if professional.is_active else "false"
    values["organisation_ids"] = [organisation.id for organisation in professional.organisations]
    return values


def _professional_form(professional, values: dict, errors: dict, *, status: int = 200):
    organisations = directory.all_organisations(db(), current_user.cpts_id)
    context = {"professional": professional, "organisations": organisations, "values": values, "errors": errors}
    return render_template("admin/professional_form.html", **context), status


# --- accounts --------------------------------------------------------------------------------------------


@bp.get("/users")
@access(Permission.USERS_MANAGE)
def users():
    return render_template("admin/users.html", users=accounts.list_users(db(), current_user.cpts_id))


@bp.route("/users/new", methods=["GET", "POST"])
@access(Permission.USERS_MANAGE)
def new_user():
    if request.method == "GET":
        return _user_form({}, {})
    user, values, errors = submit(
        UserForm(), lambda data: accounts.create_user(db(), current_user, cpts_id=current_user.cpts_id, **data)
    )
    if user is None:
        return _user_form(values, errors, status=422)
    flash(
        f"Compte « {user.login} » créé. Transmettez le mot de passe initial par un canal sûr : la double "
        "authentification sera activée à la première connexion.",
        "success",
    )
    return redirect(url_for("admin.user", user_id=user.id))


@bp.get("/users/<int:user_id>")
@access(Permission.USERS_MANAGE)
def user(user_id: int):
    return _user_page(accounts.get_user(db(), current_user.cpts_id, user_id))


@bp.post("/users/<int:user_id>/deactivate")
@access(Permission.USERS_MANAGE)
def deactivate_user(user_id: int):
    accounts.deactivate_user(db(), current_user, accounts.get_user(db(), current_user.cpts_id, user_id))
    flash("Compte désactivé : ses sessions et ses jetons d'accès ne fonctionnent plus.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/reactivate")
@access(Permission.USERS_MANAGE)
def reactivate_user(user_id: int):
    accounts.reactivate_user(db(), current_user, accounts.get_user(db(), current_user.cpts_id, user_id))
    flash("Compte réactivé.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/reset-totp")
@access(Permission.USERS_MANAGE)
def reset_totp(user_id: int):
    accounts.reset_totp(db(), current_user, accounts.get_user(db(), current_user.cpts_id, user_id))
    flash("Double authentification réinitialisée : elle sera de nouveau activée à la prochaine connexion.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/password")
@access(Permission.USERS_MANAGE)
def set_password(user_id: int):
    account = accounts.get_user(db(), current_user.cpts_id, user_id)
    _, _, errors = submit(
        PasswordForm(), lambda data: accounts.set_password(db(), current_user, account, data["password"])
    )
    if errors:
        return _user_page(account, errors=errors, status=422)
    flash("Mot de passe modifié ; les sessions ouvertes du compte ont été fermées.", "success")
    return redirect(url_for("admin.user", user_id=user_id))


def _user_form(values: dict, errors: dict, *, status: int = 200):
    professionals = accounts.professionals_without_account(db(), current_user.cpts_id)
    options = [(p.id, f"{p.full_name} — {p.profession_label}") for p in professionals]
    values = {key: value for key, value in values.items() if key != "password"}  # never sent back to the browser
    return render_template("admin/user_form.html", values=values, errors=errors, professionals=options), status


def _user_page(account, *, errors=None, status: int = 200):
    return render_template("admin/user.html", account=account, errors=errors or {}), status
