"""The one base class of every error charlm raises for bad input or bad files.

The CLI turns a :class:`CharLMError` into a one-line message and a non-zero exit status, with
no traceback; anything else is a bug and keeps its traceback.
"""


class CharLMError(Exception):
    """A user-facing error: its message names the problem and the fix."""
