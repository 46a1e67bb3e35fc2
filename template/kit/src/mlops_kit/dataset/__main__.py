"""``python -m mlops_kit.dataset``: the ``make dataset`` command."""

from .adopt import main

main()
