"""The territory's zone comes from the configuration only: HUB_TIMEZONE, whose default in hub.config is the one
place the code names a zone."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NAMED_ZONE = re.compile(r"[\"'](Europe|America|Indian|Pacific|Atlantic)/\w+[\"']")


def test_no_code_names_the_zone_but_the_configuration_defaults():
    named = [
        str(path.relative_to(ROOT))
        for package in ("hub", "scheduling", "workflows", "connectors", "bench")
        for path in sorted((ROOT / package).rglob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if NAMED_ZONE.search(line)
    ]
    assert named == ["hub/config.py"]
