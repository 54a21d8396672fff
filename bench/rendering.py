"""Issue 17, P7 (the worker's biggest cost): CPU per rendered report, the hub's fonts (parsed once per process,
the usual glyphs' font embedded whole) against fpdf2's own parsing and subsetting of the font files for every
document, in the same run, alternated document by document, what they draw compared (`drawing`: the same pages,
text, widths, ToUnicode maps and glyph outlines; the same bytes where a style drew other glyphs). The sizes of the
PDFs are printed.

Three reports: French text (accents, Œ), the signs of measurements (€, œ, ≥, a subscript), and names in Greek and
Cyrillic (the whole font's path). For each, `render_pdf` alone and `freeze` (PDF, CDA and both stored under their
hash: what `reports.render_pending` does per report besides its statements). No database. The machine is shared:
the CPU time of the process is the figure to compare; run it twice.

    .venv/bin/python bench/rendering.py --rounds 30
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from hub import typeface  # noqa: E402 (needs the repository on sys.path)
from hub.documents.clinical import Section  # noqa: E402
from hub.documents.freezing import freeze  # noqa: E402
from hub.documents.pdf import render_pdf  # noqa: E402
from tests import ZONE  # noqa: E402
from tests.documents.test_pdf import clinical_document  # noqa: E402
from tests.documents.test_typeface_cache import FpdfParsing, assert_draws_the_same  # noqa: E402

DOCUMENTS = {
    "French report": clinical_document(),
    "signs (€ œ ≥ ₂)": clinical_document(
        sections=(Section("Constantes", "TA ≥ 140/90 — SpO₂ 97 % ; µg, ±2 °C… « cœur » 12,50 € → suivi"),)
    ),
    "Greek, Cyrillic": clinical_document(
        title="Compte rendu — Ωμέγα Жанна", sections=(Section("Observations", "Łukasz Ελληνικά Русский"),)
    ),
}
PATHS = {"fpdf2 parsing": FpdfParsing, "hub fonts": typeface.UnicodePDF}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    hub_class = typeface.UnicodePDF
    cpu: dict[tuple[str, str, str], list[float]] = {}
    sizes: dict[tuple[str, str], int] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds + 1):  # the first round warms up (imports, the fonts parsed once)
            for name, document in DOCUMENTS.items():
                rendered = []
                for path, pdf_class in PATHS.items():
                    typeface.UnicodePDF = pdf_class  # render_pdf imports it at each call
                    try:
                        started = time.process_time()
                        pdf = render_pdf(document, zone=ZONE)
                        rendered_at = time.process_time()
                        freeze(document, Path(tmp), zone=ZONE)
                        frozen_at = time.process_time()
                    finally:
                        typeface.UnicodePDF = hub_class
                    rendered.append(pdf)
                    sizes[name, path] = len(pdf)
                    if round_:
                        cpu.setdefault((name, "render_pdf", path), []).append((rendered_at - started) * 1000)
                        cpu.setdefault((name, "freeze", path), []).append((frozen_at - rendered_at) * 1000)
                assert_draws_the_same(rendered[1], rendered[0])
    print(f"{args.rounds} rounds; load average {os.getloadavg()}; both paths draw the same")
    print(f"{'document':18} {'step':10} {'fpdf2 parsing ms':>17} {'hub fonts ms':>13} {'ratio':>6}")
    for name in DOCUMENTS:
        for step in ("render_pdf", "freeze"):
            before, after = (statistics.median(cpu[name, step, path]) for path in PATHS)
            print(f"{name:18} {step:10} {before:>17.1f} {after:>13.1f} {after / before:>6.2f}")
        before, after = (sizes[name, path] for path in PATHS)
        print(f"{name:18} {'PDF bytes':10} {before:>17} {after:>13} {after / before:>6.2f}")


if __name__ == "__main__":
    main()
