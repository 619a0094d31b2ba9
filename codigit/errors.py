"""User-facing errors: the CLI prints these as one line and exits non-zero, never a traceback."""


class CodigitError(Exception):
    """A mistake the user can fix (bad config, busy port, unreadable roster...)."""


class Interrupted(Exception):
    """Ctrl-C during a command that can say precisely what it kept; the CLI prints the message as one line."""
