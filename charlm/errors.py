"""Every error charlm raises for bad input or bad files, in one place.

The CLI turns a :class:`CharLMError` into a one-line message and a non-zero exit status, with
no traceback; anything else is a bug and keeps its traceback. Each subclass names the stage
that refused the input; the message names the problem and an option that fixes it.
"""


MAX_QUOTED = 60  # characters of a value quoted in a message


def shorten(value: object, limit: int = MAX_QUOTED) -> str:
    """``repr(value)`` cut to about ``limit`` characters (``'aaa...' (10000002 characters)``),
    so that a message quoting a hostile value stays one short line. Every message that quotes
    a value given by the user or read from a file uses it."""
    if isinstance(value, (list, dict, tuple, set)) and len(value) > 8:
        return f"<a {type(value).__name__} of {len(value)} items>"
    try:
        quoted = repr(value)
    except (RecursionError, ValueError):  # ValueError: an int past repr's digit limit
        return f"<a {type(value).__name__}>"
    if len(quoted) <= limit:
        return quoted
    return f"{quoted[:limit]}... ({len(quoted)} characters)"


class CharLMError(Exception):
    """A user-facing error: its message names the problem and the fix."""


class ConfigError(CharLMError):
    """A configuration key, type or value is invalid; the message names the dotted key."""


class DataError(CharLMError):
    """A corpus cannot be found, read or decoded; the message names the file and the fix."""


class CheckpointError(CharLMError):
    """A checkpoint is missing, unreadable, corrupt, or of an unknown format."""


class SamplingError(CharLMError, ValueError):
    """A sampling option is out of range."""


class OptionError(CharLMError, ValueError):
    """Command-line options that make no sense together; the message names them."""


class OutputError(CharLMError):
    """A file or folder the command was asked to write cannot be written (or would replace a
    checkpoint); the message names the path and the option to change."""


class ResourceError(CharLMError, MemoryError):
    """The machine ran out of memory (CPU or GPU) for the sizes asked; the message names the
    sizes and the options that lower them."""


class NumericalError(CharLMError):
    """Training produced non-finite losses or gradients too many steps in a row."""


class DistributedError(CharLMError):
    """The distributed job cannot start as asked (batch size, device, backend)."""


class TuneError(CharLMError):
    """A tune cannot open or go on with its study: the storage, a study made with other
    settings, or trials that keep failing; the message names the option that fixes it."""


class Interrupted(CharLMError):
    """Training stopped on SIGINT or SIGTERM after saving; ``exit_code`` is 128 + signal."""

    def __init__(self, message: str, signum: int) -> None:
        super().__init__(message)
        self.exit_code = 128 + signum
