"""`make sweep` searches real hyperparameters: every search space fits its model.

A model config without a space trains as any other; only `make sweep` needs one, and
says so in one line.
"""

from pathlib import Path

import pytest

from mlops_kit.config import compose_params
from mlops_kit.core.params import Choices, load_params
from mlops_kit.train import build_model

PROJECT_ROOT = Path(__file__).resolve().parents[1]
MODELS = sorted(path.stem for path in (PROJECT_ROOT / "conf" / "model").glob("*.yaml"))


@pytest.mark.parametrize("model", MODELS)
def test_each_search_space_names_hyperparameters_of_its_own_model(
    model: str, tmp_path: Path
) -> None:
    output = tmp_path / "params.yaml"
    compose_params([f"model={model}"], output, PROJECT_ROOT / "conf")
    params = load_params(output)
    if not (PROJECT_ROOT / "conf" / "sweep" / "space" / f"{model}.yaml").exists():
        assert not params.sweep.space
        pytest.skip(
            f"no conf/sweep/space/{model}.yaml: the model trains; `make sweep` asks for one"
        )
    assert params.sweep.space, f"conf/sweep/space/{model}.yaml is empty"
    estimator = build_model(params).named_steps["estimator"]
    unknown = set(params.sweep.space) - set(estimator.get_params())
    assert not unknown, f"conf/sweep/space/{model}.yaml names no hyperparameter of it: {unknown}"
    for name, bounds in params.sweep.space.items():
        if not isinstance(bounds, Choices):
            assert bounds.low < bounds.high, f"{model}.{name}: low must be below high"
            assert not bounds.log or bounds.low > 0, f"{model}.{name}: a log range starts above 0"
