"""Application errors of the workflows floor; the API maps them to HTTP in one place."""


class BraidError(Exception):
    """Base of errors a user can fix; `problems` lists each with where it is."""

    code = "invalid"

    def __init__(self, message: str, problems: list[dict] | None = None):
        super().__init__(message)
        self.message = message
        self.problems = problems or []


class NotFound(BraidError):
    code = "not_found"


class DefinitionInvalid(BraidError):
    code = "invalid_definition"


class ReleaseConflict(BraidError):
    """The release is not in a state that allows the action (e.g. one is already active)."""

    code = "release_conflict"


class ReleaseInvalid(BraidError):
    code = "invalid_release"
