"""Config values checked against the typed signature of the class or function that takes them.

A value's rule lives beside the class it belongs to, in its `__init__` signature: the type (`int`, `float | None`,
`Literal["static", "dynamic"]`) and, where the type is not enough, a range, e.g.
`latent_dim: Annotated[int, positive(50)] = 50`. `check_arguments` applies those rules when the object is built
(from Python); `check_config` applies the same rules to a composed Hydra config before anything is built, so a
misspelt key or a bad value gets one sentence naming it, what is allowed, and (for a misspelt key) the nearest
valid name. Lightning's `Trainer` is not ours to annotate: `TRAINER_VALUES` holds the rules for the values of it that
users type. An entry point's own keys (`seed`, `n`, `iwae_samples`, ...) are a dataclass beside it (`TrainSettings`,
`EvaluateSettings`, `SampleSettings`). Kept free of torch and Lightning imports at module level: the command line
checks run before them.
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
from omegaconf.errors import OmegaConfBaseException

from vae_lab.errors import VaeLabError


@dataclass(frozen=True)
class Rule:
    """A value rule beyond the type: `accepts(value)` and the words that complete "use ..."."""

    accepts: Callable[[Any], bool]
    allowed: str


def positive(example: int | float) -> Rule:
    return Rule(lambda v: v > 0, f"a positive {'integer' if isinstance(example, int) else 'number'} like {example}")


def at_least(low: int, allowed: str) -> Rule:
    return Rule(lambda v: v >= low, allowed)


def between(low: float, high: float, allowed: str) -> Rule:
    return Rule(lambda v: low <= v <= high, allowed)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


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
    if hint is Any or hint is inspect.Parameter.empty:
        return True
    if origin is Annotated:
        return type_accepts(args[0], value)
    if origin in (Union, types.UnionType):
        return any(type_accepts(arg, value) for arg in args)
    if origin is Literal:
        return any(value == arg and isinstance(value, bool) == isinstance(arg, bool) for arg in args)
    if hint is type(None) or hint is None:
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return _is_number(value)
    if hint is str:
        return isinstance(value, str)
    if hint in (Path, os.PathLike):
        return isinstance(value, (str, os.PathLike))
    if origin in (list, tuple, Sequence) or hint in (list, tuple):
        if not isinstance(value, (list, tuple, ListConfig)):
            return False
        item = args[0] if args and (origin is not tuple or args[-1] is Ellipsis or len(set(args)) == 1) else Any
        return all(type_accepts(item, element) for element in value)
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        return isinstance(value, (dict, DictConfig))
    if isinstance(value, (dict, DictConfig)) and "_target_" in value:
        return True  # an object built from config (a Lightning plugin, a logger): its own signature decides
    return not isinstance(hint, type) or isinstance(value, hint)


def describe(hint: Any) -> str:
    """What a type annotation allows, in words: `null or a positive integer`, `one of static, dynamic`."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        rules = [arg for arg in args[1:] if isinstance(arg, Rule)]
        return rules[0].allowed if rules else describe(args[0])
    if origin in (Union, types.UnionType):
        others = [arg for arg in args if arg is not type(None)]
        words = " or ".join(describe(arg) for arg in others)
        return f"null or {words}" if len(others) < len(args) else words
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in args)
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string", Path: "a path"}
    if hint in names:
        return names[hint]
    if origin in (list, tuple, Sequence):
        return "a list like [1, 2]"
    return getattr(hint, "__name__", str(hint))


def _rules(hint: Any) -> list[Rule]:
    """The `Rule`s of an `Annotated[...]` hint (also inside `X | None`), applied to non-null values."""
    if get_origin(hint) is Annotated:
        return [arg for arg in get_args(hint)[1:] if isinstance(arg, Rule)]
    if get_origin(hint) in (Union, types.UnionType):
        return [rule for arg in get_args(hint) for rule in _rules(arg)]
    return []


def check_value(key: str, hint: Any, value: object) -> None:
    """Raise `VaeLabError` in one sentence if `value` (set as `key`) breaks the type or rules of `hint`."""
    plain = OmegaConf.to_container(value) if isinstance(value, (DictConfig, ListConfig)) else value
    if not type_accepts(hint, value) or (value is not None and not all(rule.accepts(value) for rule in _rules(hint))):
        raise VaeLabError(f"{key}={plain!r} is not allowed; use {describe(hint)}.")


def parameters(target: Callable) -> tuple[dict[str, inspect.Parameter], dict[str, Any]]:
    """The named parameters of a class's `__init__` (or a function) and their resolved type hints."""
    function = target.__init__ if inspect.isclass(target) else target
    signature = inspect.signature(function)
    try:
        hints = get_type_hints(function, include_extras=True)
    except (NameError, TypeError):  # a third-party signature whose hints cannot be resolved: names only
        hints = {}
    named = {name: p for name, p in signature.parameters.items() if name != "self" and p.kind not in (
        inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)}
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values()):
        named["**"] = inspect.Parameter("kwargs", inspect.Parameter.VAR_KEYWORD)
    return named, hints


def check_arguments(target: Callable, arguments: Mapping[str, object], prefix: str | None = None) -> None:
    """Check a constructor's arguments against its signature: `check_arguments(CVAE, locals())` in `__init__`."""
    named, hints = parameters(target)
    for name in named:
        if name in arguments and name in hints:
            check_value(f"{prefix}.{name}" if prefix else name, hints[name], arguments[name])


def _target_name(target: Callable) -> str:
    return f"{target.__module__}.{target.__qualname__}"


def check_node(prefix: str, node: DictConfig, target: Callable | None = None, values: bool = True,
               renamed: Mapping[str, str] | None = None) -> None:
    """Check every key of a config node against the signature of its `_target_` (or of `target`).

    `values=False` checks the names only; `renamed` maps names the target no longer takes to their replacement.
    """
    from hydra.utils import get_method

    if target is None:
        try:
            target = get_method(node._target_)
        except Exception as error:
            raise VaeLabError(f"{prefix}._target_={node._target_} cannot be imported ({error}); check its spelling "
                              "and that its module is on the Python path.") from error
    named, hints = parameters(target)
    for key in node:
        if str(key).startswith("_"):
            continue
        if key not in named and "**" not in named:
            near = [renamed[key]] if key in (renamed or {}) else difflib.get_close_matches(str(key), list(named), n=1)
            hint = f"did you mean {prefix}.{near[0]}? " if near else ""
            raise VaeLabError(f"{prefix}.{key} is not a setting of {_target_name(target)}; {hint}"
                              f"it takes: {', '.join(named)}.")
        if not values or OmegaConf.is_interpolation(node, str(key)):  # e.g. ${paths.output_dir}: known in the job
            continue
        try:
            value = node[key]
        except OmegaConfBaseException:  # e.g. ${hydra:runtime.output_dir} outside a Hydra job
            continue
        if key in hints:
            check_value(f"{prefix}.{key}", hints[key], value)


def check_config(cfg: DictConfig, settings: Callable | None = None) -> None:
    """Check a composed config: its top-level settings against `settings` (a dataclass of the entry point's keys),
    `model`, `data` against their `_target_`s, `trainer` against Lightning's names and `TRAINER_VALUES`, and every
    entry of `callbacks` and `logger`; raise `VaeLabError` naming the first bad value."""
    if settings is not None:
        named, hints = parameters(settings)
        for key in named:
            if key in cfg and key in hints:
                check_value(key, hints[key], cfg[key])
    if cfg.get("resume"):  # the command line turns resume=X into the run's own config; train() never sees it
        raise VaeLabError(
            f"resume={cfg.resume} works on the command line only (python -m vae_lab.train resume=<run dir>); "
            "from Python, compose the run's .hydra/config.yaml and set ckpt_path to its checkpoints/last.ckpt."
        )
    for group in ("model", "data"):
        node = cfg.get(group)
        if OmegaConf.is_dict(node) and "_target_" in node:
            check_node(group, node)
    trainer = cfg.get("trainer")
    if OmegaConf.is_dict(trainer) and "_target_" in trainer:  # names against Lightning's signature, values here
        check_node("trainer", trainer, values=False, renamed=RENAMED_TRAINER_KEYS)
    for key, hint in TRAINER_VALUES.items() if OmegaConf.is_dict(trainer) else ():
        if key in trainer:
            check_value(f"trainer.{key}", hint, trainer[key])
    for group in ("callbacks", "logger"):
        entries = cfg.get(group)
        if OmegaConf.is_dict(entries):
            for name, entry in entries.items():
                if OmegaConf.is_dict(entry) and "_target_" in entry:
                    check_node(f"{group}.{name}", entry)


def build(node: DictConfig, **kwargs: object) -> object:
    """`hydra.utils.instantiate`, with a `VaeLabError` from the constructor passed on as itself (one sentence)."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        return instantiate(node, **kwargs)
    except InstantiationException as error:
        if isinstance(error.__cause__, VaeLabError):
            raise error.__cause__ from None
        raise
