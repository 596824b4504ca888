"""The one exception type that reaches users as a single sentence instead of a traceback, and how it reaches them."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

Config = TypeVar("Config")
Result = TypeVar("Result")
USAGE_EXIT = 2  # bad command line or config, as argparse does; 1 stays for failures during a run


class VaeLabError(Exception):
    """A problem the user can fix (bad config value, missing data, wrong checkpoint).

    Entry points print `str(error)` alone and exit non-zero; the message must name the bad value, what is
    allowed and what to do.
    """


def print_error(message: object) -> None:
    """The one line every entry point prints for a problem the user can fix."""
    print(f"error: {message}", file=sys.stderr)


def exit_on_user_error(task: Callable[[Config], Result], cfg: Config) -> Result:
    """Run an entry point's task; a `VaeLabError` becomes one `error:` line on stderr and exit code 1."""
    try:
        return task(cfg)
    except VaeLabError as error:
        print_error(error)
        sys.exit(1)
