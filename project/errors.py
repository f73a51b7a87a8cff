"""One exception type for bad input, and the wrapper that turns it into one line and exit 2."""

from __future__ import annotations

import sys
from collections.abc import Callable


class InputError(ValueError):
    """Bad input from the user: a file, a column, a value, an option.

    The message is one line saying what is wrong and where (file, line, option).
    Scripts turn it into ``error: <message>`` on stderr and exit code 2, with no traceback.
    """


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's ``main``; bad input becomes one line on stderr and exit code 2."""
    try:
        code = main()
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)
