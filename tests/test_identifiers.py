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
    ],
)
def test_invalid_identifiers_say_why_in_french(check, value, message):
    with pytest.raises(ValueError, match=message):
        check(value)


def test_nia_gets_its_own_oid():
    assert identifiers.ins_oid_for("755081416802538") == identifiers.INS_OID_NIA
    assert identifiers.ins_oid_for("255081416802538") == identifiers.INS_OID_NIR
