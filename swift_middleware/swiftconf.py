"""Read a Swift config file (proxy-server.conf, keymaster.conf, a conf.d directory) as Swift does.

Swift's ``readconf`` (configparser with its ``NicerInterpolation``, option names kept as written,
a directory read as its sorted ``*.conf`` files) is mirrored here so that every failure becomes
one line naming the file and line, never the value: configparser's own messages quote the
offending line (a password among them) over several lines. The bytes come through
``read_user_file`` (a regular file, bounded), never an open() that a FIFO would block.
"""

from __future__ import annotations

import configparser
import os
from typing import Any

from keytools.errors import ConfigError
from keytools.fileutil import MAX_CONFIG, read_user_file

SYNTAX_HINT = "Fix the syntax: Swift reads it with Python's configparser ('option = value' under a [section])"
INTERPOLATION_HINT = "Write %% for a literal %, or %(name)s for another option of the section or [DEFAULT]"


def check_path(path: Any, what: str) -> str:
    """``path`` as a usable file name, or ConfigError: a NUL byte, or not text at all."""
    if not isinstance(path, (str, os.PathLike)):
        raise ConfigError(f"{what} is not a file path", "Give the path of the config file")
    text = os.fspath(path)
    if not isinstance(text, str) or not text.strip():
        raise ConfigError(f"{what} is not a file path", "Give the path of the config file")
    if "\x00" in text:
        raise ConfigError(f"{what} contains a NUL byte, which no file path can hold",
                          "Give the path of the config file")
    return text


def _conf_files(path: str) -> list[str]:
    """The files Swift reads for ``path``: the file itself, or a directory's ``*.conf`` in order."""
    if not os.path.isdir(path):
        return [path]
    try:
        names = os.listdir(path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the directory ({exc.strerror})",
                          "Check the path and permissions") from None
    return [os.path.join(path, n) for n in sorted(names) if n.endswith(".conf") and not n.startswith(".")]


def _lines(text: str) -> str:
    """Newlines as Swift's ``open()`` (universal newlines) hands them to configparser."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _text(path: str, data: bytes) -> str:
    try:
        return _lines(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        line = _lines(data[:exc.start].decode("utf-8")).count("\n") + 1
        raise ConfigError(f"{path} line {line}: not UTF-8 text", "Save the file as UTF-8") from None


def _line_of(texts: list[tuple[str, str]], section: str | None, option: str | None) -> tuple[str, int]:
    """Where ``option`` of ``section`` (or of DEFAULT) is set: the last assignment wins, as in Swift."""
    found: tuple[str, int] | None = None
    for wanted in (section, configparser.DEFAULTSECT):
        for path, text in texts:
            current = None
            for lineno, line in enumerate(text.split("\n"), start=1):
                stripped = line.strip()
                if stripped.startswith("[") and "]" in stripped:
                    current = stripped[1:stripped.index("]")]
                elif current == wanted and line[:1] not in (" ", "\t") and option is not None:
                    name = stripped.replace(":", "=", 1).split("=", 1)[0].strip()
                    if name == option:
                        found = (path, lineno)
        if found:
            return found
    return (texts[-1][0] if texts else "?", 0)


def _where(path: str, line: int) -> str:
    return f"{path} line {line}" if line else path


def _one_line(exc: configparser.Error, source: str, texts: list[tuple[str, str]]) -> ConfigError:
    """configparser's error as one line naming file and line, never the line's text."""
    src = getattr(exc, "source", None) or source
    if isinstance(exc, configparser.MissingSectionHeaderError):
        return ConfigError(f"{_where(src, exc.lineno)}: an option or text before the first [section] header",
                           "Start the file with a section header such as [DEFAULT]")
    if isinstance(exc, configparser.DuplicateOptionError):
        return ConfigError(f"{_where(src, exc.lineno or 0)}: option {exc.option} appears twice in "
                           f"[{exc.section}]", "Keep one of them (Swift refuses duplicates)")
    if isinstance(exc, configparser.DuplicateSectionError):
        return ConfigError(f"{_where(src, exc.lineno or 0)}: section [{exc.section}] appears twice",
                           "Merge them into one (Swift refuses duplicates)")
    if isinstance(exc, configparser.ParsingError):
        lines = [n for n, _text in exc.errors]
        more = f" (and {len(lines) - 1} more line(s))" if len(lines) > 1 else ""
        return ConfigError(f"{_where(src, lines[0] if lines else 0)}: cannot parse the line: neither "
                           f"'option = value', a [section] header nor a comment{more}", SYNTAX_HINT)
    if isinstance(exc, configparser.InterpolationError):
        file, line = _line_of(texts, exc.section, exc.option)
        return ConfigError(f"{_where(file, line)}: [{exc.section}] {exc.option}: bad %-interpolation "
                           f"({type(exc).__name__})", INTERPOLATION_HINT)
    return ConfigError(f"{source}: not a valid config file ({type(exc).__name__})", SYNTAX_HINT)


def read(path: Any, section: str | None = None, *, what: str = "",
         hint: str = "Check the path and permissions") -> dict[str, Any]:
    """Swift's ``readconf(path, section)``: one section's options, or every section as a dict.

    Raises ConfigError (exit 2) naming ``what`` and the path: missing, unreadable, not a regular
    file, not UTF-8, a syntax or interpolation error (file and line only), no such section.
    """
    subject = what or "config file"
    name = check_path(path, subject)
    label = f"{what} {name}" if what else name
    from swift.common.utils.config import NicerInterpolation

    parser = configparser.ConfigParser({}, interpolation=NicerInterpolation())
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # Swift keeps option case
    texts: list[tuple[str, str]] = []
    files = _conf_files(name)
    if not files:
        raise ConfigError(f"{label}: no *.conf file in the directory", hint)
    try:
        for file in files:
            text = _text(file, read_user_file(file, what if file == name else "", hint, ConfigError,
                                              path_first=True, max_bytes=MAX_CONFIG))
            texts.append((file, text))
            parser.read_string(text, source=file)
        if section is not None:
            if not parser.has_section(section):
                raise ConfigError(f"{label}: no [{section}] section", hint)
            conf: dict[str, Any] = dict(parser.items(section))
            conf.setdefault("log_name", section)
        else:
            conf = {s: dict(parser.items(s)) for s in parser.sections()}
            conf.setdefault("log_name", None)
    except configparser.Error as exc:
        raise _one_line(exc, name, texts) from None
    except RecursionError:  # a %(a)s chain deeper than the stack (configparser stops at depth 10)
        raise ConfigError(f"{label}: bad %-interpolation (too deep)", INTERPOLATION_HINT) from None
    conf["__file__"] = name
    return conf
