"""Re-execute the tutorial notebooks and keep only the outputs that nbval checks.

    G2048LAB_QUICK=1 .venv/bin/python notebooks/refresh_outputs.py [NOTEBOOK ...]

The tests run the notebooks with ``pytest --nbval-lax``: every cell must run, and
only cells marked ``# NBVAL_CHECK_OUTPUT`` (deterministic ones: rules, seeded
examples, parameter counts) are compared with their stored output. So this
script stores exactly those outputs and clears the rest: no stale, machine-specific
output (timings, live widgets, plotly.js) is committed.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).parent
MARK = "# NBVAL_CHECK_OUTPUT"


def refresh(path: Path) -> None:
    book = nbformat.read(path, as_version=4)
    NotebookClient(
        book, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(HERE)}}
    ).execute()
    count = 0
    for cell in book.cells:
        if cell.cell_type != "code":
            continue
        cell.metadata = {}
        if cell.source.startswith(MARK):  # nbval wants a checked cell to look executed
            count += 1
            cell.execution_count = count
        else:
            cell.execution_count = None
            cell.outputs = []
    book.metadata.pop("widgets", None)
    nbformat.write(book, path)
    print(f"refreshed {path.name}")


def main() -> None:
    os.environ.setdefault("G2048LAB_QUICK", "1")
    os.environ.setdefault("G2048LAB_RUNS_DIR", tempfile.mkdtemp(prefix="g2048lab-runs-"))
    paths = [Path(p) for p in sys.argv[1:]] or sorted(HERE.glob("*.ipynb"))
    for path in paths:
        refresh(path)


if __name__ == "__main__":
    main()
