"""The phone app: ``dashboard.ipynb`` served by Voila with the project's PWA template.

``g2048lab dashboard`` runs ``python -m g2048lab.phone.app`` with ``JUPYTER_PATH`` pointing at
``share/jupyter`` here, so the template works from a plain ``pip install``.
"""

from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).parent
NOTEBOOK = HERE / "dashboard.ipynb"
JUPYTER_DIR = HERE / "share" / "jupyter"
TEMPLATE = "g2048lab"
TEMPLATE_DIR = JUPYTER_DIR / "voila" / "templates" / TEMPLATE
STATIC_DIR = TEMPLATE_DIR / "static"

# The server's secrets travel to ``python -m g2048lab.phone.app`` in these environment variables,
# never on its command line: /proc/PID/cmdline (``ps``) is readable by every local user, the
# environment only by this one. A user gives ``g2048lab dashboard`` a token of their choice in
# TOKEN_ENV too (or in a file), never as an argument.
TOKEN_ENV = "G2048LAB_DASHBOARD_TOKEN"
PASSWORD_HASH_ENV = "G2048LAB_DASHBOARD_PASSWORD_HASH"
