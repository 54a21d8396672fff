"""Checks of the national identifiers the hub stores. Each returns the normalised value or raises
ValueError with a French message that can be shown next to the field."""

import re

from stdnum import luhn
from stdnum.exceptions import ValidationError
from stdnum.fr import nir

# OIDs of the INS matricule (ANS référentiel INS): NIR, NIA, and their test counterparts.
INS_OID_NIR = "1.2.250.1.213.1.4.8"
INS_OID_NIA = "1.2.250.1.213.1.4.9"

_INSEE_COMMUNE = re.compile(r"^(?:\d{2}|2[AB])\d{3}$")
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
    if not _INSEE_COMMUNE.fullmatch(code):
        raise ValueError(
            "Le code INSEE doit comporter 5 caractères (par exemple 24587), ou 99xxx pour une naissance à l'étranger."
        )
    return code


def check_finess(value: str) -> str:
    code = _compact(value).upper()
    if not _FINESS.fullmatch(code):
        raise ValueError("Le numéro FINESS doit comporter 9 caractères.")
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
