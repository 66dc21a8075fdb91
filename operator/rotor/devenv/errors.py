"""One readable error for everything that can go wrong while setting the environment up."""


class EnvironmentProblem(RuntimeError):
    """A problem a person must act on: the message says what happened and what to do."""
