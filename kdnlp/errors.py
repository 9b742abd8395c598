"""The one exception type the CLI turns into a single line on stderr and exit code 2."""


class UserError(Exception):
    """Bad input the user can fix: the message names the file/line/key and what to do."""
