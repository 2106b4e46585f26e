"""Reading a YAML config: bounded, validated, with messages that name each key."""

from __future__ import annotations

import difflib
import reprlib
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from propensity.config.project import Config
from propensity.errors import ConfigError, shorten

__all__ = ["MAX_CONFIG_BYTES", "MAX_CONFIG_VALUES", "config_from_dict", "load_config"]


# A config is a few kilobytes; these bounds keep a hostile file (a YAML alias bomb expands to
# billions of values from a few lines) from taking the machine's memory or flooding the log.
MAX_CONFIG_BYTES = 1_000_000


MAX_CONFIG_BYTES = 1_000_000
MAX_CONFIG_VALUES = 100_000


MAX_CONFIG_VALUES = 100_000
_MAX_PROBLEMS = 20


def load_config(path: str | Path, **overrides: Any) -> Config:
    """Read a YAML config into a validated, frozen :class:`Config`.

    Relative data paths are resolved against the config file's folder's parent when they do
    not exist as given, so ``configs/demo.yaml`` can say ``data/demo/events.parquet``.
    """
    path = Path(path)
    raw = _read_yaml(path)
    raw.update(overrides)
    return config_from_dict(raw, source=str(path))


def _read_yaml(path: Path) -> dict[str, Any]:
    """The config file as a plain mapping, bounded in bytes read and values expanded."""
    name = repr(str(path))
    if path.is_dir():
        raise ConfigError(f"Config file {name} is a folder. Pass --config with a YAML file.")
    if not path.is_file():
        raise ConfigError(f"Config file {name} does not exist. Pass --config with a YAML file.")
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            f"Config file {name} cannot be read ({exc.strerror or exc}). Check its permissions."
        ) from None
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(
            f"Config file {name} is larger than {MAX_CONFIG_BYTES:,} bytes; a config is a few "
            f"kilobytes. Pass the project's YAML config, not a data file."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"Config file {name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line "
            f"{line}). Save it as UTF-8."
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"Config file {name} is not valid YAML: {shorten(str(exc), 300)}"
        ) from None
    except RecursionError:
        raise ConfigError(f"Config file {name} nests too deeply to be a config.") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"Config file {name} must hold a mapping of sections at the top.")
    _check_size(raw, name)
    return raw


def _check_size(raw: Any, name: str) -> None:
    """Refuse a document whose values, with every YAML alias expanded, exceed the bound.

    Aliases share one Python object, so sizes are memoised by identity: the count is exact and
    costs one visit per distinct object, however large the expansion would be.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(obj: Any) -> int:
        if not isinstance(obj, dict | list):
            return 1
        key = id(obj)
        if key in sizes:
            return sizes[key]
        if key in open_:
            raise ConfigError(
                f"Config file {name} holds a value that contains itself (a recursive YAML "
                f"alias). Write the value out."
            )
        open_.add(key)
        items = [*obj.keys(), *obj.values()] if isinstance(obj, dict) else obj
        total = 1
        for item in items:
            total += size(item)
            if total > MAX_CONFIG_VALUES:
                break
        open_.discard(key)
        sizes[key] = total
        return total

    try:
        total = size(raw)
    except RecursionError:
        raise ConfigError(f"Config file {name} nests too deeply to be a config.") from None
    if total > MAX_CONFIG_VALUES:
        raise ConfigError(
            f"Config file {name} expands to more than {MAX_CONFIG_VALUES:,} values (YAML "
            f"aliases repeat what they point at). Write the config without nested aliases."
        )


def config_from_dict(raw: dict[str, Any], source: str = "config") -> Config:
    """Validate a plain mapping into a :class:`Config`, with messages that name each key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, source)) from None
    except RecursionError:
        raise ConfigError(f"Invalid config {source}: it nests too deeply to be a config.") from None


def _explain(exc: ValidationError, source: str) -> str:
    problems = []
    errors = exc.errors(include_url=False, include_context=False)
    for err in errors[:_MAX_PROBLEMS]:
        where = shorten(".".join(str(part) for part in err["loc"]) or "(top level)", 80)
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1])
            close = difflib.get_close_matches(str(err["loc"][-1])[:80], allowed, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(
                f"unknown key '{where}'.{hint} Allowed keys here: {', '.join(sorted(allowed))}."
            )
        elif err["type"] == "missing":
            problems.append(f"missing required key '{where}'.")
        else:
            msg = shorten(err["msg"].removeprefix("Value error, "), 300)
            got = shorten(_safe_repr(err.get("input")), 60)
            problems.append(f"bad value for '{where}': {msg} (got {got}).")
    if len(errors) > _MAX_PROBLEMS:
        problems.append(f"... and {len(errors) - _MAX_PROBLEMS} more problems.")
    body = "\n".join(f"  - {p}" for p in problems)
    return f"Invalid config {source}:\n{body}"


_REPR = reprlib.Repr()


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60


_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 60, 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = 5


def _safe_repr(value: Any) -> str:
    """A repr that stops early on big values: what a user gave, never a megabyte of it."""
    return _REPR.repr(value)


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys of the section at ``loc``, through optional sections and tagged unions (whose
    tag, e.g. ``calendar`` in ``task.anchors.calendar``, is part of pydantic's location)."""
    model: type[BaseModel] = Config
    parts = list(loc)
    i = 0
    while i < len(parts):
        field = model.model_fields.get(str(parts[i]))
        models = _models(getattr(field, "annotation", None))
        if len(models) > 1:
            i += 1
            models = [m for m in models if i < len(parts) and _tag(m) == parts[i]]
        if len(models) != 1:
            return []
        model = models[0]
        i += 1
    return list(model.model_fields)


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The sections an annotation allows (``X | None`` and ``A | B`` unwrapped)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in get_args(annotation) for m in _models(arg)]


def _tag(model: type[BaseModel]) -> Any:
    kind = model.model_fields.get("kind")
    args = get_args(kind.annotation) if kind is not None else ()
    return args[0] if args else None
