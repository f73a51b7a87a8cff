"""InputError: whatever it is given, one line of at most MAX_MESSAGE_CHARS characters."""

import pytest

from project.errors import MAX_MESSAGE_CHARS, InputError, name_list, one_line, run_cli, shown

pytestmark = pytest.mark.backend_independent  # no Keras: make test runs it once


def test_control_characters_and_line_breaks_become_spaces():
    message = str(InputError("bad.csv:\nunknown\x0bcolumn\r\n'x'\x1b[2J\u2028end"))
    assert message == "bad.csv: unknown column 'x' [2J end"


def test_a_long_message_keeps_its_start_and_end():
    message = str(InputError("/data/" + "x" * 5000 + ".csv: not a text CSV file (--data)"))
    assert len(message) <= MAX_MESSAGE_CHARS
    assert message.startswith("/data/xxx") and message.endswith(".csv: not a text CSV file (--data)")
    assert " ... " in message
    assert one_line("short") == "short"


def test_names_and_values_are_capped():
    assert name_list([f"c{i}" for i in range(12)]) == "c0, c1, c2, c3, c4 and 7 more"
    assert name_list(["a\nb", "y" * 100])[:7] == "'a\\nb',"
    assert len(name_list(["y" * 1000])) <= 45
    assert shown("z" * 10_000).endswith("...") and len(shown("z" * 10_000)) <= 45


def test_run_cli_prints_one_line_and_exits_2(capsys):
    def main():
        raise InputError("a\nb")

    with pytest.raises(SystemExit) as info:
        run_cli(main)
    assert info.value.code == 2 and capsys.readouterr().err == "error: a b\n"
