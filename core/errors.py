"""One error type for every bad input, so the command line can print it as one line."""


class TapelabError(Exception):
    """A problem the user can fix; the message says how."""


class ConfigError(TapelabError, ValueError):
    """A setting that makes no sense (unknown activation, depth 0, ...)."""


class DataError(TapelabError):
    """Data that is missing or malformed."""
