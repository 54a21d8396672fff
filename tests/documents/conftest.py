import pytest

from tests.pdfs import open_font_files


@pytest.fixture(autouse=True)
def no_font_file_left_open():
    """A test of the documents that leaves a font file open fails itself, rather than the test the garbage collector
    happens to close the file in (tests.pdfs.open_font_files)."""
    yield
    assert not open_font_files()
