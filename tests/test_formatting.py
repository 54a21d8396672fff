"""French display: phone numbers written in pairs and dialled from a `tel:` link in the international form; file
sizes as a person reads them beside a file."""

import pytest

from hub.formatting import NBSP, file_size, french_phone, tel_uri


@pytest.mark.parametrize(
    ("typed", "shown", "dialled"),
    [
        ("0612345678", "06 12 34 56 78", "tel:+33612345678"),
        ("06.12.34.56.78", "06 12 34 56 78", "tel:+33612345678"),
        ("+33 5 53 00 00 01", "05 53 00 00 01", "tel:+33553000001"),
        ("+44 20 7946 0958", "+44 20 7946 0958", "tel:+442079460958"),
        (None, "", "tel:"),
    ],
)
def test_phones(typed, shown, dialled):
    assert (french_phone(typed), tel_uri(typed)) == (shown, dialled)


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, "—"),
        (0, f"0{NBSP}octet"),
        (812, f"812{NBSP}octets"),
        (1024, f"1,0{NBSP}Ko"),
        (23_040, f"22,5{NBSP}Ko"),
        (1024 * 1024 - 1, f"1,0{NBSP}Mo"),
        (1_258_291, f"1,2{NBSP}Mo"),
        (5 * 1024**4, f"5120,0{NBSP}Go"),
    ],
)
def test_file_sizes_in_french_units_with_a_comma(size, shown):
    assert file_size(size) == shown
