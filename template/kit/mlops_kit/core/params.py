"""The pipeline's parameters as typed records, read from ``params.yaml``.

``conf/`` (Hydra) is the single source of truth. ``compose_params`` composes it
into ``params.yaml`` exactly as ``dvc exp run`` does, and every stage reads its
settings from ``params.yaml`` through ``load_params``, so DVC tracks precisely
the values the code uses.
"""

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

PARAMS_FILE = Path("params.yaml")


class Strict(BaseModel):
    """Base for config sections: unknown keys are typos, so they are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class DataConfig(Strict):
    """Where the data comes from and which columns play which role.

    ``slice_column``, ``time_column`` and ``sensitive_column`` need not be model
    inputs; each is optional, and the checks that need one say so when it is absent.
    """

    source: Path
    task: Literal["classification", "regression"]
    target: str
    numeric_features: list[str]
    categorical_features: list[str] = []
    derived_features: list[str] = []
    # Evaluation reports metrics per value of this column (numeric: per quantile bin).
    slice_column: str | None = None
    slice_bins: int = Field(default=4, ge=2)
    # Rows are ordered in time by this column: the staleness check (model-4) trains
    # without the newest period. Never a model input. None: the file's row order.
    time_column: str | None = None
    # Model quality is compared across the groups of this column (model-7).
    sensitive_column: str | None = None

    @property
    def is_classification(self) -> bool:
        """Whether the target is a class label (otherwise a number)."""
        return self.task == "classification"

    @property
    def input_columns(self) -> list[str]:
        """Columns a caller must provide to get a prediction."""
        return [*self.numeric_features, *self.categorical_features]


class ColumnSchema(Strict):
    """Rules for one column, derived from the training data's statistics."""

    dtype: Literal["float", "int", "str"]
    nullable: bool = True
    max_null_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    min: float | None = None
    max: float | None = None
    # Allowed values: text, or whole numbers for a classifier's numeric labels.
    categories: list[str] | list[int] | None = None


class SchemaConfig(Strict):
    """Rules for the whole table."""

    min_rows: int = Field(ge=1)
    columns: dict[str, ColumnSchema]


class ClusterTrainConfig(Strict):
    """Training on a Dask cluster (``DASK_SCHEDULER_ADDRESS``): partitions and sampling."""

    # Rows per Parquet row group of the train split: one Dask partition each.
    partition_rows: int = Field(ge=1)
    # Rows of the train split the preprocessing is fitted on.
    preprocess_sample_rows: int = Field(ge=1)
    connect_timeout_seconds: float = Field(gt=0)


class TrainConfig(Strict):
    """Split and reproducibility settings."""

    seed: int
    test_size: float = Field(gt=0.0, lt=1.0)
    stratify: bool = True
    cluster: ClusterTrainConfig


class Threshold(Strict):
    """Bounds a metric must respect for a model to be promoted."""

    min: float | None = None
    max: float | None = None


class EvaluateConfig(Strict):
    """How models are judged and when a challenger is promoted."""

    primary_metric: str
    greater_is_better: bool
    thresholds: dict[str, Threshold]
    promotion_margin: float = Field(ge=0.0)
    # Largest loss on the frozen holdout (``paths.holdout``) a challenger may show
    # against the champion, in the primary metric's units.
    holdout_margin: float = Field(ge=0.0)


class MlflowConfig(Strict):
    """Tracking and registry names."""

    tracking_uri: str
    experiment_name: str
    registered_model_name: str
    challenger_alias: str
    champion_alias: str


class PathsConfig(Strict):
    """Files each stage reads and writes (dvc.yaml uses the same values)."""

    prepared: Path
    validated: Path
    train: Path
    test: Path
    model: Path
    registration: Path
    validation_report: Path
    metrics: Path
    slice_metrics: Path
    promotion: Path
    predictions: Path
    roc: Path
    figures: Path
    model_card_facts: Path
    model_card: Path
    plots_page: Path
    model_card_team: Path
    bundle: Path
    reference: Path
    holdout: Path


class BatchingConfig(Strict):
    """Adaptive batching of concurrent single-record requests."""

    max_batch_size: int = Field(ge=1)


class PredictionLogConfig(Strict):
    """Where the service appends sampled predictions (JSON Lines) for monitoring."""

    path: Path
    sample_rate: float = Field(ge=0.0, le=1.0)


class CanaryConfig(Strict):
    """How the challenger sees live traffic before it could be promoted."""

    mode: Literal["off", "split", "shadow"]
    fraction: float = Field(ge=0.0, le=1.0)


class ServeConfig(Strict):
    """How the prediction service runs."""

    max_batch_size: int = Field(ge=1)
    max_body_bytes: int = Field(ge=1024)
    max_concurrency: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    workers: int = Field(ge=1)
    max_model_age_days: float = Field(gt=0)
    batching: BatchingConfig
    prediction_log: PredictionLogConfig
    canary: CanaryConfig


class SyntheticConfig(Strict):
    """How synthetic tables for scale tests are made from the real data."""

    jitter: float = Field(ge=0.0)
    output_dir: Path


class DriftConfig(Strict):
    """When a feature counts as drifted from the training data."""

    bins: int = Field(ge=2)
    psi_max: float = Field(gt=0.0)
    p_value_min: float = Field(ge=0.0, le=1.0)
    max_drifted_features: int = Field(ge=0)


class SkewConfig(Strict):
    """How far logged features and predictions may stray from training."""

    mean_shift_max: float = Field(gt=0.0)
    std_ratio_max: float = Field(ge=1.0)
    missing_rate_change_max: float = Field(ge=0.0, le=1.0)
    category_frequency_change_max: float = Field(ge=0.0, le=1.0)
    prediction_psi_max: float = Field(gt=0.0)
    prediction_mismatch_max: float = Field(ge=0.0, le=1.0)
    prediction_rtol: float = Field(ge=0.0)


class OnlineConfig(Strict):
    """How close metrics on labeled serving traffic must stay to the offline ones.

    The limit of each metric is ``spread_z`` standard deviations of its sampling
    spread at the number of labeled rows, and at least its ``tolerance``.
    """

    tolerance: dict[str, float]
    spread_z: float = Field(default=3.0, gt=0.0)


class MonitorConfig(Strict):
    """Monitoring jobs on the service's prediction log (``serve.prediction_log``)."""

    labels: Path
    report_dir: Path
    min_rows: int = Field(ge=1)
    drift: DriftConfig
    skew: SkewConfig
    online: OnlineConfig


class TableChecksConfig(Strict):
    """How far a new batch of data may stray from the reference profile (``reference``)."""

    quantiles: int = Field(ge=10)
    max_duplicate_increase: float = Field(ge=0.0, le=1.0)
    min_class_share_ratio: float = Field(ge=0.0, le=1.0)
    max_quantile_shift: float = Field(ge=0.0)
    max_top_value_share: float = Field(gt=0.0, le=1.0)
    max_row_count_ratio: float = Field(ge=1.0)
    drift: DriftConfig


class ManualProcedure(Strict):
    """A rubric test done by people, and the files that show it is in place."""

    procedure: str
    evidence: list[str]


class TuningConfig(Strict):
    """The grid the configured hyperparameters are checked against, per estimator class."""

    folds: int = Field(ge=2)
    tolerance: float = Field(ge=0.0)
    search_spaces: dict[str, dict[str, list[Any]]]


class StalenessConfig(Strict):
    """How much a model trained without the newest period may lose on it.

    The period is the newest value of ``data.time_column``; without a time column,
    the newest ``row_order_share`` of the rows in the file's order.
    """

    max_loss: float = Field(ge=0.0)
    row_order_share: float = Field(default=0.2, gt=0.0, lt=1.0)


class SliceCheckConfig(Strict):
    """Thresholds every large enough data slice must meet."""

    min_rows: int = Field(ge=1)
    thresholds: dict[str, Threshold]


class InclusionConfig(Strict):
    """Largest metric gap allowed between the groups of ``data.sensitive_column``."""

    min_rows: int = Field(ge=1)
    max_gap: float = Field(ge=0.0)


class LatencyConfig(Strict):
    """How prediction time is measured and how much it may regress."""

    rows: int = Field(ge=1)
    repeats: int = Field(ge=1)
    max_slowdown: float = Field(ge=1.0)
    baseline: Path


class MlTestScoreConfig(Strict):
    """What ``make ml-test-score`` requires, and the thresholds of its checks."""

    fail_under: float = Field(ge=0.0)
    report: Path
    manual: dict[str, ManualProcedure] = {}
    min_mutual_information: float = Field(ge=0.0)
    max_bytes_per_row: int = Field(ge=1)
    max_ms_per_1k_rows: float = Field(gt=0.0)
    allowed_dtypes: list[Literal["float", "int", "str"]]
    pii_column_patterns: list[str]
    pii_value_patterns: dict[str, str]
    tuning: TuningConfig
    staleness: StalenessConfig
    simpler_model: str
    simpler_model_tolerance: float = Field(ge=0.0)
    slices: SliceCheckConfig
    inclusion: InclusionConfig
    latency: LatencyConfig


class ReportConfig(Strict):
    """How the champion's charts and model card are drawn."""

    max_points: int = Field(ge=10)
    # None: the evaluation's primary metric.
    chart_metric: str | None = None


class IntRange(Strict):
    """Whole numbers from ``low`` to ``high``; ``log`` samples orders of magnitude evenly."""

    type: Literal["int"]
    low: int
    high: int
    log: bool = False


class FloatRange(Strict):
    """Real numbers from ``low`` to ``high``; ``log`` samples orders of magnitude evenly."""

    type: Literal["float"]
    low: float
    high: float
    log: bool = False


class Choices(Strict):
    """One of the listed values."""

    type: Literal["categorical"]
    choices: list[Any] = Field(min_length=1)


class SweepConfig(Strict):
    """What ``make sweep`` searches (``space``: hyperparameters of the configured model)."""

    trials: int = Field(ge=1)
    validation_size: float = Field(gt=0.0, lt=1.0)
    local_workers: int = Field(ge=1)
    connect_timeout_seconds: float = Field(gt=0)
    # Empty when conf/sweep/space/ has no file for the chosen model (the group is optional).
    space: dict[str, Annotated[IntRange | FloatRange | Choices, Field(discriminator="type")]] = {}


class Params(Strict):
    """All parameters of the pipeline, as composed into ``params.yaml``."""

    data: DataConfig
    data_schema: SchemaConfig = Field(alias="schema")
    table_checks: TableChecksConfig
    model: dict[str, Any]
    train: TrainConfig
    evaluate: EvaluateConfig
    mlflow: MlflowConfig
    paths: PathsConfig
    serve: ServeConfig
    synthetic: SyntheticConfig
    monitor: MonitorConfig
    ml_test_score: MlTestScoreConfig
    report: ReportConfig
    sweep: SweepConfig


def load_params(path: Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``; run ``make params`` first if it is missing."""
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist: run `make params` to compose it from conf/"
        )
    return Params.model_validate(yaml.safe_load(path.read_text()))
