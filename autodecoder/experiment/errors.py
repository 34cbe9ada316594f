"""The one exception type that the command-line tools turn into a one-line message."""


class UserError(Exception):
    """Bad input from the user (a file, a key, a value, an option).

    The CLIs print ``error: <message>`` on one line, without a traceback, and
    exit with status 2. The message names the file, key or value and says what
    was expected.
    """
