"""The sections of docs/benchmarks.md that benchmark scripts write with `--write`, and the writer.

Each heading names one section; a script writes the whole section, heading first,
and every other section of the page stays as it was.
"""

from __future__ import annotations

import re
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"

# One per section a script writes; tests/test_scripts_benchmarks.py checks each is in the page.
TRAINING = "### Training the forest presets"
SERVING_FOREST = "### The forest, one image per request"
SERVING_MLP = "### The neural network, one image per request"
SERVING_FAIRNESS = "### While one client loops the largest batch"
SERVING_AB = "### Against another checkout"
IMAGE = "### Build and push"


def write_section(section: str, docs: Path = DOCS) -> None:
    """Put `section` in place of the section under its first line, the heading.

    A section runs to the next heading of its level or above, so the subsections
    after it stay; a heading not yet in the page goes at its end.
    """
    heading = section.split("\n", 1)[0]
    level = len(heading) - len(heading.lstrip("#"))
    text = docs.read_text() if docs.is_file() else "# Benchmarks\n"
    pattern = re.compile(rf"^{re.escape(heading)}\n.*?(?=^#{{1,{level}}} |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _: section.rstrip("\n") + "\n\n", text, count=1)
    else:
        text = text.rstrip("\n") + "\n\n" + section
    docs.write_text(text.rstrip("\n") + "\n")
