"""What the template's tests and benchmarks share: rendering, a user's commands, servers on
loopback, trained projects made once per run and copied, and the real tools the
end-to-end tests drive (browser, containers, Dask, Prometheus, the team stack, workflows).

Modules are imported by name (``from helpers.network import free_port``); pytest puts
``tests/`` on the path, and the benchmarks' make targets do the same.
"""
