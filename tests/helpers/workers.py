"""How pytest-xdist hands tests to its workers: one at a time, some groups whole."""

from xdist.scheduler import LoadScopeScheduling


class WorkerGroups(LoadScopeScheduling):
    """Each test is its own unit of work, except the tests of a group, which one worker
    runs together: they share a fixture that is made once per worker.

    ``groups`` maps a group's name to test files or single tests (``file::name``, any
    parameters included).
    """

    def __init__(self, config, log, groups: dict[str, list[str]]) -> None:
        super().__init__(config, log)
        self.groups = groups

    def _split_scope(self, nodeid: str) -> str:
        for name, members in self.groups.items():
            for member in members:
                if nodeid == member or nodeid.startswith((f"{member}::", f"{member}[")):
                    return f"group:{name}"
        return nodeid
