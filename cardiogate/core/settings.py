"""One way to configure every process: command-line flags > environment variables > TOML file > defaults.

Each component declares a pydantic-settings class with its own env prefix
(``CARDIOGATE_GATEWAY__``, ``CARDIOGATE_CLOUD__``, ...); nested fields use ``__``.
A flag typed on the command line is the most specific statement of intent, so it
beats a variable inherited from the shell or a unit file, which beats the file.
A bad file yields a :class:`ConfigError` whose message is one line per problem,
naming the file and the dotted field, so an operator sees exactly what to fix.
"""

from __future__ import annotations

import tomllib
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from cardiogate.core.errors import PermanentError

S = TypeVar("S", bound="LayeredSettings")

_CLI_OVERRIDES: ContextVar[dict[str, Any] | None] = ContextVar("cardiogate_cli_overrides", default=None)
"""Command-line values for the settings being built by :func:`load_settings` (init kwargs carry the file)."""


class ConfigError(PermanentError):
    """A configuration file or environment variable that cannot be used."""


class StrictModel(BaseModel):
    """Base for nested config sections: unknown keys are errors, not silently ignored."""

    model_config = {"extra": "forbid", "frozen": True}


class LayeredSettings(BaseSettings):
    """Settings whose precedence is: command line > environment > file > defaults."""

    model_config = SettingsConfigDict(extra="forbid", env_nested_delimiter="__", frozen=True)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # init kwargs carry the file's content, so the environment must come before them; the command-line
        # values come first of all. Sources are deep-merged, so a flag for one nested field keeps its siblings.
        cli = InitSettingsSource(settings_cls, _CLI_OVERRIDES.get() or {})
        return cli, env_settings, init_settings, file_secret_settings


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file or raise a one-line ConfigError."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """Render pydantic's errors as 'source: field a.b.c: message (got value)' lines."""
    lines = []
    for err in exc.errors():
        field = ".".join(str(part) for part in err["loc"]) or "<root>"
        got = err.get("input")
        shown = "" if isinstance(got, dict | list) or got is None else f" (got {got!r})"
        lines.append(f"{source}: field '{field}': {err['msg']}{shown}")
    return "\n".join(lines)


def load_settings(cls: type[S], path: Path | None = None, **overrides: Any) -> S:
    """Build ``cls`` from an optional TOML file, the environment and command-line ``overrides``.

    ``overrides`` are the values of flags the user actually gave (leave out a flag's ``None``
    default); they win over the environment, which wins over the file.
    """
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    source = str(path) if path is not None else "settings"
    token = _CLI_OVERRIDES.set(dict(overrides))
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None
    except SettingsError as exc:  # an environment variable that cannot be parsed (e.g. bad JSON for a list)
        raise ConfigError(f"environment: {exc}".replace("\n", " ")) from None
    finally:
        _CLI_OVERRIDES.reset(token)


def merge_tables(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``extra`` merged in, tables recursively (neither is changed): a settings overlay that
    sets one nested key keeps that table's other keys."""
    out = dict(base)
    for k, v in extra.items():
        out[k] = merge_tables(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
