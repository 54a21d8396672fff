import re

import pytest

from hub import identifiers


@pytest.mark.parametrize(
    ("check", "value", "expected"),
    [
        (identifiers.check_rpps, "10003655320", "10003655320"),
        (identifiers.check_rpps, "100 036 553 20", "10003655320"),
        (identifiers.check_ins_matricule, "2 55 08 14 168 025 38", "255081416802538"),
        (identifiers.check_ins_matricule, "1 85 05 2A 004 001 81", "185052A00400181"),
        (identifiers.check_insee_commune, "24571", "24571"),
        (identifiers.check_insee_commune, "2a004", "2A004"),
        (identifiers.check_insee_commune, "99350", "99350"),
        (
            identifiers.check_mssante_address,
            "Anne.Lemaitre@ch-perigueux.mssante.fr",
            "anne.lemaitre@ch-perigueux.mssante.fr",
        ),
        (identifiers.check_phone, "06 12 34 56 78", "0612345678"),
        (identifiers.check_phone, "+33612345678", "+33612345678"),
        (identifiers.check_finess, "240000117", "240000117"),
        (identifiers.check_insee_commune, "2B033", "2B033"),
        (identifiers.check_insee_commune, "97105", "97105"),
        (identifiers.check_insee_commune, "98818", "98818"),
        (identifiers.check_name_trait("Nom"), "  Lévêque-d’Arçon ", "LEVEQUE-D ARCON"),
        (identifiers.check_name_trait("Nom"), "Andre\u0301", "ANDRE"),  # decomposed é
        (identifiers.check_name_trait("Nom"), "Lætitia Peña", "LAETITIA PENA"),
        (identifiers.check_name_trait("Nom"), "Jean - Pierre", "JEAN-PIERRE"),
    ],
)
def test_valid_identifiers_are_normalised(check, value, expected):
    assert check(value) == expected


@pytest.mark.parametrize(
    ("check", "value", "message"),
    [
        (identifiers.check_rpps, "10003655327", "clé de contrôle"),
        (identifiers.check_rpps, "1000365532", "11 chiffres"),
        (identifiers.check_ins_matricule, "255081416802539", "clé de contrôle"),
        (identifiers.check_ins_matricule, "25508141680253", "15 caractères"),
        (identifiers.check_insee_commune, "2457", "5 caractères"),
        (identifiers.check_insee_commune, "2C004", "5 caractères"),
        (identifiers.check_mssante_address, "anne.lemaitre@gmail.com", "mssante.fr"),
        (identifiers.check_phone, "12345", "numéro français"),
        (identifiers.check_finess, "24000011", "9 caractères"),
        (identifiers.check_finess, "240000118", "clé de contrôle"),
        (identifiers.check_insee_commune, "99999", "n'existe pas"),
        (identifiers.check_insee_commune, "00000", "n'existe pas"),
        (identifiers.check_insee_commune, "24000", "n'existe pas"),
        (identifiers.check_insee_commune, "20004", "n'existe pas"),  # Corsica is 2A/2B
        (identifiers.check_insee_commune, "96001", "n'existe pas"),
        (identifiers.check_insee_commune, "97900", "n'existe pas"),
        (identifiers.check_insee_commune, "99100", "n'existe pas"),  # France: born in a commune
    ],
)
def test_invalid_identifiers_say_why_in_french(check, value, message):
    with pytest.raises(ValueError, match=message):
        check(value)


def test_nia_gets_its_own_oid():
    assert identifiers.ins_oid_for("755081416802538") == identifiers.INS_OID_NIA
    assert identifiers.ins_oid_for("255081416802538") == identifiers.INS_OID_NIR


# I5: what an identity trait may not hold, each refused with the field's name and the character's code.
REFUSED_TRAITS = [
    pytest.param("AN\u200bDRE", "U+200B", id="zero-width space"),
    pytest.param("AN\u202eDRE", "U+202E", id="right-to-left override"),
    pytest.param("ANDR\u0415", "U+0415", id="Cyrillic look-alike"),
    pytest.param("\u0410NDRE", "U+0410", id="Cyrillic A"),
    pytest.param("\uff21NDRE", "U+FF21", id="fullwidth A"),
    pytest.param("ANDRE \U0001f600", "U+1F600", id="emoji"),
    pytest.param("<b>ANDRE</b>", "U+003C", id="markup"),
    pytest.param("ANDRE2", "U+0032", id="digit"),
    pytest.param("ANDRE\tMARTIN", "U+0009", id="tab"),
    pytest.param("E\u0301\u0301", "U+0301", id="stacked accents"),
]


@pytest.mark.parametrize(("value", "code"), REFUSED_TRAITS)
def test_identity_traits_refuse_what_the_rniv_does_not_allow(value, code):
    with pytest.raises(ValueError, match=f"^Nom de naissance : caractère .*{re.escape(code)}.* non autorisé"):
        identifiers.check_name_trait("Nom de naissance")(value)


def test_an_identity_trait_needs_a_letter():
    with pytest.raises(ValueError, match="au moins une lettre"):
        identifiers.check_name_trait("Nom utilisé")("-- '")
