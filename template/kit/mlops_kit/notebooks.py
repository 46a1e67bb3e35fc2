"""``make notebooks``: run every notebook of ``notebooks/`` headless; fail on an error.

A notebook is a pair (``notebooks/jupytext.toml``): a percent-format script, which git
keeps, and the ``.ipynb`` jupytext makes from it, which holds the outputs. Each pair
is synced first, the side edited last winning, so a notebook started in Jupyter gets
its script and an edit made in Jupyter reaches the script. Then each script runs top
to bottom in a fresh kernel of this environment's own Python (never a kernel of the
same name registered elsewhere), offline, and its outputs go into the ``.ipynb``. A
cell that raises stops its notebook and is reported in one line: the notebook, the
cell, its line in the script and the error; the traceback is in the ``.ipynb``.
"""

import argparse
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path("notebooks")
# A cell that runs longer than this is stuck (a kernel waiting for input, a loop).
CELL_TIMEOUT_SECONDS = 600


@dataclass(frozen=True)
class Outcome:
    """How one notebook ran: ``failure`` is the one line saying why it stopped, or None."""

    script: Path
    cells: int
    seconds: float
    failure: str | None


class NotebookError(RuntimeError):
    """A notebook cannot be run as it is; the message says why in one line."""


def sync(path: Path) -> None:
    """Sync the pair of ``path`` with jupytext: the side edited last rewrites the other."""
    from jupytext.cli import jupytext

    try:
        jupytext(["--sync", "--quiet", str(path)])
    except Exception as error:  # jupytext's own errors have no common class
        problem = first_line(str(error)).strip() or type(error).__name__
        raise NotebookError(
            f"{path}: cannot sync it with its pair ({problem}); notebooks live in "
            f"{FOLDER}/, whose jupytext.toml pairs each .py with an .ipynb"
        ) from None


def scripts(folder: Path) -> list[Path]:
    """The notebooks' scripts in ``folder``, each pair synced first.

    A ``.ipynb`` without a script (a notebook started in Jupyter) gets one.
    """
    for notebook in sorted(folder.glob("*.ipynb")):
        if not notebook.with_suffix(".py").exists():
            sync(notebook)
            print(f"{notebook.with_suffix('.py')}: made from {notebook.name}; commit it")
    found = sorted(folder.glob("*.py"))
    for script in found:
        sync(script)
    return found


def project_kernel_manager(sockets: Path):
    """A kernel manager class whose kernel is this environment's Python, over Unix sockets.

    jupyter_client would look the kernel's name up among the user's registered kernels
    first, and a ``python3`` registered by another environment would win. The kernel
    and the runner talk over Unix sockets in the folder ``sockets`` rather than TCP on
    loopback: no port is opened, and nothing else on the machine can connect.
    """
    from ipykernel.kernelspec import RESOURCES, get_kernel_dict
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class ProjectKernelManager(AsyncKernelManager):
        """Starts ipykernel with ``sys.executable``, the Python running this module."""

        def __init__(self, **kwargs) -> None:
            super().__init__(**{"transport": "ipc", "ip": str(sockets / "kernel"), **kwargs})

        @property
        def kernel_spec(self) -> KernelSpec:
            """The native ipykernel spec of this environment."""
            return KernelSpec(resource_dir=RESOURCES, **get_kernel_dict())

    return ProjectKernelManager


def first_line(source: str) -> str:
    """The first line of ``source`` that is not blank."""
    return next((line for line in source.splitlines() if line.strip()), "")


def cell_starts(script_text: str, sources: list[str]) -> list[int | None]:
    """For each code cell's source, the line of the script holding its first line (1-based).

    Cells appear in the script in order, so each is looked for after the previous one.
    """
    starts: list[int | None] = []
    position = 0
    for source in sources:
        lines = source.splitlines()
        first = next((index for index, line in enumerate(lines) if line.strip()), None)
        found = -1 if first is None else script_text.find(lines[first], position)
        if found < 0:
            starts.append(None)
            continue
        starts.append(script_text.count("\n", 0, found) + 1 - first)
        position = found + 1
    return starts


# IPython names the frame of the cell itself "Cell In[<count>], line <n>".
CELL_FRAME = re.compile(r"Cell In\[\d*\], line (\d+)")
COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def line_in_cell(error: BaseException) -> int | None:
    """The line of the cell (1-based) where ``error`` was raised, when the traceback says."""
    found = CELL_FRAME.search(COLOURS.sub("", str(getattr(error, "traceback", "") or "")))
    return int(found.group(1)) if found else None


def error_text(error: BaseException) -> str:
    """An error in one line: its name and the first line of its message."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    if isinstance(error, CellExecutionError):
        message = first_line(error.evalue or "").strip()
        return f"{error.ename}: {message[:200]}" if message else error.ename
    if isinstance(error, CellTimeoutError):
        return f"no result after {CELL_TIMEOUT_SECONDS} s (a cell waiting for input, or stuck)"
    if isinstance(error, DeadKernelError):
        return "the kernel died (out of memory, or a crash in a library)"
    return f"{type(error).__name__}: {first_line(str(error))[:200]}"


def failure_line(script: Path, number: int, start: int | None, source: str, error) -> str:
    """The one line reporting a failed cell: where, which code, what, and where to look.

    ``number`` is the cell's place in the notebook, ``start`` the line of the script
    where its source starts (None when not found).
    """
    where = f"{script}: cell {number}"
    offset = line_in_cell(error)
    lines = source.splitlines()
    if offset is not None and 0 < offset <= len(lines):
        code = lines[offset - 1].strip()[:80]
        where += f", line {start + offset - 1}" if start is not None else f", its line {offset}"
        where += f" ({code})"
    elif start is not None:
        where += f" (from line {start})"
    outputs = script.with_suffix(".ipynb")
    return f"{where}: {error_text(error)}; the traceback is in {outputs}"


def execute(script: Path) -> Outcome:
    """Run the notebook of ``script`` in a fresh kernel; write its outputs to its ``.ipynb``."""
    import jupytext
    from nbclient import NotebookClient
    from nbclient.exceptions import CellControlSignal, DeadKernelError

    notebook = jupytext.read(script)
    sockets = Path(tempfile.mkdtemp(prefix="notebook-kernel-"))
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT_SECONDS,
        kernel_manager_class=project_kernel_manager(sockets),
        # The kernel starts in the notebook's folder, as Jupyter starts it.
        resources={"metadata": {"path": str(script.parent.resolve())}},
    )
    code = [(index, cell) for index, cell in enumerate(notebook.cells) if cell.cell_type == "code"]
    starts = cell_starts(script.read_text(), [cell.source for _, cell in code])
    started, failure, ran = time.monotonic(), None, 0
    try:
        with client.setup_kernel():
            for (index, cell), start in zip(code, starts, strict=True):
                try:
                    client.execute_cell(cell, index)
                except (CellControlSignal, DeadKernelError) as error:
                    failure = failure_line(script, index + 1, start, cell.source, error)
                    break
                ran += 1
    except (CellControlSignal, DeadKernelError, RuntimeError, TimeoutError) as error:
        failure = failure or f"{script}: the kernel did not start: {error_text(error)}"
    finally:
        jupytext.write(notebook, script.with_suffix(".ipynb"))
        # The script stays the newer of the pair: the next sync keeps it as the source.
        script.touch()
        shutil.rmtree(sockets, ignore_errors=True)
    return Outcome(script, ran, time.monotonic() - started, failure)


def run(given: list[Path]) -> bool:
    """Sync and run the scripts ``given`` (none: every notebook); whether all of them passed.

    Each failure is printed in one line to standard error as it happens.
    """
    for script in given:
        if script.suffix != ".py" or not script.is_file():
            raise NotebookError(f"{script} is not a notebook script (.py) that exists")
        sync(script)
    chosen = given or scripts(FOLDER)
    if not chosen:
        print(f"notebooks: no notebook in {FOLDER}/")
    passed = True
    for script in chosen:
        outcome = execute(script)
        if outcome.failure:
            passed = False
            print(outcome.failure, file=sys.stderr)
        else:
            print(
                f"{script}: {outcome.cells} code cells ran in {outcome.seconds:.1f} s, "
                f"outputs in {script.with_suffix('.ipynb')}"
            )
    return passed


def main() -> None:
    """Run every notebook of ``notebooks/`` (or the scripts given); exit 1 if one fails."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("scripts", nargs="*", type=Path, help="notebook scripts (default: all)")
    args = parser.parse_args()
    try:
        passed = run(args.scripts)
    except NotebookError as error:
        raise SystemExit(f"notebooks: {error}") from None
    except ModuleNotFoundError as error:
        raise SystemExit(
            f"notebooks: {error.name} is not installed; `make setup` installs the notebook "
            "tools with the dev dependencies"
        ) from None
    if not passed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
