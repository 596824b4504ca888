"""The exceptions that reach users as one `error:` line instead of a traceback, and how they reach them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

USAGE_EXIT = 2  # a bad command line or config, as argparse does; 1 stays for failures during a run
MAX_SEED = 2**32 - 1  # numpy's seed range, which lightning.seed_everything enforces


class VaeLabError(Exception):
    """A problem the user can fix; the message names the bad value, what is allowed and what to do."""

    exit_code = 1


class ConfigError(VaeLabError):
    """A bad config value or a request this machine cannot meet: exit code 2, like a bad command line."""

    exit_code = USAGE_EXIT


def refuse(key: str, value: object, allowed: str) -> ConfigError:
    """The one sentence for a bad setting, raised where the value is taken: `<key>=<value> is not allowed; use ...`."""
    return ConfigError(f"{key}={value} is not allowed; use {allowed}.")


def is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_positive(key: str, value: object, example: int) -> None:
    if not (is_int(value) and value > 0):
        raise refuse(key, value, f"a positive integer like {example}")


def check_seed(key: str, value: object) -> None:
    if not (is_int(value) and 0 <= value <= MAX_SEED):
        raise refuse(key, value, f"an integer from 0 to {MAX_SEED}")


def print_error(message: object) -> None:
    print(f"error: {message}", file=sys.stderr)


def exit_on_user_error(task: Callable[[Any], Any], cfg: Any) -> Any:
    """Run an entry point's task; a `VaeLabError` becomes one `error:` line on stderr and its exit code."""
    try:
        return task(cfg)
    except VaeLabError as error:
        print_error(error)
        sys.exit(error.exit_code)
