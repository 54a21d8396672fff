"""The demo territory: a CPTS shaped like VIVEVAL (Dordogne, around Vergt), its structures, its
professionals and their accounts, and about 200 patients with INS identities, consents and care teams.

`load_demo` is idempotent (a CPTS already named "CPTS VIVEVAL" is left as it is) and deterministic
(one seeded random generator). It only adds and flushes: the caller commits.
"""

import base64
import datetime as dt
import hashlib
import random
import unicodedata
from dataclasses import dataclass
from typing import NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from stdnum import luhn

from hub.auth.policies import visible_patients
from hub.db import utcnow
from hub.demo.data import (
    BERGERAC,
    COMMUNES_BY_INSEE,
    COURSAC,
    EYRAUD_CREMPSE_MAURENS,
    FEMALE_FIRST_NAMES,
    FOREIGN_BIRTH_PLACES,
    LACROPTE,
    LAST_NAMES,
    MALE_FIRST_NAMES,
    MANZAC_SUR_VERN,
    OTHER_FRENCH_BIRTH_PLACES,
    PERIGUEUX,
    STREETS,
    TERRITORY_COMMUNES,
    VAL_DE_LOUYRE_ET_CAUDEAU,
    VERGT,
    VILLAMBLARD,
    Commune,
)
from hub.identifiers import check_ins_matricule, check_mssante_address, check_phone, check_rpps
from hub.models import (
    IDENTITY_STATUS_LABELS,
    ROLE_LABELS,
    CareTeamMember,
    ConsentKind,
    ConsentMethod,
    IdentityCheckKind,
    IdentityDocumentType,
    IdentityStatus,
    Organisation,
    OrganisationKind,
    Patient,
    Profession,
    Professional,
    Role,
    Sex,
    User,
)
from hub.services import accounts, directory, identity

CPTS_NAME = "CPTS VIVEVAL"
DEMO_PASSWORD = "demo-viveval-2025"  # noqa: S105 (the demo's published password, never a real one)
SEED = 2025
PATIENT_COUNT = 200
# New patients médecin traitant the first GPs accept (workflows.gp_matching); the others take none.
GP_NEW_PATIENT_PLACES = (3, 2, 1)
# Ages and dates are counted from fixed days, so that every load gives the same data.
REFERENCE_DAY = dt.date(2025, 6, 1)
CONSENTS_FROM = dt.datetime(2025, 1, 6, 8, 0, tzinfo=dt.UTC)
RPPS_BASE = "10024"  # + a 5-digit counter + the Luhn key: 11 digits
CH_PERIGUEUX_FINESS = "240000117"

HOSPITAL = "CH Périgueux"
MSP_VERGT = "MSP Vergt"
MSP_VAL_DE_LOUYRE = "MSP Val de Louyre et Caudeau"
PHARMACY_COMMUNES = (
    VERGT,
    VILLAMBLARD,
    VAL_DE_LOUYRE_ET_CAUDEAU,
    COURSAC,
    EYRAUD_CREMPSE_MAURENS,
    LACROPTE,
    MANZAC_SUR_VERN,
)
MSP_BY_COMMUNE = {VERGT: MSP_VERGT, VAL_DE_LOUYRE_ET_CAUDEAU: MSP_VAL_DE_LOUYRE}

# Where the professionals practise: a commune per professional, in order.
GP_COMMUNES = (
    VERGT,
    VERGT,
    VERGT,
    VAL_DE_LOUYRE_ET_CAUDEAU,
    VAL_DE_LOUYRE_ET_CAUDEAU,
    VILLAMBLARD,
    COURSAC,
    EYRAUD_CREMPSE_MAURENS,
)
NURSE_COMMUNES = (
    VERGT,
    VERGT,
    VERGT,
    VILLAMBLARD,
    VILLAMBLARD,
    VAL_DE_LOUYRE_ET_CAUDEAU,
    VAL_DE_LOUYRE_ET_CAUDEAU,
    COURSAC,
    COURSAC,
    COURSAC,
    EYRAUD_CREMPSE_MAURENS,
    EYRAUD_CREMPSE_MAURENS,
    LACROPTE,
    MANZAC_SUR_VERN,
    "24160",  # Église-Neuve-de-Vergt
    "24480",  # Saint-Paul-de-Serre
    "24094",  # Chalagnac
    "24155",  # Douville
    "24211",  # Issac
    "24234",  # Les Lèches
    "24077",  # Campsegret
    "24405",  # Saint-Félix-de-Villadeix
    "24224",  # Lamonzie-Montastruc
    "24459",  # Saint-Mayme-de-Péreyrol
)
PHYSIOTHERAPIST_COMMUNES = (VERGT, VILLAMBLARD, COURSAC, VAL_DE_LOUYRE_ET_CAUDEAU)
SPEECH_THERAPIST_COMMUNES = (VERGT, COURSAC)
MIDWIFE_COMMUNES = (VERGT,)
CARDIOLOGIST = ("Anne-Iris", "Lemaitre", Sex.FEMALE)

MSSANTE_DOMAINS = {
    Profession.GENERAL_PRACTITIONER: "medecin.mssante.fr",
    Profession.SPECIALIST: "ch-perigueux.mssante.fr",
    Profession.NURSE: "infirmier.mssante.fr",
    Profession.PHYSIOTHERAPIST: "masseur-kinesitherapeute.mssante.fr",
    Profession.PHARMACIST: "pharmacien.mssante.fr",
    Profession.SPEECH_THERAPIST: "orthophoniste.mssante.fr",
    Profession.MIDWIFE: "sage-femme.mssante.fr",
    Profession.COORDINATOR: "cpts-viveval.mssante.fr",
}
LOGIN_PREFIXES = {
    Profession.GENERAL_PRACTITIONER: "dr",
    Profession.SPECIALIST: "cardio",
    Profession.NURSE: "idel",
    Profession.PHYSIOTHERAPIST: "kine",
    Profession.PHARMACIST: "pharma",
    Profession.SPEECH_THERAPIST: "ortho",
    Profession.MIDWIFE: "sf",
}

# Identity statuses of the patients: about 50 % QUAL, 15 % VALI, 15 % RECUP, 20 % PROV.
STATUS_SHARES = {
    IdentityStatus.QUALIFIED: 0.50,
    IdentityStatus.VALIDATED: 0.15,
    IdentityStatus.RETRIEVED: 0.15,
    IdentityStatus.PROVISIONAL: 0.20,
}
MINOR_EVERY = 25  # one patient in 25 is a child


# --- the summary ----------------------------------------------------------------------------------------------


class DemoAccount(NamedTuple):
    login: str
    role_label: str
    totp_secret: str | None
    display_name: str


@dataclass(frozen=True)
class DemoSummary:
    cpts_id: int
    created: bool  # False when the territory was already there and nothing was added
    communes: int
    organisations: dict[OrganisationKind, int]
    professionals: dict[Profession, int]
    patients: int
    identity_statuses: dict[IdentityStatus, int]
    accounts: tuple[DemoAccount, ...]

    @property
    def counts(self) -> dict[str, int]:
        """Every count under a plain key: organisation kinds, professions, identity statuses, totals."""
        return {
            "communes": self.communes,
            **{str(kind): n for kind, n in self.organisations.items()},
            **{str(profession): n for profession, n in self.professionals.items()},
            "patients": self.patients,
            **{str(status): n for status, n in self.identity_statuses.items()},
            "users": len(self.accounts),
        }


def demo_totp_secret(login: str) -> str:
    """The same TOTP secret on every load, so that a tester's authenticator keeps working."""
    digest = hashlib.sha256(("viveval-demo:" + login).encode()).digest()
    return base64.b32encode(digest[:20]).decode()


# --- the loader -----------------------------------------------------------------------------------------------


def load_demo(session: Session, *, zone: str) -> DemoSummary:
    """Create the demo territory once; when it is already there, create nothing and describe it. `zone` is the
    territory's (HUB_TIMEZONE): a consent's day is its wall-clock day there."""
    cpts = find_demo_cpts(session)
    if cpts is not None:
        return summarise(session, cpts.id, created=False)
    builder = _DemoBuilder(session, random.Random(SEED), zone)  # noqa: S311 (demo data, not secrets)
    builder.build()
    session.flush()
    return summarise(session, builder.cpts.id, created=True)


def find_demo_cpts(session: Session) -> Organisation | None:
    return session.scalar(
        select(Organisation).where(Organisation.kind == OrganisationKind.CPTS, Organisation.name == CPTS_NAME)
    )


class _DemoBuilder:
    """Creates the territory step by step; every random draw comes from one seeded generator."""

    cpts: Organisation  # the first thing `build` creates
    coordinator_user: User  # the author of the patients, created with the accounts before them

    def __init__(self, session: Session, rng: random.Random, zone: str):
        self.session = session
        self.zone = zone
        self.rng = rng
        self.organisations: dict[str, Organisation] = {}
        self.staff: dict[Profession, list[Professional]] = {}
        self._rpps_counter = 0
        self._free_last_names = [name for name in LAST_NAMES if name != CARDIOLOGIST[1]]
        self.rng.shuffle(self._free_last_names)
        self._ins_matricules: set[str] = set()

    def build(self) -> None:
        self.cpts = directory.create_cpts(self.session, name=CPTS_NAME, commune_insee=VERGT)
        self._create_organisations()
        self._create_professionals()
        self._create_users()
        for index, status in enumerate(self._status_plan()):
            self._create_patient(index, status)

    # structures

    def _create_organisations(self) -> None:
        self._add_organisation(HOSPITAL, OrganisationKind.HOSPITAL, PERIGUEUX, finess=CH_PERIGUEUX_FINESS)
        self._add_organisation(MSP_VERGT, OrganisationKind.MSP, VERGT)
        self._add_organisation(MSP_VAL_DE_LOUYRE, OrganisationKind.MSP, VAL_DE_LOUYRE_ET_CAUDEAU)
        for insee in PHARMACY_COMMUNES:
            self._add_organisation(pharmacy_name(insee), OrganisationKind.PHARMACY, insee)
        self._add_organisation("EHPAD de Villamblard", OrganisationKind.EHPAD, VILLAMBLARD)
        self.session.flush()

    def _add_organisation(self, name: str, kind: OrganisationKind, insee: str, finess: str | None = None):
        organisation = Organisation(name=name, kind=kind, cpts_id=self.cpts.id, commune_insee=insee, finess=finess)
        self.session.add(organisation)
        self.organisations[name] = organisation

    # professionals

    def _create_professionals(self) -> None:
        for insee in GP_COMMUNES:
            self._add_professional(Profession.GENERAL_PRACTITIONER, insee, self._msp_of(insee))
        # A few GPs take new patients médecin traitant: the coordination has someone to propose its list to.
        for gp, places in zip(self.staff[Profession.GENERAL_PRACTITIONER], GP_NEW_PATIENT_PLACES, strict=False):
            gp.new_patient_capacity = places
        for number, insee in enumerate(NURSE_COMMUNES):
            self._add_professional(
                Profession.NURSE,
                insee,
                self._msp_of(insee),
                accompanies_teleconsultation=True,
                does_telesoin=number % 3 == 0,
            )
        for insee in PHYSIOTHERAPIST_COMMUNES:
            self._add_professional(Profession.PHYSIOTHERAPIST, insee, self._msp_of(insee), does_telesoin=True)
        for insee in PHARMACY_COMMUNES:
            pharmacy = [self.organisations[pharmacy_name(insee)]]
            self._add_professional(Profession.PHARMACIST, insee, pharmacy, accompanies_teleconsultation=True)
        for number, insee in enumerate(SPEECH_THERAPIST_COMMUNES):
            self._add_professional(Profession.SPEECH_THERAPIST, insee, [], does_telesoin=number == 0)
        for insee in MIDWIFE_COMMUNES:
            self._add_professional(Profession.MIDWIFE, insee, self._msp_of(insee))
        hospital = [self.organisations[HOSPITAL]]
        self._add_professional(Profession.SPECIALIST, PERIGUEUX, hospital, name=CARDIOLOGIST)
        self._add_professional(Profession.SPECIALIST, PERIGUEUX, hospital)
        self._add_professional(Profession.COORDINATOR, VERGT, [self.organisations[MSP_VERGT]])
        self.session.flush()  # the accounts and the patients need the ids

    def _msp_of(self, insee: str) -> list[Organisation]:
        name = MSP_BY_COMMUNE.get(insee)
        return [self.organisations[name]] if name else []

    def _add_professional(self, profession: Profession, insee: str, organisations, *, name=None, **flags):
        first_name, last_name, _sex = name or self._new_professional_name()
        clinician = profession is not Profession.COORDINATOR
        professional = Professional(
            cpts_id=self.cpts.id,
            rpps=self._next_rpps() if clinician else None,
            first_name=first_name,
            last_name=last_name,
            profession=profession,
            specialty="Cardiologie" if profession is Profession.SPECIALIST else None,
            mssante_address=mssante_address(first_name, last_name, MSSANTE_DOMAINS[profession]),
            # The reserved .invalid domain: demo notifications can never reach a real mailbox.
            email=f"{ascii_slug(first_name)}.{ascii_slug(last_name)}@demo-viveval.invalid",
            phone=self._mobile_phone(),
            commune_insee=insee,
            served_communes=self._served_communes(insee) if profession is Profession.NURSE else "",
            **flags,
        )
        professional.organisations = list(organisations)
        self.session.add(professional)
        self.staff.setdefault(profession, []).append(professional)

    def _served_communes(self, insee: str) -> str:
        """A nurse's home-visit round: their commune and a few others of the territory."""
        others = [c.insee for c in TERRITORY_COMMUNES if c.insee != insee]
        return " ".join(sorted({insee, *self.rng.sample(others, 5)}))

    def _new_professional_name(self) -> tuple[str, str, Sex]:
        sex = self.rng.choice((Sex.FEMALE, Sex.MALE))
        return self._first_name(sex), self._free_last_names.pop(), sex

    def _next_rpps(self) -> str:
        self._rpps_counter += 1
        base = f"{RPPS_BASE}{self._rpps_counter:05d}"
        return check_rpps(base + luhn.calc_check_digit(base))

    # accounts

    def _create_users(self) -> None:
        self._add_user("admin", "Administration CPTS VIVEVAL", [Role.ADMIN])
        coordinator = self.staff[Profession.COORDINATOR][0]
        self.coordinator_user = self._add_user(
            "coordination", f"{coordinator.full_name} (coordination)", [Role.COORDINATOR], coordinator
        )
        used = {"admin", "coordination"}
        for profession in LOGIN_PREFIXES:
            for professional in self.staff.get(profession, []):
                login = unique_login(LOGIN_PREFIXES[profession], professional, used)
                used.add(login)
                self._add_user(login, display_name(professional), [Role.PROFESSIONAL], professional)

    def _add_user(self, login: str, name: str, roles, professional: Professional | None = None) -> User:
        return accounts.create_user(
            self.session,
            None,
            login=login,
            display_name=name,
            password=DEMO_PASSWORD,
            cpts_id=self.cpts.id,
            roles=roles,
            professional_id=professional.id if professional else None,
            totp_secret=demo_totp_secret(login),
        )

    # patients

    def _status_plan(self) -> list[IdentityStatus]:
        """The identity status each patient will reach, in a shuffled order."""
        statuses = [status for status, share in STATUS_SHARES.items() for _ in range(round(share * PATIENT_COUNT))]
        statuses += [IdentityStatus.PROVISIONAL] * (PATIENT_COUNT - len(statuses))
        self.rng.shuffle(statuses)
        return statuses

    def _create_patient(self, index: int, status: IdentityStatus) -> None:
        data = self._patient_data(index, status)
        patient = identity.create_patient(
            self.session,
            self.coordinator_user,
            data,
            visible=visible_patients(self.coordinator_user),
            duplicates_checked=True,
        )
        self._record_identity_checks(patient, status)
        self._add_consents(patient)
        self._add_care_team(patient)

    def _patient_data(self, index: int, status: IdentityStatus) -> dict:
        rng = self.rng
        sex = Sex.FEMALE if rng.random() < 0.56 else Sex.MALE
        age = rng.randint(3, 16) if index % MINOR_EVERY == MINOR_EVERY - 1 else self._adult_age()
        birth_date = dt.date(REFERENCE_DAY.year - age, rng.randint(1, 12), rng.randint(1, 28))
        first_name = self._first_name(sex)
        commune = rng.choices(TERRITORY_COMMUNES, weights=[c.population for c in TERRITORY_COMMUNES])[0]
        # Drawn in this order, as ever: the seeded territory stays the same.
        birth_name = rng.choice(LAST_NAMES)
        given_names = self._given_names(first_name, sex)
        birth_place = self._birth_place(age)
        data = {
            "birth_name": birth_name,
            "first_birth_given_name": first_name,
            "birth_given_names": given_names,
            "birth_date": birth_date,
            "sex": sex,
            "birth_place_insee": birth_place,
            "phone": self._mobile_phone(),
            "address": self._address(commune),
            "commune_insee": commune.insee,
            "attending_gp_id": self._attending_gp(commune.insee).id,
        }
        if sex is Sex.FEMALE and age >= 25 and rng.random() < 0.55:
            data["used_last_name"] = identity.normalise_trait(rng.choice(LAST_NAMES))
        if age < 18:
            data.update(self._legal_representative(birth_name))
        if status in (IdentityStatus.QUALIFIED, IdentityStatus.RETRIEVED) or rng.random() < 0.6:
            data["ins_matricule"] = self._new_nir(sex, birth_date, birth_place)
        return data

    def _adult_age(self) -> int:
        draw = self.rng.random()
        if draw < 0.30:
            return self.rng.randint(18, 64)
        if draw < 0.75:
            return self.rng.randint(65, 84)
        return self.rng.randint(85, 99)

    def _first_name(self, sex: Sex) -> str:
        return self.rng.choice(FEMALE_FIRST_NAMES if sex is Sex.FEMALE else MALE_FIRST_NAMES)

    def _given_names(self, first_name: str, sex: Sex) -> str | None:
        if self.rng.random() < 0.4:
            return None
        second = self._first_name(sex)
        return None if second == first_name else f"{first_name} {second}"

    def _birth_place(self, age: int) -> str:
        draw = self.rng.random()
        if draw < 0.05:
            return self.rng.choice(FOREIGN_BIRTH_PLACES)
        if draw < 0.13:
            return self.rng.choice(OTHER_FRENCH_BIRTH_PLACES)
        # The elderly were often born at home; the younger ones in a maternity ward.
        if draw < (0.60 if age >= 70 else 0.20):
            return self.rng.choice(TERRITORY_COMMUNES).insee
        return BERGERAC if draw > 0.88 else PERIGUEUX

    def _new_nir(self, sex: Sex, birth_date: dt.date, birth_place: str) -> str:
        """A valid NIR that agrees with the strict traits: sex, year and month, place of birth."""
        while True:
            head = (
                f"{1 if sex is Sex.MALE else 2}{birth_date.year % 100:02d}{birth_date.month:02d}"
                f"{birth_place}{self.rng.randint(1, 999):03d}"
            )
            matricule = check_ins_matricule(f"{head}{97 - int(head) % 97:02d}")
            if matricule not in self._ins_matricules:
                self._ins_matricules.add(matricule)
                return matricule

    def _mobile_phone(self) -> str:
        return check_phone(f"06{self.rng.randint(0, 99_999_999):08d}")

    def _address(self, commune: Commune) -> str:
        street = self.rng.choice(STREETS).format(n=self.rng.randint(1, 48))
        return f"{street}, {commune.postal_code} {commune.name}"

    def _attending_gp(self, insee: str) -> Professional:
        gps = self.staff[Profession.GENERAL_PRACTITIONER]
        nearby = [gp for gp in gps if gp.commune_insee == insee]
        return self.rng.choice(nearby or gps)

    def _legal_representative(self, child_birth_name: str) -> dict:
        relationship = self.rng.choice(("mère", "père"))
        parent_first_name = self._first_name(Sex.FEMALE if relationship == "mère" else Sex.MALE)
        return {
            "legal_representative_name": f"{parent_first_name} {child_birth_name.upper()}",
            "legal_representative_phone": self._mobile_phone(),
            "legal_representative_relationship": relationship,
        }

    def _record_identity_checks(self, patient: Patient, status: IdentityStatus) -> None:
        if status in (IdentityStatus.QUALIFIED, IdentityStatus.VALIDATED):
            identity.record_identity_check(
                self.session,
                self.coordinator_user,
                patient,
                kind=IdentityCheckKind.DOCUMENT,
                document_type=self._identity_document(patient),
            )
        if status in (IdentityStatus.QUALIFIED, IdentityStatus.RETRIEVED):
            identity.record_identity_check(
                self.session, self.coordinator_user, patient, kind=IdentityCheckKind.INS_RETRIEVAL
            )

    def _identity_document(self, patient: Patient) -> IdentityDocumentType:
        if patient.age_on(REFERENCE_DAY) < 18:
            return IdentityDocumentType.BIRTH_CERTIFICATE_WITH_FAMILY_BOOK
        if patient.birth_place_insee.startswith("99"):
            return self.rng.choice((IdentityDocumentType.PASSPORT, IdentityDocumentType.RESIDENCE_PERMIT))
        if self.rng.random() < 0.15:
            return IdentityDocumentType.PASSPORT
        return IdentityDocumentType.NATIONAL_ID_CARD

    def _add_consents(self, patient: Patient) -> None:
        self._add_consent(patient, ConsentKind.DATA_PROCESSING, ConsentMethod.WRITTEN)
        if self.rng.random() < 0.85:
            method = ConsentMethod.ORAL if self.rng.random() < 0.75 else ConsentMethod.WRITTEN
            self._add_consent(patient, ConsentKind.TELEHEALTH, method)
        if self.rng.random() < 0.4:
            self._add_consent(patient, ConsentKind.DMP_ACCESS, ConsentMethod.ORAL)

    def _add_consent(self, patient: Patient, kind: ConsentKind, method: ConsentMethod) -> None:
        identity.add_consent(
            self.session,
            self.coordinator_user,
            patient,
            {
                "kind": kind,
                "method": method,
                "collected_on": self._past_moment().astimezone(ZoneInfo(self.zone)).date(),
                "collected_by_professional_id": patient.attending_gp_id,
            },
            zone=self.zone,
        )

    def _past_moment(self) -> dt.datetime:
        moment = CONSENTS_FROM + dt.timedelta(days=self.rng.randint(0, 300), minutes=self.rng.randint(0, 600))
        return min(moment, utcnow() - dt.timedelta(hours=1))

    def _add_care_team(self, patient: Patient) -> None:
        members = []
        if self.rng.random() < 0.5:
            members.append(self._own_nurse(patient.commune_insee))
        if patient.age_on(REFERENCE_DAY) >= 60 and self.rng.random() < 0.35:
            members.append(self.rng.choice(self.staff[Profession.SPECIALIST]))
        for professional in members:
            self.session.add(
                CareTeamMember(
                    patient_id=patient.id,
                    professional_id=professional.id,
                    added_by_user_id=self.coordinator_user.id,
                )
            )

    def _own_nurse(self, insee: str | None) -> Professional:
        nurses = self.staff[Profession.NURSE]
        nearby = [nurse for nurse in nurses if nurse.commune_insee == insee]
        return self.rng.choice(nearby or nurses)


# --- names, logins, addresses ---------------------------------------------------------------------------------


def ascii_slug(text: str) -> str:
    """Lowercase ASCII for logins and mailbox names: no accents, words joined by hyphens."""
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch)).lower()
    words = "".join(ch if ch.isascii() and ch.isalnum() else " " for ch in plain).split()
    return "-".join(words)


def mssante_address(first_name: str, last_name: str, domain: str) -> str:
    return check_mssante_address(f"{ascii_slug(first_name)}.{ascii_slug(last_name)}@{domain}")


def unique_login(prefix: str, professional: Professional, used: set[str]) -> str:
    login = f"{prefix}.{ascii_slug(professional.last_name)}"
    if login in used:
        login = f"{prefix}.{ascii_slug(professional.first_name)}.{ascii_slug(professional.last_name)}"
    return login


def display_name(professional: Professional) -> str:
    if professional.profession in (Profession.GENERAL_PRACTITIONER, Profession.SPECIALIST):
        return f"Dr {professional.full_name}"
    return professional.full_name


def pharmacy_name(insee: str) -> str:
    commune = COMMUNES_BY_INSEE[insee].name
    article = "d'" if ascii_slug(commune)[:1] in tuple("aeiouy") else "de "
    return f"Pharmacie {article}{commune}"


# --- describing the territory -----------------------------------------------------------------------------------


def summarise(session: Session, cpts_id: int, *, created: bool) -> DemoSummary:
    return DemoSummary(
        cpts_id=cpts_id,
        created=created,
        communes=len(TERRITORY_COMMUNES),
        organisations=_count_by(session, Organisation.kind, Organisation.cpts_id == cpts_id),
        professionals=_count_by(session, Professional.profession, Professional.cpts_id == cpts_id),
        patients=session.execute(select(func.count(Patient.id)).where(Patient.cpts_id == cpts_id)).scalar_one(),
        identity_statuses=_count_by(session, Patient.identity_status, Patient.cpts_id == cpts_id),
        accounts=tuple(_demo_accounts(session, cpts_id)),
    )


def _count_by(session: Session, column, condition) -> dict:
    rows = session.execute(select(column, func.count()).where(condition).group_by(column).order_by(column))
    return {value: count for value, count in rows}


def _demo_accounts(session: Session, cpts_id: int) -> list[DemoAccount]:
    users = session.scalars(select(User).where(User.cpts_id == cpts_id).order_by(User.id))
    return [
        DemoAccount(
            login=user.login,
            role_label=", ".join(ROLE_LABELS[role] for role in sorted(user.roles)),
            totp_secret=user.totp_secret,
            display_name=_account_description(user),
        )
        for user in users
    ]


def _account_description(user: User) -> str:
    if user.professional is None or user.professional.profession is Profession.COORDINATOR:
        return user.display_name
    return f"{user.display_name} — {user.professional.profession_label}"


PROFESSION_COUNT_LABELS = {
    Profession.GENERAL_PRACTITIONER: ("médecin généraliste", "médecins généralistes"),
    Profession.SPECIALIST: ("cardiologue (CH Périgueux)", "cardiologues (CH Périgueux)"),
    Profession.NURSE: ("IDEL", "IDEL"),
    Profession.PHYSIOTHERAPIST: ("masseur-kinésithérapeute", "masseurs-kinésithérapeutes"),
    Profession.PHARMACIST: ("pharmacien·ne", "pharmacien·nes"),
    Profession.SPEECH_THERAPIST: ("orthophoniste", "orthophonistes"),
    Profession.ORTHOPTIST: ("orthoptiste", "orthoptistes"),
    Profession.MIDWIFE: ("sage-femme", "sages-femmes"),
    Profession.COORDINATOR: ("coordinateur·rice", "coordinateur·rices"),
}
ORGANISATION_COUNT_LABELS = {
    OrganisationKind.HOSPITAL: ("établissement de santé", "établissements de santé"),
    OrganisationKind.MSP: ("maison de santé pluriprofessionnelle", "maisons de santé pluriprofessionnelles"),
    OrganisationKind.PHARMACY: ("officine", "officines"),
    OrganisationKind.EHPAD: ("EHPAD", "EHPAD"),
    OrganisationKind.PRACTICE: ("cabinet", "cabinets"),
}


def _quantity(count: int, labels: tuple[str, str]) -> str:
    return f"{count} {labels[0] if count == 1 else labels[1]}"


def format_summary(summary: DemoSummary) -> str:
    """A French text for the command line: what the territory holds and how to log in."""
    state = "créé" if summary.created else "déjà présent, rien n'a été ajouté"
    width = max((len(account.login) for account in summary.accounts), default=0)
    lines = [
        f"Territoire de démonstration {CPTS_NAME} ({state}) : {summary.communes} communes de Dordogne autour de Vergt.",
        f"Professionnel·les : {_quantities(summary.professionals, PROFESSION_COUNT_LABELS)}.",
        f"Structures : {_quantities(summary.organisations, ORGANISATION_COUNT_LABELS)}.",
        f"Patients : {summary.patients} ; {_statuses_text(summary.identity_statuses)}.",
        f"Comptes (mot de passe commun : {DEMO_PASSWORD}) :",
        *(_account_line(account, width) for account in summary.accounts),
        "Les secrets TOTP sont affichés pour la démonstration uniquement : ces comptes et ce mot de passe "
        "ne doivent jamais servir en production.",
    ]
    return "\n".join(lines)


def _quantities(counts: dict, labels: dict) -> str:
    return ", ".join(_quantity(counts[key], label) for key, label in labels.items() if counts.get(key))


def _statuses_text(statuses: dict[IdentityStatus, int]) -> str:
    order = (IdentityStatus.QUALIFIED, IdentityStatus.VALIDATED, IdentityStatus.RETRIEVED, IdentityStatus.PROVISIONAL)
    return ", ".join(
        f"{IDENTITY_STATUS_LABELS[status].lower()} ({status.value}) : {statuses.get(status, 0)}" for status in order
    )


def _account_line(account: DemoAccount, width: int) -> str:
    who = account.display_name
    if account.role_label != ROLE_LABELS[Role.PROFESSIONAL]:
        who = f"{account.role_label} — {who}"
    return f"  {account.login.ljust(width)}  {who}  TOTP : {account.totp_secret or 'aucun'}"
