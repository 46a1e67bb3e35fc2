"""``make params``: compose ``conf/`` into ``params.yaml`` the way ``dvc exp run`` does.

``conf/`` (Hydra) is the single source of truth; every stage reads the composed
``params.yaml`` through ``core.params.load_params``, so DVC tracks precisely the
values the code uses.
"""

import argparse
from pathlib import Path

from mlops_kit.core.params import PARAMS_FILE, load_params

CONFIG_DIR = Path("conf")
CONFIG_NAME = "config"


def compose_params(
    overrides: list[str] | None = None,
    output: Path = PARAMS_FILE,
    config_dir: Path = CONFIG_DIR,
) -> None:
    """Compose ``conf/`` with Hydra into ``output``, the way ``dvc exp run`` does."""
    # DVC's own composer guarantees byte-identical output with `dvc exp run`.
    from dvc.utils.hydra import compose_and_dump

    compose_and_dump(
        output,
        str(config_dir.resolve()),
        None,
        CONFIG_NAME,
        str(Path.cwd()),
        overrides or [],
    )


def main() -> None:
    """Compose ``params.yaml`` from ``conf/``; extra arguments are Hydra overrides."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. model=ridge")
    args = parser.parse_args()
    compose_params(args.overrides)
    load_params()  # fail here, not in a stage, when the composed config is invalid
    print(f"composed {CONFIG_DIR}/ into {PARAMS_FILE}")


if __name__ == "__main__":
    main()
