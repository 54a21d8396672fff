"""Checks of the national identifiers the hub stores. Each returns the normalised value or raises
ValueError with a French message that can be shown next to the field."""

import re
import unicodedata
from collections.abc import Callable

from stdnum import luhn
from stdnum.exceptions import ValidationError
from stdnum.fr import nir

# OIDs of the INS matricule (ANS référentiel INS): NIR, NIA, and their test counterparts.
INS_OID_NIR = "1.2.250.1.213.1.4.8"
INS_OID_NIA = "1.2.250.1.213.1.4.9"
# What a person reads instead of the OID: which number the matricule is.
INS_KIND_LABELS = {INS_OID_NIR: "NIR", INS_OID_NIA: "NIA"}

# The form of an INSEE code (Code officiel géographique), checked without the official list — no well-kept
# Python package ships it and the hub downloads nothing: a département of metropolitan France (01–95 but 20,
# Corsica being 2A/2B since 1976) and a commune number from 001; an overseas département or collectivity (971–978,
# 984, 986–989) and a commune number from 01; or a country (99 + continent 1–5 + 2 digits; 99100, France itself,
# is no birth place: a person born in France is born in a commune).
_INSEE_COMMUNE = re.compile(
    r"^(?:(?:0[1-9]|1\d|2[1-9AB]|[3-8]\d|9[0-5])(?!000)\d{3}|(?:97[1-8]|98[46-9])(?!00)\d{2}|99(?!100)[1-5]\d{2})$"
)
_FINESS = re.compile(r"^(?:\d{2}|2[AB])\d{7}$")
_MSSANTE = re.compile(r"^[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9-]+\.)+mssante\.fr$")
_PHONE = re.compile(r"^(?:0|\+33)[1-9]\d{8}$")


def _compact(value: str) -> str:
    return re.sub(r"[\s.\-]", "", value or "")


def check_rpps(value: str) -> str:
    rpps = _compact(value)
    if not re.fullmatch(r"\d{11}", rpps):
        raise ValueError("Le numéro RPPS doit comporter 11 chiffres.")
    if not luhn.is_valid(rpps):
        raise ValueError("Le numéro RPPS est invalide : sa clé de contrôle ne correspond pas.")
    return rpps


def check_ins_matricule(value: str) -> str:
    """The INS matricule is a NIR (or a NIA) of 13 characters followed by its 2-digit key."""
    matricule = _compact(value).upper()
    if not re.fullmatch(r"[0-9]{5}(?:[0-9]{2}|2[AB])[0-9]{8}", matricule):
        raise ValueError("Le matricule INS doit comporter 15 caractères (13 + clé de 2 chiffres).")
    try:
        return nir.validate(matricule)
    except ValidationError as exc:
        raise ValueError("Le matricule INS est invalide : sa clé de contrôle ne correspond pas.") from exc


def ins_oid_for(matricule: str) -> str:
    # A NIA (identification number pending a NIR) starts with 7 or 8.
    return INS_OID_NIA if matricule[0] in "78" else INS_OID_NIR


def check_insee_commune(value: str) -> str:
    code = _compact(value).upper()
    if not re.fullmatch(r"[0-9]{5}|2[AB][0-9]{3}", code):
        raise ValueError(
            "Le code INSEE doit comporter 5 caractères (par exemple 24587), ou 99xxx pour une naissance à l'étranger."
        )
    if not _INSEE_COMMUNE.fullmatch(code):
        raise ValueError(
            f"Le code INSEE {code} n'existe pas : son département (01 à 95, 2A, 2B, 971 à 989) ou son pays (99xxx) "
            "est inconnu, ou son numéro de commune est nul."
        )
    return code


def check_finess(value: str) -> str:
    """Nine characters: the département (2A/2B for Corsica), a 6-digit number and a Luhn key computed with the
    Corsican départements counted as 20."""
    code = _compact(value).upper()
    if not _FINESS.fullmatch(code):
        raise ValueError("Le numéro FINESS doit comporter 9 caractères.")
    if not luhn.is_valid(re.sub(r"^2[AB]", "20", code)):
        raise ValueError("Le numéro FINESS est invalide : sa clé de contrôle ne correspond pas.")
    return code


def check_mssante_address(value: str) -> str:
    address = (value or "").strip().lower()
    if not _MSSANTE.fullmatch(address):
        raise ValueError("L'adresse MSSanté doit être de la forme prenom.nom@domaine.mssante.fr.")
    return address


def check_phone(value: str) -> str:
    phone = _compact(value)
    if not _PHONE.fullmatch(phone):
        raise ValueError("Le numéro de téléphone doit être un numéro français (10 chiffres, ou +33…).")
    return phone


# Identity traits (RNIV, référentiel INS): capital letters A–Z, space, hyphen and apostrophe. A trait may be typed
# with the diacritics of French (and the ñ), which the stored form drops; anything else — another script's
# look-alike, an invisible or direction character, a digit, a symbol, markup — is refused, so that two spellings
# of one name can never be two patients.
_TRAIT_MARKS = frozenset("\u0300\u0301\u0302\u0303\u0308\u0327")  # grave, acute, circumflex, tilde, diaeresis, cedilla
_LIGATURES = {"Œ": "OE", "œ": "OE", "Æ": "AE", "æ": "AE"}
_APOSTROPHES = "'\u2019\u02bc"  # typed, typographic, modifier letter
_SPACES = " \u00a0"
_ASCII_LETTERS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def fold_name(value: str) -> str:
    """The form traits are stored and compared in: capitals without diacritics, single spaces, an apostrophe
    read as a space, no space around a hyphen. Characters a trait may not hold are kept (and match nothing)."""
    decomposed = unicodedata.normalize("NFD", value)
    plain = "".join(_LIGATURES.get(ch, ch) for ch in decomposed if ch not in _TRAIT_MARKS)
    for blank in (*_APOSTROPHES, "\u00a0"):
        plain = plain.replace(blank, " ")
    return re.sub(r" ?- ?", "-", re.sub(" +", " ", plain.upper()).strip())


def _refused_character(value: str) -> str | None:
    previous_is_letter = False
    for ch in unicodedata.normalize("NFD", value):
        if ch in _TRAIT_MARKS and previous_is_letter:
            previous_is_letter = False  # one mark per letter: stacked marks are no French spelling
            continue
        previous_is_letter = ch in _ASCII_LETTERS or ch in _LIGATURES
        if not (previous_is_letter or ch in _SPACES or ch == "-" or ch in _APOSTROPHES):
            return ch
    return None


def _describe(ch: str) -> str:
    code = f"U+{ord(ch):04X}"
    visible = unicodedata.category(ch)[0] not in "CZM"
    return f"« {ch} » ({code})" if visible else f"invisible ou de mise en forme ({code})"


# The traits checked so, with the label their messages name.
NAME_TRAIT_LABELS = {
    "birth_name": "Nom de naissance",
    "first_birth_given_name": "Premier prénom de naissance",
    "birth_given_names": "Prénoms de naissance",
    "used_last_name": "Nom utilisé",
    "used_first_name": "Prénom utilisé",
}


def check_name_trait(label: str) -> Callable[[str], str]:
    """The check of one identity trait (a name or given names), its French messages naming the field."""

    def check(value: str) -> str:
        refused = _refused_character(value or "")
        if refused is not None:
            raise ValueError(
                f"{label} : caractère {_describe(refused)} non autorisé. Seuls les lettres (accents du français "
                "compris), l'espace, le trait d'union et l'apostrophe sont acceptés."
            )
        folded = fold_name(value or "")
        if not any(ch in _ASCII_LETTERS for ch in folded):
            raise ValueError(f"{label} : au moins une lettre est attendue.")
        return folded

    return check
