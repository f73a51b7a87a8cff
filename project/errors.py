"""One exception type for bad input, and the wrapper that turns it into one line and exit 2.

>>> from project.errors import InputError, name_list
>>> str(InputError("data.csv: unknown columns " + name_list(f"c{i}" for i in range(9))))
'data.csv: unknown columns c0, c1, c2, c3, c4 and 4 more'
>>> str(InputError("a\\nb"))
'a b'
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Callable, Iterable

MAX_MESSAGE_CHARS = 300  # longest message an InputError carries; longer ones lose their middle
MAX_NAMES = 5  # names shown by name_list before "and N more"
MAX_VALUE_CHARS = 40  # characters of a value shown by shown()

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def one_line(text: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """``text`` on one line of at most ``limit`` characters; a long one loses its middle.

    >>> one_line("x" * 10 + "y" * 10, limit=11)
    'xxx ... yyy'
    """
    text = " ".join(_CONTROL.sub(" ", str(text)).split())
    if len(text) <= limit:
        return text
    keep = max(limit - 5, 2)
    return f"{text[:(keep + 1) // 2]} ... {text[len(text) - keep // 2:]}"


def shown(value, limit: int = MAX_VALUE_CHARS) -> str:
    """``repr(value)``, cut to about ``limit`` characters (with ``...``), for an error message.

    >>> shown("abc"), shown("x" * 100, limit=10)
    ("'abc'", "'xxxxxx...")
    """
    text = repr(value)
    return text if len(text) <= limit else text[: max(limit - 3, 1)] + "..."


def name_list(names: Iterable, limit: int = MAX_NAMES) -> str:
    """``a, b, c`` or ``a, b, c, d, e and 7 more``; each name cut by :func:`shown` if long.

    >>> name_list(["V7"]), name_list(range(8), limit=2)
    ('V7', '0, 1 and 6 more')
    """
    names = [str(n) for n in names]
    parts = [n if len(n) <= MAX_VALUE_CHARS and n.isprintable() else shown(n) for n in names]
    if len(parts) <= limit:
        return ", ".join(parts)
    return f"{', '.join(parts[:limit])} and {len(parts) - limit} more"


class InputError(ValueError):
    """Bad input from the user (a file, a column, a value, an option), in one line of at most
    ``MAX_MESSAGE_CHARS``; scripts print ``error: <message>`` and exit 2, no traceback."""

    def __init__(self, message="", *args):
        super().__init__(one_line(message), *args)


class SettingError(InputError):
    """A bad value of settings named in braces in ``template``: ``str(err)`` names arguments,
    :meth:`naming` (in :func:`project.cli.flag_names`) a command line's flags.

    >>> err = SettingError("{val_fraction} plus {test_fraction} leave no training data")
    >>> str(err), err.settings
    ('val_fraction plus test_fraction leave no training data', ('val_fraction', 'test_fraction'))
    >>> str(err.naming(lambda s: "--" + s.replace("_", "-")))
    '--val-fraction plus --test-fraction leave no training data'
    """

    def __init__(self, template: str):
        self.template = template
        self.settings = tuple(dict.fromkeys(
            field for _, field, _, _ in string.Formatter().parse(template) if field))
        super().__init__(template.format_map({s: s for s in self.settings}))

    @classmethod
    def about(cls, setting: str, problem: str) -> SettingError:
        """``setting`` followed by ``problem`` (plain text: braces in it are kept as they are)."""
        return cls("{" + setting + "} " + literal(problem))

    def naming(self, name: Callable[[str], str]) -> InputError:
        """The same message with every setting shown as ``name(setting)``."""
        return InputError(self.template.format_map({s: name(s) for s in self.settings}))


def literal(text) -> str:
    """``text`` for a :class:`SettingError` template: its braces kept as they are."""
    return str(text).replace("{", "{{").replace("}", "}}")


def file_error(setting: str, message: str) -> SettingError:
    """``message`` about a file, followed by the setting that named it.

    >>> str(file_error("dev", "dev.tsv: no such file"))
    'dev.tsv: no such file (dev)'
    """
    return SettingError(literal(message) + " ({" + setting + "})")


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
