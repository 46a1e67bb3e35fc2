"""`make compare-models`: every model of ``conf/model/`` measured on the project's data.

Each config is cross-validated on the training split (the test split stays for the
gate) with the folds ``make dataset`` uses for the quality bar, next to the constant
baseline: the metrics' mean and spread over the folds and the median fit time. Each
is then fitted once on the whole split and compiled as the export stage compiles
the champion, and its 1-row prediction is timed in process, compiled and through
scikit-learn's pipeline. The table goes to the terminal and to
``reports/model_comparison.md`` (and ``.json``); it chooses nothing: set ``model:``
in ``conf/config.yaml`` (or ``dvc exp run -S model=<name>``) to the one you want.
"""

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mlops_kit.core import strict_json
from mlops_kit.core.markdown import table
from mlops_kit.core.params import Params, load_params
from mlops_kit.dataset.quality import cross_validated
from mlops_kit.export import input_schema
from mlops_kit.train import build_model, features_and_target

MODELS = Path("conf/model")
REPORT = Path("reports/model_comparison.md")
# 1-row calls timed per model: up to this many, within about a second (scikit-learn's
# pipeline takes tens of milliseconds a call), after a few to warm up.
ONE_ROW_CALLS, ONE_ROW_SECONDS, WARM_UP_CALLS = 200, 1.0, 5


def configs(folder: Path = MODELS) -> dict[str, dict]:
    """Every model config of ``conf/model/`` by name."""
    return {path.stem: yaml.safe_load(path.read_text()) for path in sorted(folder.glob("*.yaml"))}


def median_ms(call: Any) -> float:
    """Median wall time of ``call()`` in milliseconds (at least ten calls)."""
    for _ in range(WARM_UP_CALLS):
        call()
    timings: list[float] = []
    while len(timings) < 10 or (len(timings) < ONE_ROW_CALLS and sum(timings) < ONE_ROW_SECONDS):
        start = time.perf_counter()
        call()
        timings.append(time.perf_counter() - start)
    return 1000 * statistics.median(timings)


def one_row_ms(model: Any, train: pd.DataFrame, params: Params) -> dict[str, Any]:
    """The model compiled as the export stage compiles it, and its 1-row times."""
    from mlops_kit.compiled import compile_model
    from mlops_kit.predictor import native, predictor_of

    columns = params.data.input_columns
    result = compile_model(model, input_schema(columns, params), params.data.task)
    predictor = predictor_of(result.files, result.runtime, model)
    frame = train[columns].head(1)
    row = [{column: native(value) for column, value in frame.iloc[0].items()}]
    return {
        "runtime": result.runtime.get("kind") or result.runtime["name"],
        "compiled_ms": median_ms(lambda: predictor.predict(row)),
        "scikit_learn_ms": median_ms(lambda: model.predict(frame)),
    }


def measure(name: str, config: dict, train: pd.DataFrame, params: Params) -> dict[str, Any]:
    """One config's cross-validated metrics, fit time and 1-row times."""
    chosen = params.model_copy(update={"model": config})
    folds = cross_validated(train, chosen, params.data, params.train.seed)
    model = build_model(chosen).fit(*features_and_target(train, params))
    return {
        "model": name,
        "estimator": config["_target_"].rsplit(".", 1)[-1],
        "metrics": {
            metric: {"mean": float(values.mean()), "std": float(values.std())}
            for metric, values in folds["folds"].items()
        },
        "baseline": folds["baseline"],
        "fit_seconds": statistics.median(folds["fit_seconds"]),
        **one_row_ms(model, train, params),
    }


def mean_and_spread(metric: dict[str, float]) -> str:
    """A metric's mean over the folds and its standard deviation, as one cell."""
    return f"{metric['mean']:.4f} ± {metric['std']:.4f}"


def markdown(results: list[dict], params: Params, rows: int) -> str:
    """The comparison as a page: one row per model, the configured one marked."""
    metrics = list(results[0]["metrics"])
    header = [
        "Model",
        *(f"{metric} (mean ± sd)" for metric in metrics),
        "Fit (s)",
        "Runtime",
        "1 row compiled (ms)",
        "1 row scikit-learn (ms)",
    ]
    configured = params.model["_target_"]
    lines = []
    for result in results:
        name = result["model"]
        chosen = configured.endswith(f".{result['estimator']}")
        lines.append(
            [
                f"**{name}** (configured)" if chosen else name,
                *(mean_and_spread(result["metrics"][metric]) for metric in metrics),
                f"{result['fit_seconds']:.3f}",
                result["runtime"],
                f"{result['compiled_ms']:.3f}",
                f"{result['scikit_learn_ms']:.3f}",
            ]
        )
    baseline = ", ".join(
        f"{metric} {value:.4f}" for metric, value in results[0]["baseline"].items()
    )
    return "\n".join(
        [
            "# Model comparison",
            "",
            f"Every config of conf/model/, cross-validated on the training split ({rows} rows, "
            f"target `{params.data.target}`); the constant baseline scores {baseline}. Fit time "
            "is the median per fold; 1-row times are medians in process.",
            "",
            *table(header, lines, right=range(1, len(header))),
            "",
        ]
    )


def main(argv: list[str] | None = None) -> None:
    """Measure every model config (or those named) and write the comparison."""
    parser = argparse.ArgumentParser(
        prog="make compare-models", description=__doc__.splitlines()[0]
    )
    parser.add_argument("models", nargs="*", help="model configs to compare (default: all)")
    parser.add_argument("--report", type=Path, default=REPORT, help="the page (JSON beside it)")
    arguments = parser.parse_args(argv)
    params = load_params()
    if not params.paths.train.exists():
        raise SystemExit(
            f"compare-models: {params.paths.train} is missing: run `make pipeline` first"
        )
    available = configs()
    unknown = sorted(set(arguments.models) - set(available))
    if unknown:
        raise SystemExit(
            f"compare-models: no conf/model/{unknown[0]}.yaml (there are: {', '.join(available)})"
        )
    train = pd.read_parquet(params.paths.train)
    results = []
    for name in arguments.models or list(available):
        print(f"compare-models: {name}...", flush=True)
        results.append(measure(name, available[name], train, params))
    page = markdown(results, params, len(train))
    report = arguments.report
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text(page)
    strict_json.write(report.with_suffix(".json"), {"rows": len(train), "models": results})
    print(page)
    print(f"compare-models: {report} and {report.with_suffix('.json')}")


if __name__ == "__main__":
    main()
