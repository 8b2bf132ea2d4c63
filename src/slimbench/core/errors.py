"""One exception type for bad input, so callers can turn it into one clear line (CLI exit 2, pytest usage error)."""


class SlimbenchError(Exception):
    """Bad input from the user: the message names the file or option and what is wrong, on one line."""
