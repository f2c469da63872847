"""The one exception type the CLI turns into a clean message (no traceback)."""


class IrnetEdgeError(Exception):
    """A problem with the user's input or environment, with the fix in the message."""
