import sys

from .affinity import pin_from_env

try:  # before numpy's threads start (cli imports it): they keep the mask they start with
    pin_from_env()
except ValueError as error:
    print(f"g2048lab: error: {error}", file=sys.stderr)
    sys.exit(2)

from .cli import main  # noqa: E402

sys.exit(main())
