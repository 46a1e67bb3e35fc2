"""What a generated project's AGENTS.md tells an agent to run."""

import re

MAKE_COMMAND = re.compile(r"`make ([a-z][\w-]*)")
# The targets an agent is told to run that are cheap on a trained project: the smoke
# test runs each for real, in a copy.
RUN_FOR_REAL = ("setup", "params", "pipeline", "help", "lint", "test")


def named_targets(text: str) -> list[str]:
    """The make targets AGENTS.md names, in order, once each."""
    return list(dict.fromkeys(MAKE_COMMAND.findall(text)))
