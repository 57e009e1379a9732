"""The one exception type for bad input, shared by every layer."""


class InvalidInput(ValueError):
    """A user-supplied value is out of range or unknown; the message names it."""
