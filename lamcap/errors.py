"""The exception types every layer shares; their messages are one line that a user can act on.

The command line maps them to exit statuses: InvalidInput 2 (bad input, found before any work), StoreError
and ClusterError 1 (the environment failed mid-way; what is committed is safe and the same command resumes).
"""


class InvalidInput(ValueError):
    """A user-supplied value is out of range or unknown, or a store is damaged; the message names it."""


class StoreError(RuntimeError):
    """A store cannot be written (disk full, no permission, changed under the driver): the message names
    the path, how many records are committed, and how to resume."""


class ClusterError(RuntimeError):
    """The Ray cluster cannot run the sweep's actors (every start failed, or none can be placed): the message
    names the cause; the store keeps what finished."""
