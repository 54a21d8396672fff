"""French display of phone numbers: written in pairs, dialled from a `tel:` link in the international form."""

import pytest

from hub.formatting import french_phone, tel_uri


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
