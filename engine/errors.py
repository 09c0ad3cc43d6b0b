"""Errors a user can cause. The CLI prints them as one line (exit 2), pages as a message."""


class UserError(Exception):
    """Something the user asked for cannot be done; the message says what to do."""


class EngineBusy(UserError):
    """Another engine holds the data folder."""
