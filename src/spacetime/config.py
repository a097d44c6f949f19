"""Dataclass configs from YAML, overridden from the command line.

    cfg = load_config(TrainVAEConfig, "configs/vae-world.yaml", ["--optim.lr", "3e-4", "--max_steps", "100"])

Keys are the dataclass fields; nested configs use dots. An unknown key or a value of the wrong
type is a ValueError naming the key, the file and what was expected.

A file may start from another: `base: dit-world.yaml` (a path relative to the file) reads that file
first, then this file's keys replace its keys (mappings merged key by key, lists replaced whole),
then the command line's. An experiment is then its differences from the run it varies.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class _Given(str):
    """A scalar from the command line: the text as typed, and `.value` as YAML reads it. A key that
    takes a string gets the text (YAML 1.1 read `--run_dir 010` as the folder `8`, `12:30` as `750`,
    `2024-01-01` as a date, refused), a number key Python's reading of it (`--seed 010` was 8)."""

    value: Any

    def __new__(cls, text: str, value: Any) -> _Given:
        obj = super().__new__(cls, text)
        obj.value = value
        return obj


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if isinstance(value, _Given):
        takes = typing.get_args(tp) if origin in (typing.Union, types.UnionType) else (tp,)
        if str in takes and value.value is not None:
            return str(value)
        if origin in (tuple, list):  # `--sample_prompts 12:30`, `--model.channels 010`: items of the text
            value = str(value)
        elif tp in (int, float):
            try:
                return tp(str(value))
            except ValueError:
                if isinstance(value.value, bool):  # was "expected int, got True" for `--max_steps yes`
                    raise ValueError(f"{key}: expected {tp.__name__}, got {str(value)!r}") from None
                value = value.value  # "1e3" for an int: as YAML reads it, below
        else:
            value = value.value
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _convert(value, a, key)
            except ValueError as e:
                errors.append(str(e))
        raise ValueError(errors[0] if errors else f"{key}: cannot read {value!r}")
    if dataclasses.is_dataclass(tp):
        if isinstance(tp, type) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a mapping of {tp.__name__} fields, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.")
    if origin in (tuple, list):
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else Any
        if inner is str and isinstance(value, str) and not value.strip().startswith("["):
            # one string for a list of strings is one item: a prompt's commas were cut into several prompts
            value = [value] if value.strip() else []
        if isinstance(value, str):
            try:
                value = yaml.safe_load(value) if value.strip().startswith("[") else [v for v in value.split(",") if v]
            except yaml.YAMLError as e:
                raise ValueError(f"{key}: cannot read {value!r} as a list ({_yaml_problem(e)})") from None
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        items = [_convert(v, inner, key) for v in value]
        return tuple(items) if origin is tuple else items
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, int) and value in (0, 1):  # `--flag 1`: the command line's YAML reads an int
            return bool(value)
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    if tp in (int, float):
        if isinstance(value, bool):
            raise ValueError(f"{key}: expected {tp.__name__}, got {value!r}")
        try:
            # "1e3" is a string to YAML 1.1 (it wants "1.0e+3"): read it as the number it is
            number = float(value) if isinstance(value, str) else value
            out = tp(number)
        except (TypeError, ValueError, OverflowError):
            raise ValueError(f"{key}: expected {tp.__name__}, got {value!r}") from None
        if tp is int and isinstance(number, float) and number != out:
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return out
    if tp is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return str(value)
    return value


def from_dict(cls: type[T], data: dict, prefix: str = "") -> T:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for k in data:
        if not isinstance(k, str):  # YAML's `1: 2` or `true: x`: sorting them with the names was a TypeError
            raise ValueError(f"unknown config key {prefix}{k!r}: config keys are names; {cls.__name__} has "
                             f"{sorted(fields)}")
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"unknown config key {prefix}{unknown[0]}; {cls.__name__} has {sorted(fields)}")
    kwargs = {}
    for k, v in data.items():
        factory = fields[k].default_factory
        if isinstance(v, dict) and dataclasses.is_dataclass(hints[k]) and factory is not dataclasses.MISSING:
            # the keys given change the parent's own defaults (the DiT's optim lr 3e-4), not the
            # nested class's (OptimConfig's 1e-3)
            v = _merge(to_dict(factory()), v)
        kwargs[k] = _convert(v, hints[k], prefix + k)
    try:
        return cls(**kwargs)
    except ValueError as e:  # a nested class's own check ("hidden (32) must be divisible by heads (3)"): name its key
        if not prefix or str(e).startswith(prefix):
            raise
        raise ValueError(f"{prefix[:-1]}: {e}") from None


def to_dict(cfg: Any) -> dict:
    def clean(v):
        if isinstance(v, tuple):
            return [clean(x) for x in v]
        if isinstance(v, list):
            return [clean(x) for x in v]
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return clean(dataclasses.asdict(cfg))


def parse_overrides(args: list[str]) -> dict:
    """['--a.b', '1', '--c=2'] -> {'a': {'b': '1'}, 'c': '2'} (values parsed as YAML scalars)."""
    out: dict = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or len(arg) == 2:
            raise ValueError(f"expected --key value, got {arg!r}")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise ValueError(f"{arg} needs a value")
            key, value = arg[2:], args[i + 1]
            i += 2
        try:
            parsed = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError as e:  # `--sizes "[[5,32,32]"`: a YAML traceback otherwise
            raise ValueError(f"--{key}: cannot read {value!r} ({_yaml_problem(e)})") from None
        if not isinstance(parsed, (str, list, dict)):  # a scalar YAML gave a type: the text kept beside it
            parsed = _Given(value, parsed)
        node = out
        parts = key.replace("-", "_").split(".")
        if not all(parts):  # `--optim..lr`, `--.lr`: was "unknown config key optim."
            raise ValueError(f"--{key}: a key with an empty part; give --name or --section.name")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = parsed
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping: YAML keeps the last one
    silently, so `lr: 1e-3` far down a file would undo an `lr` near the top without a word."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                hash(key)
            except TypeError:  # `? [a, b]`: was a TypeError from the set; SafeLoader names it
                raise yaml.constructor.ConstructorError("while constructing a mapping", node.start_mark,
                                                        "found an unhashable key", key_node.start_mark) from None
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"the key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _yaml_problem(e: yaml.YAMLError) -> str:
    """A YAML error on one line: what is wrong and where (its own message spans several lines,
    with the source quoted and a caret under the column)."""
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if problem and mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: {problem}"
    return " ".join(str(e).split())


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(path: Path, read: list[Path], chain: tuple[Path, ...] = ()) -> dict:
    """A config file's keys, with its `base` file's (and that one's base's) beneath them; `read`
    gets the files read, this one first, for naming them in a later error."""
    if path.is_dir():
        raise ValueError(f"config file {path} is a directory; give a YAML file")
    if not path.is_file():
        where = f" (the base of {chain[-1]})" if chain else ""
        raise ValueError(f"config file {path}{where} does not exist")
    if path.resolve() in chain:
        raise ValueError(f"config files name each other as base in a loop: {' -> '.join(str(p) for p in chain + (path.resolve(),))}")
    try:
        data = yaml.load(path.read_text(), Loader=_UniqueKeyLoader) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML ({_yaml_problem(e)})") from None
    except UnicodeDecodeError as e:  # the codec's message alone did not name the file
        raise ValueError(f"{path}: not a UTF-8 text file (byte {e.start}: {e.reason})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    read.append(path)
    if "base" not in data:
        return data
    base = data.pop("base")
    if not isinstance(base, str) or not base.strip():
        raise ValueError(f"{path}: base must be the path of another config file, got {base!r}")
    return _merge(_read_yaml(path.parent / base, read, chain + (path.resolve(),)), data)


def load_config(cls: type[T], path: str | Path | None = None, overrides: list[str] | None = None) -> T:
    data: dict = {}
    read: list[Path] = []
    if path is not None:
        path = Path(path)
        data = _read_yaml(path, read)
    if overrides:
        data = _merge(data, parse_overrides(overrides))
    try:
        return from_dict(cls, data)
    except ValueError as e:
        given = set(flatten(parse_overrides(overrides))) if overrides else set()
        key = str(e).removeprefix("unknown config key ").split(":")[0].split(";")[0].strip()
        bases = read[1:]
        # `--optim.lr.x 1` is refused as "optim.lr: expected float": a key given beneath it
        where = (" (on the command line)" if key in given or any(g.startswith(key + ".") for g in given) else
                 f" (in {path} or the files it is based on: {', '.join(str(b) for b in bases)})" if bases else
                 f" (in {path})" if path is not None else "")
        raise ValueError(f"{e}{where}") from None


def flatten(tree: dict, prefix: str = "") -> dict:
    """{'a': {'b': 1}, 'c': 2} -> {'a.b': 1, 'c': 2}: a nested config (or an override tree) by its
    dotted keys."""
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[prefix + k] = v
    return out
