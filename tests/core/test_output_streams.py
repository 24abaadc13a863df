"""Output that cannot break (issue 21): a closed stdout ends quietly, text that cannot be encoded
is escaped instead of ending in exit 70, a group without its command shows its help plainly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from keytools.errors import EXIT_CLOSED_STDOUT
from tests.helpers.cli import invoke, keytools_argv


@pytest.mark.parametrize("args", [["barbican", "--help"], ["--help"], ["audit", "--list-rules"]])
def test_closed_stdout_ends_quietly(args):
    read_end, write_end = os.pipe()
    os.close(read_end)  # `keytools ... | head -1` once head has exited
    try:
        proc = subprocess.run(keytools_argv(*args), stdout=write_end, stderr=subprocess.PIPE, timeout=120)
    finally:
        os.close(write_end)
    assert proc.returncode == EXIT_CLOSED_STDOUT
    assert proc.stderr == b""  # no traceback, no usage dump, no 'Exception ignored'


def test_group_without_its_command_prints_the_help_not_an_error():
    result = invoke(["barbican"])
    assert result.exit_code == 2
    assert result.stderr.startswith("Usage: keytools barbican")
    assert "keytools: error" not in result.output


def test_stdout_escapes_what_it_cannot_encode():
    code = ("from keytools import output; output.safe_streams(); "
            "print('node-\\udcff'); print('\\ud800', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", f"import sys; {code}"], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONIOENCODING": "utf-8"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == b"node-\\udcff\n" and proc.stderr == b"\\ud800\n"


def test_table_output_with_lone_surrogates(capsys):
    from keytools import output

    output.emit([{"name": "n\udcff", "value": "\ud800"}], "table", ["name", "value"])
    printed = capsys.readouterr().out
    assert "n\\xff" in printed and "\\ud800" in printed
    printed.encode("utf-8")
