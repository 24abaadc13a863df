"""Read OpenStack config files the way oslo.config does, keeping file and line for every value.

Differences from configparser/crudini that matter for audits: repeated sections merge, a later
value wins, matching quotes around a value are stripped, ``:`` and ``=`` both separate, comments
are recognised only at line start, section names are lower-cased except ``DEFAULT``, and an
indented line continues the previous value. Malformed lines become ``problems`` instead of errors.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from keytools.errors import ConfigError
from keytools.fileutil import MAX_CONFIG, read_user_file


@dataclass(frozen=True)
class Setting:
    """One option's effective value and where it was set."""

    section: str
    option: str
    value: str
    path: str
    line: int


@dataclass(frozen=True)
class Problem:
    path: str
    line: int
    message: str


@dataclass
class OsloConfig:
    path: str
    sections: dict[str, dict[str, Setting]] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # every assignment in file order, for MultiStrOpt options (barbican's [simple_crypto_plugin] kek)
    multi: dict[tuple[str, str], list[Setting]] = field(default_factory=dict)

    def get(self, section: str, option: str, default: str | None = None) -> str | None:
        setting = self.setting(section, option)
        return setting.value if setting else default

    def setting(self, section: str, option: str) -> Setting | None:
        return self.sections.get(normalize_section(section), {}).get(option)

    def get_all(self, section: str, option: str) -> list[Setting]:
        """Every value given for a multi-valued option, in order (oslo.config MultiStrOpt)."""
        return list(self.multi.get((normalize_section(section), option), []))

    def has_section(self, section: str) -> bool:
        return normalize_section(section) in self.sections

    def merge(self, other: OsloConfig) -> None:
        """Apply ``other`` on top (oslo reads --config-dir files after --config-file)."""
        for name, options in other.sections.items():
            self.sections.setdefault(name, {}).update(options)
        self.problems.extend(other.problems)
        for key, values in other.multi.items():
            self.multi.setdefault(key, []).extend(values)


def normalize_section(name: str) -> str:
    name = name.strip()
    return name if name == "DEFAULT" else name.lower()


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_text(text: str, path: str = "<string>") -> OsloConfig:
    conf = OsloConfig(path=path)
    if text.startswith("\ufeff"):
        text = text[1:]
    section: str | None = None
    last: tuple[str, str] | None = None  # (section, option) a continuation line extends
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip("\r\n")
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            last = None if not stripped else last
            continue
        if line[0] in " \t" and last is not None:
            sec, opt = last
            old = conf.sections[sec][opt]
            conf.sections[sec][opt] = Setting(sec, opt, (old.value + "\n" + stripped).strip(),
                                              path, old.line)
            conf.multi[(sec, opt)][-1] = conf.sections[sec][opt]
            continue
        if stripped.startswith("["):
            if not stripped.endswith("]") or len(stripped) < 3:
                conf.problems.append(Problem(path, lineno, f"malformed section header {stripped!r}"))
                section, last = None, None
                continue
            section = normalize_section(stripped[1:-1])
            conf.sections.setdefault(section, {})
            last = None
            continue
        sep = min((i for i in (stripped.find("="), stripped.find(":")) if i > 0), default=-1)
        if sep < 0:
            conf.problems.append(Problem(path, lineno, "line is neither a section, an option nor a comment"))
            last = None
            continue
        if section is None:
            conf.problems.append(Problem(path, lineno, "option before any section header"))
            last = None
            continue
        option = stripped[:sep].strip()
        value = _unquote(stripped[sep + 1:])
        conf.sections[section][option] = Setting(section, option, value, path, lineno)
        conf.multi.setdefault((section, option), []).append(conf.sections[section][option])
        last = (section, option)
    return conf


def decode(data: bytes) -> str:
    """A config file's bytes as text: UTF-8, else latin-1 (which decodes any bytes)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def parse_file(path: str | os.PathLike[str]) -> OsloConfig:
    """Parse one file; unreadable or binary files raise ConfigError naming the file."""
    p = Path(path)
    data = read_user_file(p, "", "Check the path and permissions", ConfigError, missing_hint="Check the path",
                          path_first=True, max_bytes=MAX_CONFIG)
    if b"\x00" in data:
        raise ConfigError(f"{p}: not a text config file (binary data)")
    return parse_text(decode(data), str(p))


def parse_with_conf_d(path: str | os.PathLike[str]) -> OsloConfig:
    """Parse ``path`` and then ``<path>.d/*.conf`` in name order, as services started with
    ``--config-dir`` read them (later files win)."""
    conf = parse_file(path)
    conf_d = Path(f"{path}.d")
    if conf_d.is_dir():
        for extra in sorted(conf_d.glob("*.conf")):
            conf.merge(parse_file(extra))
    return conf
