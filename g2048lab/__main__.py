import contextlib
import sys

from .affinity import pin_from_env

# pin before numpy's threads start (cli imports it): they keep the mask they start with;
# a bad G2048LAB_CPUS is left to main, which says so in one line
with contextlib.suppress(ValueError):
    pin_from_env()

from .cli import main  # noqa: E402

sys.exit(main())
