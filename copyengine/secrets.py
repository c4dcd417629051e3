"""Secret references (``env:NAME``, ``file:PATH``) and redaction of what must never be shown."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .paths import job_path


class Secret:
    """A resolved secret. Its repr and str never show the value."""

    __slots__ = ("_ref", "_value")

    def __init__(self, value: str, ref: str = "<inline>") -> None:
        self._value = value
        self._ref = ref

    def reveal(self) -> str:
        return self._value

    @property
    def ref(self) -> str:
        return self._ref

    def __repr__(self) -> str:
        return f"Secret({self._ref!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._ref)


def resolve_secret(ref: str, where: str, base_dir: Path | None = None) -> Secret:
    """``env:NAME`` or ``file:PATH`` (relative to ``base_dir``). Literal values are refused:
    configuration files get copied, mailed and committed."""
    if not isinstance(ref, str):
        raise ConfigError(where, "must be a secret reference string (env:NAME or file:PATH)")
    kind, sep, rest = ref.partition(":")
    if not sep or kind not in ("env", "file") or not rest:
        raise ConfigError(
            where, "must be a secret reference: env:NAME or file:PATH, never the secret itself"
        )
    if kind == "env":
        value = os.environ.get(rest)
        if value is None:
            raise ConfigError(where, f"environment variable {rest} is not set")
        if not value.strip():
            raise ConfigError(where, f"environment variable {rest} is empty")
        return Secret(value, ref)
    path = job_path(rest, where, base_dir if base_dir is not None else Path.cwd())
    try:
        value = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        raise ConfigError(where, f"secret file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(where, f"secret file {path} cannot be read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(where, f"secret file {path} is not UTF-8 text") from None
    if not value:
        raise ConfigError(where, f"secret file {path} is empty")
    return Secret(value, ref)


_AUTHTOKEN = re.compile(r"(authtoken=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9\-_.~+/]+=*", re.IGNORECASE)
_ASSERTION = re.compile(r"((?:client_secret|client_assertion|access_token)[\"'=:\s]+)[^&\s\"',]+")
# a password in a URL's user information (a proxy URL from HTTPS_PROXY): scheme://user:pass@
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)[^@/\s]+@", re.IGNORECASE)


def redact(text: str) -> str:
    """Remove import-URL tokens, bearer tokens, credential fields and URL passwords from a
    string."""
    if "=" not in text and "earer" not in text and ":" not in text:
        return text
    text = _AUTHTOKEN.sub(r"\1<redacted>", text)
    text = _BEARER.sub(r"\1<redacted>", text)
    text = _USERINFO.sub(r"\1<redacted>@", text)
    return _ASSERTION.sub(r"\1<redacted>", text)


def redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, BaseException):
        return redact(f"{type(value).__name__}: {value}")
    return value
