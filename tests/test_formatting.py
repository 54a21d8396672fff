"""French display of sizes: what a person reads beside a file."""

import pytest

from hub.formatting import NBSP, file_size


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
