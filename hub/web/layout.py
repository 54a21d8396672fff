"""What base.html draws around every page: the main menu and the layout's fixed links.

The menu depends only on the user's roles, on whether they are linked to a professional and on whether that
professional is a GP; its addresses only on the application's root. It used to be worked out in the template on
every page, twice (the wide bar and the folded one): some forty permission checks and twenty `url_for`, a sixth of
a page's CPU. It is now worked out once per kind of user and root, and kept for the process's life."""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flask import current_app, request, url_for
from markupsafe import Markup

from hub.auth.permissions import Permission, permissions_of_roles
from hub.models import Profession, Role

_P = Permission


@dataclass(frozen=True)
class Who:
    """What the menu depends on, the whole of it (the cache's key with the root)."""

    roles: frozenset[Role]
    is_linked: bool  # the account is linked to a professional
    is_gp: bool

    @property
    def permissions(self) -> frozenset[Permission]:
        return permissions_of_roles(self.roles)


def _can(*needed: Permission) -> Callable[[Who], bool]:
    return lambda who: all(p in who.permissions for p in needed)


def _resources_alone(who: Who) -> bool:
    # The coordination reaches them from the planning's tabs.
    return _P.RESOURCES_MANAGE in who.permissions and _P.PROGRAMS_MANAGE not in who.permissions


def _answers_teleexpertise(who: Who) -> bool:
    return _P.TELEEXPERTISE_ANSWER in who.permissions


def _assigns_teleexpertise_only(who: Who) -> bool:
    return not _answers_teleexpertise(who) and _P.TELEEXPERTISE_ASSIGN in who.permissions


def _own_fees_only(who: Who) -> bool:
    return _P.FEES_READ_CPTS not in who.permissions and _P.FEES_READ_OWN in who.permissions


def _professional(who: Who) -> bool:
    return Role.PROFESSIONAL in who.roles


def _referring_gp(who: Who) -> bool:
    return who.is_gp and _P.REFERRALS_WRITE in who.permissions


def _writes_reports(who: Who) -> bool:
    return who.is_linked and _P.REPORTS_WRITE in who.permissions


def _everyone(_who: Who) -> bool:
    return True


# The menu's entries in their order: (endpoint, label, shown to whom).
MENU: tuple[tuple[str, str, Callable[[Who], bool]], ...] = (
    ("patients.index", "Patients", _can(_P.PATIENTS_READ)),
    ("planning.week", "Planning", _can(_P.PROGRAMS_MANAGE)),
    ("pathways.queue", "Étapes à programmer", _can(_P.APPOINTMENTS_BOOK)),
    ("visits.index", "Mes visites", _professional),
    ("agenda.index", "Mon agenda", _professional),
    ("referrals.new", "Nouvel adressage", _referring_gp),
    ("referrals.mine", "Mes adressages", _referring_gp),
    ("reports.worklist", "Ma séance", _writes_reports),
    ("reports.overdue", "Comptes rendus en retard", _can(_P.REPORTS_MONITOR)),
    ("sessions.cpts_incidents", "Incidents", _can(_P.INCIDENTS_READ_CPTS)),
    ("indicators.index", "Indicateurs", _can(_P.INDICATORS_READ_CPTS)),
    ("referrals.triage", "Adressages à trier", _can(_P.REFERRALS_TRIAGE)),
    ("teleexpertise.inbox", "Téléexpertises reçues", _answers_teleexpertise),
    ("teleexpertise.mine", "Téléexpertises demandées", _answers_teleexpertise),
    ("teleexpertise.everything", "Téléexpertises", _assigns_teleexpertise_only),
    ("fees.overview", "Rémunérations", _can(_P.FEES_READ_CPTS)),
    ("fees.mine", "Mes rémunérations", _own_fees_only),
    ("professionals.index", "Annuaire", _everyone),
    ("resources.index", "Matériel et lieux", _resources_alone),
    ("fees.tariff_editor", "Tarifs", _can(_P.TARIFFS_MANAGE)),
    ("pathways.templates", "Modèles de parcours", _can(_P.PATHWAY_TEMPLATES_MANAGE)),
    ("outbox.index", "Envois", _can(_P.OUTBOX_READ)),
    ("connectors_admin.index", "Connecteurs", _can(_P.CONNECTORS_MANAGE)),
    ("admin.index", "Administration", _can(_P.USERS_MANAGE)),
)
STATIC_FILES = ("favicon.svg", "vendor/bootstrap-5.3.9/bootstrap.min.css", "hub.css", "hub.js")


@dataclass(frozen=True)
class Layout:
    """The addresses base.html needs: the menu's (address, label) pairs and the fixed links."""

    menu: tuple[tuple[str, str], ...]
    static: dict[str, str]
    home: str
    profile: str
    logout: str
    # The menu's links as base.html writes them, by the menu's address of the page (None: not in the menu).
    _links: dict[str | None, Markup] = field(default_factory=dict, compare=False, repr=False)

    def menu_links(self, path: str) -> Markup:
        """The menu's <li> links, the page's own marked current: rendered (templates/_menu.html) once per entry
        and kept with the layout, instead of looping over the menu on every page. `path` is the page's address
        with the application's root (request.script_root + request.path), as url_for writes the menu's."""
        current = path if any(path == target for target, _label in self.menu) else None
        links = self._links.get(current)
        if links is None:
            macro = current_app.jinja_env.get_template("_menu.html").module.menu_links  # type: ignore[attr-defined]
            links = self._links[current] = macro(self.menu, current)
        return links


def who_is(user) -> Who:
    is_gp = user.profession is Profession.GENERAL_PRACTITIONER
    return Who(roles=user.roles, is_linked=bool(user.professional_id), is_gp=is_gp)


def _build(who: Who | None) -> Layout:
    menu = () if who is None else tuple((url_for(e), label) for e, label, shown in MENU if shown(who))
    return Layout(
        menu=menu,
        static={name: url_for("static", filename=name) for name in STATIC_FILES},
        home=url_for("home.index"),
        profile=url_for("me.profile"),
        logout=url_for("auth.logout"),
    )


def page_layout(user: Any) -> Layout:
    """The layout of `user`'s pages (anyone not logged in: no menu), made on the first page of its kind."""
    who = who_is(user) if user is not None and user.is_authenticated else None
    key = (request.script_root, who)
    layouts: dict = current_app.extensions.setdefault("hub.layouts", {})
    layout = layouts.get(key)
    if layout is None:
        layout = layouts[key] = _build(who)
    return layout
