"""An encrypted volume type's encryption spec as a value, validated before any API call.

Cinder stores whatever it is given (its schema checks only ``control_location``); a wrong cipher or
key size shows up only when os-brick runs cryptsetup on attach. So the rules live here, once, and
serve both ``create`` (refuse bad input) and ``check`` (report what is stored).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

from keytools.errors import UsageError

LUKS = "luks"
PLAIN = "plain"
PROVIDERS = (LUKS, PLAIN)

# os-brick's LEGACY_PROVIDER_CLASS_TO_FORMAT_MAP: class paths older clouds stored as the provider.
LEGACY_PROVIDERS: dict[str, str | None] = {
    "nova.volume.encryptors.luks.LuksEncryptor": LUKS,
    "nova.volume.encryptors.cryptsetup.CryptsetupEncryptor": PLAIN,
    "nova.volume.encryptors.nop.NoopEncryptor": None,
    "os_brick.encryptors.luks.LuksEncryptor": LUKS,
    "os_brick.encryptors.cryptsetup.CryptsetupEncryptor": PLAIN,
    "os_brick.encryptors.nop.NoopEncryptor": None,
    "LuksEncryptor": LUKS,
    "CryptsetupEncryptor": PLAIN,
    "NoOpEncryptor": None,
}

CONTROL_LOCATIONS = ("front-end", "back-end")

# dm-crypt cipher specification: cipher-chainmode-ivmode[:ivopts]. Block ciphers with their key sizes
# (bits); XTS splits the key into two halves, so it needs twice the cipher's key.
BLOCK_CIPHERS: dict[str, tuple[int, ...]] = {
    "aes": (128, 192, 256),
    "serpent": (128, 192, 256),
    "twofish": (128, 192, 256),
    "camellia": (128, 192, 256),
}
CHAIN_MODES = ("xts", "cbc")
IV_MODES = ("plain64", "plain64be", "plain", "essiv", "benbi", "lmk", "null", "eboiv")
ESSIV_HASHES = ("sha256", "sha512", "sha1")
_CIPHER_RE = re.compile(r"^(?P<cipher>[a-z0-9]+)-(?P<chain>[a-z0-9]+)-(?P<iv>[a-z0-9]+)(?::(?P<ivopt>[a-z0-9]+))?$")

DEFAULT_CIPHER = "aes-xts-plain64"
DEFAULT_KEY_SIZE = 256
DEFAULT_CONTROL_LOCATION = "front-end"

TEMPLATE_NAME = "LuksEncryptor-Template-{bits}"
TEMPLATES = (256, 512)


@dataclass(frozen=True)
class EncryptionSpec:
    """What Cinder's ``encryption`` object holds (provider normalised to luks/plain)."""

    provider: str
    cipher: str | None
    key_size: int | None
    control_location: str

    def as_body(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, other: EncryptionSpec) -> list[str]:
        """``field: theirs -> ours`` for every field that differs."""
        return [f"{name} {getattr(other, name)} (wanted {value})"
                for name, value in asdict(self).items() if getattr(other, name) != value]


def normalize_provider(provider: str, option: str = "--provider") -> str:
    """luks/plain, accepting the legacy encryptor class names os-brick still maps."""
    value = provider.strip()
    if value.lower() in PROVIDERS:
        return value.lower()
    if value in LEGACY_PROVIDERS:
        mapped = LEGACY_PROVIDERS[value]
        if mapped is None:
            raise UsageError(f"{option} {value}: the no-op encryptor does not encrypt",
                             "Use --provider luks")
        return mapped
    raise UsageError(f"{option} {value!r} is not a volume encryption provider",
                     "Use luks (recommended) or plain, or a legacy class name such as "
                     "nova.volume.encryptors.luks.LuksEncryptor")


def cipher_problem(cipher: str) -> str | None:
    """Why dm-crypt would not accept ``cipher`` (None when it would)."""
    match = _CIPHER_RE.match(cipher)
    if not match:
        return f"cipher {cipher!r} is not in dm-crypt's cipher-chainmode-ivmode form (e.g. {DEFAULT_CIPHER})"
    name, chain, iv, ivopt = match.group("cipher", "chain", "iv", "ivopt")
    if name not in BLOCK_CIPHERS:
        return f"cipher {cipher!r}: unknown block cipher {name!r} (known: {', '.join(BLOCK_CIPHERS)})"
    if chain not in CHAIN_MODES:
        return f"cipher {cipher!r}: unknown chain mode {chain!r} (known: {', '.join(CHAIN_MODES)})"
    if iv not in IV_MODES:
        return f"cipher {cipher!r}: unknown IV mode {iv!r} (known: {', '.join(IV_MODES)})"
    if iv == "essiv" and ivopt not in ESSIV_HASHES:
        return f"cipher {cipher!r}: essiv needs a hash, e.g. {name}-{chain}-essiv:sha256"
    if iv != "essiv" and ivopt:
        return f"cipher {cipher!r}: IV mode {iv!r} takes no ':{ivopt}' option"
    return None


def valid_key_sizes(cipher: str) -> tuple[int, ...]:
    """Key sizes (bits) dm-crypt accepts for a well-formed ``cipher``."""
    match = _CIPHER_RE.match(cipher)
    assert match, cipher
    sizes = BLOCK_CIPHERS[match.group("cipher")]
    if match.group("chain") == "xts":
        # XTS: two keys of the cipher's size; 384 (AES-192) is not offered by LUKS tooling.
        return tuple(2 * s for s in sizes if s != 192)
    return sizes


def key_size_problem(cipher: str, key_size: int) -> str | None:
    sizes = valid_key_sizes(cipher)
    if key_size in sizes:
        return None
    why = " (XTS splits the key in two halves)" if "-xts-" in cipher else ""
    return f"key size {key_size} is not valid for {cipher}{why}; use {' or '.join(map(str, sizes))}"


def weakness(spec: EncryptionSpec) -> str | None:
    """A valid but unsafe choice worth failing a check on (None when sound)."""
    if spec.cipher and re.search(r"-cbc-plain(64)?(be)?$", spec.cipher):
        return f"{spec.cipher}: CBC with a predictable IV leaks patterns (watermarking); use aes-xts-plain64"
    if spec.cipher and spec.cipher.endswith("-null"):
        return f"{spec.cipher}: a null IV encrypts equal sectors identically; use aes-xts-plain64"
    return None


def build(provider: str = LUKS, cipher: str = DEFAULT_CIPHER, key_size: int = DEFAULT_KEY_SIZE,
          control_location: str = DEFAULT_CONTROL_LOCATION) -> EncryptionSpec:
    """A validated spec from command-line values; the first problem raises UsageError (exit 2)."""
    normalized = normalize_provider(provider)
    cipher = cipher.strip().lower()
    problem = cipher_problem(cipher)
    if problem:
        raise UsageError(f"--cipher: {problem}", f"Use {DEFAULT_CIPHER}")
    problem = key_size_problem(cipher, key_size)
    if problem:
        raise UsageError(f"--key-size: {problem}")
    if control_location not in CONTROL_LOCATIONS:
        raise UsageError(f"--control-location {control_location!r} is not valid",
                         "Use front-end (Nova encrypts on the compute host) or back-end (the storage does)")
    return EncryptionSpec(normalized, cipher, key_size, control_location)


def template(bits: int) -> tuple[str, EncryptionSpec]:
    """The documented ``LuksEncryptor-Template-256`` (and its 512-bit sibling)."""
    if bits not in TEMPLATES:
        raise UsageError(f"--template {bits} is not a template", "Use --template 256 or --template 512")
    return TEMPLATE_NAME.format(bits=bits), build(LUKS, DEFAULT_CIPHER, bits, DEFAULT_CONTROL_LOCATION)


def from_cinder(encryption: dict[str, Any]) -> tuple[EncryptionSpec, list[str]]:
    """The spec Cinder stores, as a value, plus every problem with it (empty list: sane)."""
    raw_provider = str(encryption.get("provider") or "")
    problems: list[str] = []
    try:
        provider = normalize_provider(raw_provider, option="provider")
    except UsageError as exc:
        provider = raw_provider
        problems.append(exc.message)
    cipher = encryption.get("cipher")
    key_size = encryption.get("key_size")
    key_size = int(key_size) if key_size not in (None, "") else None
    spec = EncryptionSpec(provider, cipher, key_size, str(encryption.get("control_location") or ""))
    if not cipher:
        problems.append("cipher not set (cryptsetup's build-time default applies)")
    else:
        problem = cipher_problem(cipher)
        if problem:
            problems.append(problem)
        elif key_size is None:
            problems.append("key size not set (cryptsetup's build-time default applies)")
        else:
            problem = key_size_problem(cipher, key_size)
            if problem:
                problems.append(problem)
    if spec.control_location not in CONTROL_LOCATIONS:
        problems.append(f"control location {spec.control_location!r} is not front-end or back-end")
    weak = weakness(spec) if not problems else None
    if weak:
        problems.append(weak)
    return spec, problems
