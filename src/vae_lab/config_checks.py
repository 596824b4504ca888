"""Values checked against the typed signature of what takes them: `latent_dim: Annotated[int, positive(50)]`.

`check_arguments` applies the types and `Rule`s of a signature to a constructor's arguments (raising `ConfigError`
with one sentence); `check_config` applies a settings dataclass to an entry point's config.
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from omegaconf import DictConfig, ListConfig, OmegaConf

from vae_lab.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """A value rule beyond the type: `accepts(value)` and the words that complete "use ..."."""

    accepts: Callable[[Any], bool]
    allowed: str


def positive(example: int | float) -> Rule:
    return Rule(lambda v: v > 0, f"a positive {'integer' if isinstance(example, int) else 'number'} like {example}")


def between(low: float, high: float, allowed: str) -> Rule:
    return Rule(lambda v: low <= v <= high, allowed)


MAX_SEED = 2**32 - 1  # numpy's seed range, which lightning.seed_everything enforces
Seed = Annotated[int, between(0, MAX_SEED, f"an integer from 0 to {MAX_SEED}")]
Threads = Annotated[int | None, Rule(lambda v: v is None or v >= 1, "null (torch's default) or a positive integer")]


def type_accepts(hint: Any, value: object) -> bool:
    """Whether `value` (a plain value or an OmegaConf list/dict) fits the type annotation `hint`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        return type_accepts(args[0], value)
    if origin in (Union, types.UnionType):
        return any(type_accepts(arg, value) for arg in args)
    if origin is Literal:  # True == 1, but true is not a choice of Literal[1, 3]
        return any(value == arg and type(value) is type(arg) for arg in args)
    if hint is Any or hint is type(None):
        return hint is Any or value is None
    if hint in (int, float):  # a bool is not a number here; an int is a float
        return isinstance(value, (int, hint)) and not isinstance(value, bool) and (
            isinstance(value, int) or math.isfinite(value))
    if (origin or hint) in (list, tuple, Sequence):
        return isinstance(value, (list, tuple, ListConfig))
    if (origin or hint) in (dict, Mapping) or isinstance(value, (dict, DictConfig)):
        return isinstance(value, (dict, DictConfig))
    return not isinstance(hint, type) or isinstance(value, (str, Path) if hint is Path else hint)


def describe(hint: Any) -> str:
    """What a type annotation allows, in words: `null or a positive integer`, `one of static, dynamic`."""
    origin, args = get_origin(hint), get_args(hint)
    rule = rule_of(hint)
    if rule is not None:
        return f"null or {rule.allowed}" if type(None) in args and "null" not in rule.allowed else rule.allowed
    if origin in (Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        return ("null or " if len(others) < len(args) else "") + " or ".join(describe(arg) for arg in others)
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    return names.get(hint) or ("a list like [1, 2]" if (origin or hint) in (list, tuple, Sequence) else str(hint))


def rule_of(hint: Any) -> Rule | None:
    """The `Rule` of `Annotated[T, rule]`, also as `Annotated[T, rule] | None`; other metadata is not ours: None."""
    if get_origin(hint) is Annotated:
        return next((arg for arg in get_args(hint)[1:] if isinstance(arg, Rule)), None)
    if get_origin(hint) in (Union, types.UnionType):
        return next((rule for arg in get_args(hint) if (rule := rule_of(arg)) is not None), None)
    return None


def check_arguments(target: Callable, arguments: Mapping[str, object], prefix: str | None = None) -> None:
    """Check arguments (a constructor's `locals()`, a config) against the type hints of `target`'s signature."""
    try:
        hints = get_type_hints(target.__init__ if inspect.isclass(target) else target, include_extras=True)
    except (NameError, TypeError):  # a third-party signature whose hints cannot be resolved
        hints = {}
    for name, hint in hints.items():
        if name in arguments and name != "return":
            value, rule = arguments[name], rule_of(hint)
            if not type_accepts(hint, value) or (rule is not None and value is not None and not rule.accepts(value)):
                plain = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
                raise ConfigError(f"{f'{prefix}.{name}' if prefix else name}={plain!r} is not allowed; use "
                                  f"{describe(hint)}.")


def check_config(cfg: DictConfig, settings: Callable) -> None:
    """Check an entry point's config against `settings`, a dataclass of its keys and what each accepts."""
    check_arguments(settings, cfg)
