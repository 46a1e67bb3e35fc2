"""The ML Test Score (Breck et al., 2017): which rubric tests this project's checks prove.

``make ml-test-score`` runs the test suite with this module as a pytest plugin.
A test that automates a rubric test carries ``@pytest.mark.ml_test("data-2")``;
the plugin records how each marked test ended, in that very run. A rubric test
scores one point when its checks ran and all passed, zero when one failed, and
half a point when it has no automated check but a documented manual procedure
(``conf/ml_test_score/``) whose evidence files exist. Each section sums its
points; the final score is the smallest section sum.
"""

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

from mlops_kit.core import strict_json
from mlops_kit.core.markdown import table
from mlops_kit.core.params import MlTestScoreConfig, load_params

# The rubric itself (Tables I to IV of the paper): ids, sections, short titles.
RUBRIC: tuple[tuple[str, str], ...] = (
    ("data-1", "Feature expectations are captured in a schema"),
    ("data-2", "All features are beneficial"),
    ("data-3", "No feature's cost is too much"),
    ("data-4", "Features adhere to meta-level requirements"),
    ("data-5", "The data pipeline has appropriate privacy controls"),
    ("data-6", "New features can be added quickly"),
    ("data-7", "All input feature code is tested"),
    ("model-1", "Model specs are reviewed and submitted"),
    ("model-2", "Offline and online metrics correlate"),
    ("model-3", "All hyperparameters have been tuned"),
    ("model-4", "The impact of model staleness is known"),
    ("model-5", "A simpler model is not better"),
    ("model-6", "Model quality is sufficient on important data slices"),
    ("model-7", "The model is tested for considerations of inclusion"),
    ("infra-1", "Training is reproducible"),
    ("infra-2", "Model specs are unit tested"),
    ("infra-3", "The ML pipeline is integration tested"),
    ("infra-4", "Model quality is validated before serving"),
    ("infra-5", "The model is debuggable"),
    ("infra-6", "Models are canaried before serving"),
    ("infra-7", "Serving models can be rolled back"),
    ("monitor-1", "Dependency changes result in notification"),
    ("monitor-2", "Data invariants hold in training and serving inputs"),
    ("monitor-3", "Training and serving features compute the same values"),
    ("monitor-4", "Models are not too stale"),
    ("monitor-5", "The model is numerically stable"),
    ("monitor-6", "The model has not regressed in computing performance"),
    ("monitor-7", "The model has not regressed in prediction quality"),
)
TITLES = dict(RUBRIC)
SECTIONS = {"data": "Data", "model": "Model", "infra": "Infrastructure", "monitor": "Monitoring"}
USER_PROPERTY = "ml_test"
# A check that adapted to the data says how with ``record_property(NOTE_PROPERTY, text)``;
# the report shows the note beside the rubric test.
NOTE_PROPERTY = "ml_test_note"


@dataclass
class Row:
    """One rubric test: how it is covered in this run and what it scores."""

    id: str
    title: str
    coverage: str
    result: str
    points: float
    checks: list[str] = field(default_factory=list)


@dataclass
class Score:
    """The whole report: 28 rows, the section sums and the final score."""

    rows: list[Row]
    sections: dict[str, float]
    final: float
    fail_under: float

    @property
    def reading(self) -> str:
        """The paper's reading of the final score."""
        bands = [
            (0, "more of a research project than a productionized system"),
            (1, "not totally untested, but serious holes in reliability are possible"),
            (2, "a first pass at basic productionization"),
            (3, "reasonably tested, but more could be automated"),
            (5, "strong automated testing and monitoring"),
        ]
        for upper, text in bands:
            if self.final <= upper:
                return text
        return "exceptional levels of automated testing and monitoring"


def rubric_ids(item: pytest.Item) -> list[str]:
    """The rubric ids a test names in its ``ml_test`` markers; unknown ids are refused."""
    ids = [rubric_id for marker in item.iter_markers("ml_test") for rubric_id in marker.args]
    unknown = [rubric_id for rubric_id in ids if rubric_id not in TITLES]
    if unknown:
        raise pytest.UsageError(
            f"{item.nodeid}: unknown ML Test Score id(s) {unknown}; known: data-1..7, "
            "model-1..7, infra-1..7, monitor-1..7"
        )
    return ids


def outcome(reports: list[pytest.TestReport]) -> str:
    """How one test ended across its phases: passed, failed or skipped."""
    if any(report.failed for report in reports):
        return "failed"
    if any(report.when == "call" and report.passed for report in reports):
        return "passed"
    return "skipped"


def skip_reason(reports: list[pytest.TestReport]) -> str | None:
    """Why a skipped test was skipped (pytest's message), or None."""
    for report in reports:
        if report.skipped and isinstance(report.longrepr, tuple):
            return str(report.longrepr[2]).removeprefix("Skipped: ")
    return None


def notes_of(reports: list[pytest.TestReport]) -> list[str]:
    """The notes a test recorded about how it adapted to the data."""
    return [
        str(value)
        for report in reports
        for name, value in report.user_properties
        if name == NOTE_PROPERTY
    ]


def evidence_present(paths: list[str], root: Path) -> bool:
    """Whether every evidence file of a manual procedure exists."""
    return bool(paths) and all((root / path).exists() for path in paths)


def score(
    outcomes: dict[str, dict[str, str]],
    config: MlTestScoreConfig,
    root: Path,
    remarks: dict[str, list[str]] | None = None,
) -> Score:
    """Score the rubric from the outcomes of the checks that ran, by rubric id.

    ``remarks`` are, per rubric id, the notes of checks that adapted to the data
    and the reasons of checks that could not apply; they are shown, never scored.
    """
    rows = []
    for rubric_id, title in RUBRIC:
        checks = outcomes.get(rubric_id, {})
        ended = set(checks.values()) - {"skipped"}
        manual = config.manual.get(rubric_id)
        said = "; ".join(sorted(set((remarks or {}).get(rubric_id, []))))
        if "failed" in ended:
            failed = sorted(name for name, result in checks.items() if result == "failed")
            row = Row(rubric_id, title, "automated", f"failed: {', '.join(failed)}", 0.0)
        elif ended:
            passed = sum(result == "passed" for result in checks.values())
            result = f"{passed} check(s) passed" + (f" ({said})" if said else "")
            row = Row(rubric_id, title, "automated", result, 1.0)
        elif manual and evidence_present(manual.evidence, root):
            row = Row(rubric_id, title, "manual", manual.procedure, 0.5)
        elif manual:
            missing = ", ".join(manual.evidence)
            row = Row(rubric_id, title, "manual", f"evidence missing: {missing}", 0.0)
        elif checks and said:
            row = Row(rubric_id, title, "not applicable", said, 0.0)
        else:
            skipped = "all checks skipped" if checks else "no check ran"
            row = Row(rubric_id, title, "not covered", skipped, 0.0)
        row.checks = sorted(checks)
        rows.append(row)
    sections = {
        name: sum(row.points for row in rows if row.id.split("-")[0] == prefix)
        for prefix, name in SECTIONS.items()
    }
    return Score(rows, sections, min(sections.values()), config.fail_under)


def markdown(result: Score) -> str:
    """The report as markdown: the 28-row table, the section sums, the final score."""
    rows = [(row.id, row.title, row.coverage, row.result, f"{row.points:g}") for row in result.rows]
    header = ["Test", "Title", "Coverage", "Result", "Points"]
    sections = [(name, f"{points:g}") for name, points in result.sections.items()]
    lines = ["## ML Test Score", "", *table(header, rows, right=[4])]
    lines += ["", *table(["Section", "Points"], sections, right=[1])]
    lines += [
        "",
        f"**Final score: {result.final:g}** (the smallest section sum; "
        f"required above {result.fail_under:g}): {result.reading}.",
        "",
    ]
    return "\n".join(lines)


class ScorePlugin:
    """Collects how every ``ml_test``-marked check ended and reports the score."""

    def __init__(self, config: MlTestScoreConfig, root: Path) -> None:
        self.config = config
        self.root = root
        self.reports: dict[str, list[pytest.TestReport]] = {}
        self.ids: dict[str, list[str]] = {}
        self.result: Score | None = None

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Refuse unknown rubric ids before any test runs."""
        for item in items:
            rubric_ids(item)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any):
        """Attach the test's rubric ids to its report (it crosses xdist's process boundary)."""
        made = yield
        ids = rubric_ids(item)
        if ids:
            made.get_result().user_properties.append((USER_PROPERTY, ids))

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Remember each phase of each marked test, in the controlling process."""
        for name, value in report.user_properties:
            if name == USER_PROPERTY:
                self.ids[report.nodeid] = list(value)
                self.reports.setdefault(report.nodeid, []).append(report)

    def remarks(self) -> dict[str, list[str]]:
        """Per rubric id, notes of checks that adapted and reasons of skipped ones."""
        by_id: dict[str, list[str]] = {}
        for nodeid, ids in self.ids.items():
            reports = self.reports[nodeid]
            said = notes_of(reports)
            if outcome(reports) == "skipped" and (reason := skip_reason(reports)):
                said.append(reason)
            for rubric_id in ids:
                by_id.setdefault(rubric_id, []).extend(said)
        return by_id

    def outcomes(self) -> dict[str, dict[str, str]]:
        """Per rubric id, each check's node id and how it ended."""
        by_id: dict[str, dict[str, str]] = {}
        for nodeid, ids in self.ids.items():
            ended = outcome(self.reports[nodeid])
            for rubric_id in ids:
                by_id.setdefault(rubric_id, {})[nodeid] = ended
        return by_id

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        """Score the run, write the reports, and fail the run below ``fail_under``."""
        if hasattr(session.config, "workerinput"):
            return  # xdist workers report to the controller, which scores
        self.result = score(self.outcomes(), self.config, self.root, self.remarks())
        report = self.config.report
        report.parent.mkdir(parents=True, exist_ok=True)
        report.write_text(markdown(self.result))
        record = {**asdict(self.result), "reading": self.result.reading}
        strict_json.write(report.with_suffix(".json"), record)
        summary = session.config.getoption("--ml-test-score-summary")
        if summary is not None:
            with summary.open("a") as destination:
                destination.write(markdown(self.result))
        if self.result.final <= self.config.fail_under and session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        """Print the report under pytest's summary."""
        if self.result is None:
            return
        terminalreporter.write_line("")
        for line in markdown(self.result).splitlines():
            terminalreporter.write_line(line)
        terminalreporter.write_line(f"(written to {self.config.report})")


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--ml-test-score``: score the run against the rubric."""
    parser.addoption(
        "--ml-test-score",
        action="store_true",
        help="score this run against the ML Test Score rubric (conf/ml_test_score/)",
    )
    parser.addoption(
        "--ml-test-score-summary",
        type=Path,
        help="also append the markdown report to this file (CI: $GITHUB_STEP_SUMMARY)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Register the scoring plugin when ``--ml-test-score`` is given."""
    if config.getoption("--ml-test-score"):
        root = Path(config.rootpath)
        settings = load_params(root / "params.yaml").ml_test_score
        config.pluginmanager.register(ScorePlugin(settings, root), "ml-test-score")
