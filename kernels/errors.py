"""The exception types every layer shares; their messages are one line that a user can act on."""


class InvalidInput(ValueError):
    """A user-supplied value is out of range or unknown; the message names it."""


class StoreError(RuntimeError):
    """A store cannot be written (disk full, no permission, changed under the driver): the message names
    the path, how many records are committed, and how to resume."""
