"""The one exception type that reaches users as a single sentence instead of a traceback."""


class VaeLabError(Exception):
    """A problem the user can fix (bad config value, missing data, wrong checkpoint).

    Entry points print `str(error)` alone and exit non-zero; the message must name the bad value, what is
    allowed and what to do.
    """
