"""One way to configure every process: a TOML file, overridden by environment variables.

Each component declares a pydantic-settings class with its own env prefix
(``CARDIOGATE_GATEWAY__``, ``CARDIOGATE_CLOUD__``, ...); nested fields use ``__``.
A bad file yields a :class:`ConfigError` whose message is one line per problem,
naming the file and the dotted field, so an operator sees exactly what to fix.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

S = TypeVar("S", bound="LayeredSettings")


class ConfigError(Exception):
    """A configuration file or environment variable that cannot be used."""


class StrictModel(BaseModel):
    """Base for nested config sections: unknown keys are errors, not silently ignored."""

    model_config = {"extra": "forbid", "frozen": True}


class LayeredSettings(BaseSettings):
    """Settings whose precedence is: environment > file > defaults."""

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
        # init kwargs carry the file's content, so the environment must come first.
        return env_settings, init_settings, file_secret_settings


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
    """Build ``cls`` from an optional TOML file, the environment and explicit overrides."""
    data: dict[str, Any] = read_toml(path) if path is not None else {}
    data.update(overrides)
    source = str(path) if path is not None else "settings"
    try:
        return cls(**data)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, source)) from None
    except SettingsError as exc:  # an environment variable that cannot be parsed (e.g. bad JSON for a list)
        raise ConfigError(f"environment: {exc}".replace("\n", " ")) from None
