# SPDX-License-Identifier: LGPL-2.1-or-later
"""README's generated fault tables: render, find, splice, check.

README's "Fault matrix" section holds one markdown table per kind of fault,
each between markers named after it:

    <!-- NAME:begin -->
    | ... |
    <!-- NAME:end -->

NAME "fault-matrix": the VMM fault matrix (test_fault_matrix.py);
"fault-matrix-daemon": the daemon restarts (test_daemon_restart.py). A test
renders what its cells observed (render), writes it to the build dir
(write) and fails while README's copy differs (check_readme);
tests/integration/update-fault-matrix rewrites README's copies (splice).
Standard library only.
"""

from __future__ import annotations

import difflib
import os
import sys
from typing import Iterable, Sequence

HERE = os.path.dirname(os.path.abspath(__file__))
README = os.environ.get("FAULT_MATRIX_README", os.path.join(HERE, "..", "..", "README"))

VMM = "fault-matrix"
DAEMON = "fault-matrix-daemon"

#: The VMs' fates, in the same words in every table.
THAWED = "thawed, RAM verified"
RESTORED = "restored, RAM verified"


def markers(name: str) -> tuple[str, str]:
    return f"<!-- {name}:begin -->", f"<!-- {name}:end -->"


def render(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A markdown table, columns padded to their widest cell."""
    rows = [tuple(r) for r in rows]
    widths = [max(len(r[i]) for r in [tuple(head), *rows]) for i in range(len(head))]

    def line(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

    out = [line(head), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def find(text: str, name: str) -> str | None:
    """What text holds between NAME's markers, or None without them."""
    begin, end = markers(name)
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        return None
    return text[i + len(begin):j].strip("\n") + "\n"


def splice(text: str, name: str, table: str) -> str:
    """text with table between NAME's markers (exactly one pair of them)."""
    begin, end = markers(name)
    if text.count(begin) != 1 or text.count(end) != 1 or text.find(end) < text.find(begin):
        raise ValueError(f"README needs one {begin} ... {end} pair")
    head, rest = text.split(begin)
    _, tail = rest.split(end)
    return f"{head}{begin}\n{table.strip(chr(10))}\n{end}{tail}"


def write(path: str, table: str, what: str) -> None:
    with open(path, "w") as f:
        f.write(table)
    print(f"{what}: table written to {os.path.abspath(path)}", file=sys.stderr)


def check_readme(name: str, table: str, what: str, readme: str = README) -> bool:
    """Whether README's NAME table is table; if not, says why on stderr.
    FAULT_MATRIX_CHECK_README=0 (update-fault-matrix) skips the check."""
    if os.environ.get("FAULT_MATRIX_CHECK_README", "1") == "0":
        return True
    begin, end = markers(name)
    with open(readme) as f:
        have = find(f.read(), name)
    if have is None:
        print(f"{what}: {readme} has no {begin} ... {end} section", file=sys.stderr)
        return False
    if have != table:
        diff = difflib.unified_diff(have.splitlines(True), table.splitlines(True),
                                    f"README ({name})", "observed")
        print(f"{what}: README's table differs from what the tests observed; run "
              "tests/integration/update-fault-matrix BUILD_DIR\n" + "".join(diff),
              file=sys.stderr)
        return False
    return True
