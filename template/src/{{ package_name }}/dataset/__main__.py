"""``python -m <package>.dataset``: the ``make dataset`` command."""

from .adopt import main

main()
