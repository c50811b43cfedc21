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
