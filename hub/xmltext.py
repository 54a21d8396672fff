"""What XML 1.0 forbids in a text (§2.2): C0 controls other than TAB, LF and CR, lone surrogates, U+FFFE and
U+FFFF. They can come from free text (a title, a name) stored before the input policy refused them, or from a
source other than the forms and the API, and one of them makes a receiving parser reject the whole document: every
XML the hub writes (the CDA, the XDM METADATA.XML, the indicators' SVG charts) drops them.

The CDA's and the XDM metadata's writers add none themselves, so one look at their output tells whether a second,
cleaning pass is needed: searching each value instead cost about a tenth of the XDM metadata's writing, and so did a
regular expression over the output. The charts clean their few labels."""

import re

_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_C0_NOT_XML = bytes(c for c in range(32) if c not in b"\t\n\r")


def xml_text(text: str) -> str:
    """`text` without the characters XML forbids."""
    return _NOT_XML.sub("", text)


def holds_non_xml(utf8: bytes) -> bool:
    """C0 controls XML forbids, or U+FFFE / U+FFFF, in UTF-8 output. A lone surrogate does not encode at all: a
    strict encoder raises, ElementTree writes it as a character reference (which the caller looks for)."""
    if len(utf8.translate(None, _C0_NOT_XML)) != len(utf8):
        return True
    return b"\xef\xbf" in utf8 and (b"\xef\xbf\xbe" in utf8 or b"\xef\xbf\xbf" in utf8)
