"""The one exception type the project raises for problems a user can fix."""


class ConvnetsError(Exception):
    """A clear, one-line problem with the input, the data or the store; never a bug."""
