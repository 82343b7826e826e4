"""Option files: the user's ``--config FILE`` (trusted) and a folder's own ``sslmon.yaml`` (untrusted).

Both are read the same careful way: at most :data:`MAX_BYTES`, UTF-8 text, YAML through
``yaml.safe_load`` (no Python tags), no aliases (a "billion laughs" document expands
aliases exponentially) and at most :data:`MAX_DEPTH` levels of nesting. A folder's file
travels with the data, so it may set only :data:`FOLDER_KEYS`: how the checkpoints are
evaluated, never a trust flag, a path to read or write, or what happens to the output.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, get_args, get_origin

import yaml

from sslmon._text import one_line
from sslmon.errors import SslmonError
from sslmon.io.output import read_text

FOLDER_CONFIG = "sslmon.yaml"
MAX_BYTES = 1 << 20
MAX_DEPTH = 20
ALIASES = {"format": "fmt"}  # documented key -> option name
# Evaluation settings a folder's own sslmon.yaml may set. Everything else (trust_checkpoints, dataset, output,
# save_z3, config, no_cache, fmt, judge, quiet) only from the command line or --config.
FOLDER_KEYS = frozenset({"limit", "train_limit", "image_size", "arch", "k", "seed", "seeds", "preset", "umap_epochs", "z3_kmeans", "rank_by",
                         "metrics", "bin_factor", "batch_size", "device", "precision", "fail_if"})


# The largest value an option file (--config or a folder's sslmon.yaml) may set, so that a downloaded folder cannot
# make a run endless or exhaust memory; larger values only on the command line. "seeds": how many seeds.
FILE_BOUNDS: dict[str, int | float] = {"umap_epochs": 5000, "seeds": 20, "limit": 10_000_000, "train_limit": 10_000_000,
                                       "image_size": 1024, "k": 1000, "batch_size": 4096, "bin_factor": 10.0,
                                       "lidar_views": 64}


class ConfigError(SslmonError, ValueError):
    """An option file that is refused; the message names the file (and the key), on one line."""


def read_yaml(path: Path) -> dict[str, Any]:
    """The mapping of an option file, read safely (see module docstring); ConfigError otherwise."""
    text = read_text(path, MAX_BYTES, ConfigError, "a YAML option file")
    try:
        depth = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                raise ConfigError(f"{path}: YAML aliases (*{event.anchor}) are not allowed in option files")
            depth += isinstance(event, yaml.CollectionStartEvent) - isinstance(event, yaml.CollectionEndEvent)
            if depth > MAX_DEPTH:
                raise ConfigError(f"{path}: nested more than {MAX_DEPTH} levels deep")
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({one_line(exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of option names to values, got a {type(data).__name__}")
    return data


def folder_config(folder: Path) -> Path | None:
    """The folder's own option file, if it has one; ConfigError when it is a link to a file outside the folder."""
    path = folder / FOLDER_CONFIG
    if not path.is_file():
        return None
    if path.resolve().parent != folder.resolve():
        raise ConfigError(f"{path}: links to {path.resolve()}, outside the folder; a folder's {FOLDER_CONFIG} must be its own")
    return path


def option_name(key: Any) -> str:
    """``rank-by`` -> ``rank_by``; documented aliases (``format``) -> the option's name."""
    name = str(key).replace("-", "_")
    return ALIASES.get(name, name)


def check_folder_key(path: Path, key: Any) -> None:
    """ConfigError unless a folder's own option file may set ``key``."""
    if option_name(key) not in FOLDER_KEYS:
        raise ConfigError(f"{path}: '{key}' cannot be set by a folder's own {FOLDER_CONFIG} (it travels with the data); "
                          f"give it on the command line or in --config. A folder may set: {', '.join(sorted(FOLDER_KEYS))}")


def check_bound(path: Path, key: Any, value: Any) -> None:
    """ConfigError naming the file and key when an option file sets ``key`` above :data:`FILE_BOUNDS` (for
    ``seeds``: more seeds than that, a tuple)."""
    name = option_name(key)
    if name not in FILE_BOUNDS or value is None:
        return
    size = len(value) if name == "seeds" else value
    if size > FILE_BOUNDS[name]:
        what = f"{len(value)} seeds" if name == "seeds" else str(value)
        raise ConfigError(f"{path}: option '{key}': {what} is above the {FILE_BOUNDS[name]:g} an option file may set "
                          "(a folder's file could make the run endless); give a larger value on the command line")


_WANTED = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def yaml_value(name: str, value: Any) -> Any:
    """YAML forms of options that are comma-separated text on the command line: ``seeds: 3``,
    ``seeds: [0, 5]`` and ``metrics: [rankme, l2_std]`` become ``"3"``, ``"0,5,"`` and ``"rankme,l2_std"``
    (a trailing comma keeps a one-item seed list a list). Anything else is returned as it is."""
    scalar = (int, str)
    if name in ("seeds", "metrics") and isinstance(value, list) and value and all(
            isinstance(v, scalar) and not isinstance(v, bool) for v in value):
        return ",".join(map(str, value)) + ("," if name == "seeds" else "")
    if name == "seeds" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def check_type(path: Path, key: Any, value: Any, expected: type, multiple: bool) -> Any:
    """``value`` checked against the option's type (int, float, bool or str; an int passes as a float); a single
    string for a repeatable option becomes a one-item list. ConfigError naming the file and key otherwise."""
    if value is None:
        return None
    if multiple:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ConfigError(f"{path}: option '{key}' must be a list or a string, got {type(value).__name__}")
        return [check_type(path, key, item, expected, False) for item in items]
    types = (int, float) if expected is float else (expected,)
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, types):
        raise ConfigError(f"{path}: option '{key}' must be {_WANTED[expected]}, got {type(value).__name__} {value!r:.40}")
    return value


FILE_ONLY_ARGUMENTS = ("paths", "names", "runs", "folder", "config", "help")  # never set by an option file


def option_defaults(params: dict[str, Any], ctx: Any, files: list[tuple[Path, bool]], given: set[str],
                    say: Callable[[str], None]) -> dict[str, Any]:
    """The option values that the option ``files`` give (each ``(path, untrusted)``; an earlier file wins), as a
    Click ``default_map``: the values the command line (the option names in ``given``) does not set. ``params``:
    the command's Click parameters by name, whose ``process_value(ctx, value)`` checks each value (coercion,
    bounds, callback). ConfigError naming the file (and key) for an unknown key, a key an untrusted file may not
    set, a value of the wrong type, or one that the option or :data:`FILE_BOUNDS` refuses."""
    defaults: dict[str, Any] = {}
    for path, untrusted in files:
        data = read_yaml(path)
        overridden = [str(key) for key in data if option_name(key) in given]
        if data:
            say(f"read options from {path}: {', '.join(map(str, data))}"
                + (f" (the command line wins for {', '.join(overridden)})" if overridden else ""))
        for key, value in data.items():
            name = option_name(key)
            if name not in params or name in FILE_ONLY_ARGUMENTS:
                raise ConfigError(f"{path}: unknown option '{key}'")
            if untrusted:
                check_folder_key(path, key)
            value = check_type(path, key, yaml_value(name, value), _option_type(params[name]), params[name].multiple)
            if name in given or name in defaults or value is None:
                continue
            try:
                checked = params[name].process_value(ctx, value)  # coercion, bounds, callback
            except Exception as exc:
                raise ConfigError(f"{path}: option '{key}': {one_line(exc)}") from None
            check_bound(path, key, checked)
            defaults[name] = value
    return defaults


def _option_type(param: Any) -> type:
    """The Python type an option takes (int, float, bool, else str), for checking values read from YAML."""
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
    if annotation is None:  # typer versions whose options are plain click options
        annotation = {"integer": int, "integer range": int, "float": float, "float range": float, "boolean": bool}.get(
            param.type.name, str)
    if get_origin(annotation) is list:
        annotation = get_args(annotation)[0]
    return annotation if annotation in (int, float, bool) else str
