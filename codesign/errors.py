"""The one base class of every error codesign reports to a user as a single readable line."""


class CodesignError(ValueError):
    """Bad input or an unsupported request; the message is complete without a traceback."""
