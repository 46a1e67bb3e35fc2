"""``python -m mlops_kit.dataset``: the ``make dataset`` command."""

from mlops_kit.dataset.adopt import main

main()
