"""Config values checked against the typed signature of the class or function that takes them.

A value's rule lives beside its class, in the `__init__` signature: the type (`int`, `float | None`,
`Literal["static", "dynamic"]`) and, where the type is not enough, a `Rule`: `latent_dim: Annotated[int,
positive(50)] = 50`. `check_arguments` applies them when the object is built; `check_config` applies them to a composed
config before anything is built, with one sentence naming the key, what is allowed and (for a misspelt key) the
nearest name. Lightning's `Trainer` is not ours to annotate: `TRAINER_VALUES` holds the rules of the values users type.
Free of torch and Lightning imports: the command line is checked before they load.
"""

from __future__ import annotations

import difflib
import inspect
import math
import os
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from omegaconf import DictConfig, ListConfig, OmegaConf

from vae_lab.errors import ConfigError, VaeLabError


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
# What lightning.Trainer(precision=...) accepts (Lightning 2.x), as written in a config or on the command line,
# except 64-bit: Lightning makes the weights float64 but the images and the callbacks' latent vectors stay float32.
PRECISIONS = ("32-true", "32", "bf16-mixed", "bf16", "16-mixed", "16", "bf16-true", "16-true",
              "transformer-engine", "transformer-engine-float16")
# Trainer arguments of Lightning 1.x that users still type, and the 2.x argument that replaced them.
RENAMED_TRAINER_KEYS = {"gpus": "devices", "tpu_cores": "devices", "ipus": "devices", "auto_select_gpus": "devices",
                        "resume_from_checkpoint": "ckpt_path", "weights_save_path": "default_root_dir"}


def _is_batch_limit(v: object) -> bool:  # Lightning's rule: a count, a fraction, or a whole float taken as a count
    return (isinstance(v, int) and v >= 0) or (isinstance(v, float) and (0 <= v <= 1 or (v > 1 and v.is_integer())))


BatchLimit = Annotated[int | float | None, Rule(_is_batch_limit, "a number of batches (an integer, 0 or more) or a "
                                                                "fraction of them from 0.0 to 1.0")]
TRAINER_VALUES: dict[str, Any] = {  # key of lightning.Trainer -> the type and rule of the values vae_lab accepts
    "max_epochs": Annotated[int | None, Rule(lambda v: v >= 1 or v == -1, "a positive integer like 10, -1 for no "
                                                                          "limit, or null (Lightning's default)")],
    "accelerator": Literal["auto", "cpu", "gpu", "cuda", "mps"],
    "devices": Annotated[Any, Rule(lambda v: v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and (
        v >= 1 or v == -1)) or isinstance(v, (list, ListConfig)), "a positive integer, -1 (all), auto, or a list of "
                                                                  "device ids")],
    "num_nodes": Annotated[int, positive(1)],
    "precision": Annotated[Any, Rule(lambda v: str(v) in PRECISIONS, "null (32-true) or one of " + ", ".join(
        PRECISIONS) + " (not 64-true: vae_lab's models and data are float32)")],
    "limit_train_batches": Annotated[int | float | None, Rule(  # 0 would train nothing and end `completed`
        lambda v: _is_batch_limit(v) and v > 0,
        "a number of batches (an integer, 1 or more) or a fraction of them above 0.0 up to 1.0 (0 trains nothing)")],
    "limit_val_batches": BatchLimit,
    "limit_test_batches": BatchLimit,
    "check_val_every_n_epoch": Annotated[int | None, Rule(lambda v: v >= 1, "a positive integer like 1, or null")],
    "log_every_n_steps": Annotated[int | None, Rule(lambda v: v >= 0, "null (50), 0 (no step logging) or a "
                                                                      "positive integer like 50")],
    "accumulate_grad_batches": Annotated[int, positive(1)],
    "gradient_clip_val": Annotated[float | None, Rule(lambda v: v >= 0, "null or a number >= 0")],
}


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
    if hint in (Path, os.PathLike):
        return isinstance(value, (str, os.PathLike))
    if (origin or hint) in (list, tuple, Sequence):
        item = args[0] if len(args) == 1 or args[-1:] == (Ellipsis,) else Any
        return isinstance(value, (list, tuple, ListConfig)) and all(type_accepts(item, v) for v in value)
    if (origin or hint) in (dict, Mapping) or (isinstance(value, (dict, DictConfig)) and "_target_" in value):
        return isinstance(value, (dict, DictConfig))  # with a _target_: an object whose own signature decides
    return not isinstance(hint, type) or isinstance(value, hint)


def describe(hint: Any) -> str:
    """What a type annotation allows, in words: `null or a positive integer`, `one of static, dynamic`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        rule = rule_of(hint)
        return rule.allowed if rule else describe(args[0])
    if origin in (Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        words = " or ".join(describe(arg) for arg in others)
        return f"null or {words}" if len(others) < len(args) else words
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    if (origin or hint) in (list, tuple, Sequence):
        return "a list like [1, 2]"
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    return names.get(hint) or getattr(hint, "__name__", str(hint))


def rule_of(hint: Any) -> Rule | None:
    """The `Rule` of `Annotated[T, rule]`, also as `Annotated[T, rule] | None`; other metadata is not ours: None."""
    if get_origin(hint) is Annotated:
        return next((arg for arg in get_args(hint)[1:] if isinstance(arg, Rule)), None)
    if get_origin(hint) in (Union, types.UnionType):
        return next((rule for arg in get_args(hint) if (rule := rule_of(arg)) is not None), None)
    return None


def check_value(key: str, hint: Any, value: object) -> None:
    """Raise `ConfigError` in one sentence if `value` (set as `key`) breaks the type or rule of `hint`."""
    rule = rule_of(hint)
    if not type_accepts(hint, value) or (rule is not None and value is not None and not rule.accepts(value)):
        plain = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
        raise ConfigError(f"{key}={plain!r} is not allowed; use {describe(hint)}.")


def check_values(hints: Mapping[str, Any], arguments: Mapping[str, object], prefix: str | None = None) -> None:
    for name, hint in hints.items():
        if name in arguments and name != "return":
            check_value(f"{prefix}.{name}" if prefix else name, hint, arguments[name])


def check_arguments(target: Callable, arguments: Mapping[str, object], prefix: str | None = None) -> None:
    """Check arguments (a constructor's `locals()`, a config) against the type hints of `target`'s signature."""
    try:
        hints = get_type_hints(target.__init__ if inspect.isclass(target) else target, include_extras=True)
    except (NameError, TypeError):  # a third-party signature whose hints cannot be resolved: names only
        hints = {}
    check_values(hints, arguments, prefix)


def check_node(prefix: str, node: DictConfig, values: bool = True, renamed: Mapping[str, str] | None = None) -> None:
    """Check the keys of a config node against the signature of its `_target_`: names, then (unless `values=False`)
    the values Hydra can resolve now; `renamed` maps names the target no longer takes to their replacement."""
    from hydra.utils import get_method

    try:
        target = get_method(node._target_)
    except Exception as error:
        raise ConfigError(f"{prefix}._target_={node._target_} cannot be imported ({error}); check its spelling "
                          "and that its module is on the Python path.") from error
    parameters = inspect.signature(target).parameters.values()
    names = [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    for key in node if all(p.kind is not p.VAR_KEYWORD for p in parameters) else ():
        if key not in names and not str(key).startswith("_"):
            near = [renamed[key]] if key in (renamed or {}) else difflib.get_close_matches(str(key), names, n=1)
            raise ConfigError(f"{prefix}.{key} is not a setting of {target.__module__}.{target.__qualname__}; "
                              f"{f'did you mean {prefix}.{near[0]}? ' if near else ''}it takes: {', '.join(names)}.")
    if values:  # an interpolation (${hydra:runtime.output_dir}) or a ??? is known in the job, not yet
        check_arguments(target, {key: node[key] for key in node if not OmegaConf.is_interpolation(node, str(key))
                                 and not OmegaConf.is_missing(node, str(key))}, prefix)


def check_config(cfg: DictConfig, settings: Callable | None = None) -> None:
    """Check a composed config: its top-level keys against `settings` (a dataclass of the entry point's keys),
    `model`, `data` and every entry of `callbacks` and `logger` against their `_target_`s, `trainer` against
    Lightning's names and `TRAINER_VALUES`; raise `ConfigError` naming the first bad value."""
    if settings is not None:
        check_arguments(settings, cfg)
    nodes = [(group, cfg.get(group)) for group in ("model", "data")] + [
        (f"{group}.{name}", entry) for group in ("callbacks", "logger") if OmegaConf.is_dict(cfg.get(group))
        for name, entry in cfg[group].items()]
    for prefix, node in nodes:
        if OmegaConf.is_dict(node) and "_target_" in node:
            check_node(prefix, node)
    trainer = cfg.get("trainer")
    if OmegaConf.is_dict(trainer):
        if "_target_" in trainer:  # names against Lightning's signature, values against TRAINER_VALUES
            check_node("trainer", trainer, values=False, renamed=RENAMED_TRAINER_KEYS)
        check_values(TRAINER_VALUES, trainer, "trainer")


def build(node: DictConfig, key: str | None = None, /, **kwargs: object) -> object:
    """`hydra.utils.instantiate`; a `VaeLabError` from the constructor (which checks its values) comes out as itself,
    a key of `node` (set as `key`) that the constructor does not take as `check_node`'s sentence."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, VaeLabError):
            raise error.__cause__ from None
        if key is not None:
            check_node(key, node, values=False)
        raise
