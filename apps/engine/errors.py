from apps.workflows.errors import BraidError, NotFound  # noqa: F401 - re-exported


class InputInvalid(BraidError):
    code = "invalid_input"


class Conflict(BraidError):
    code = "conflict"
