"""Tables nobody tuned the template for, made with a generated project's own libraries.

The template's test environment has no scikit-learn or pandas; a generated
project has both. ``python own_tables.py write NAME PATH`` writes table NAME
(CSV or Parquet, by the path's suffix); ``python own_tables.py rows PATH TARGET
COLUMN...`` prints request bodies from real rows of a table, as a pandas user
holds them: one row's ``to_dict()`` and one row of ``to_json(orient="records")``.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd


def wine() -> pd.DataFrame:
    """All numeric (integer columns too), three integer classes, rows sorted by class."""
    from sklearn.datasets import load_wine

    return load_wine(as_frame=True).frame


def breast_cancer() -> pd.DataFrame:
    """30 features, a binary integer label, some names with spaces and capitals."""
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    renamed = {name: name.title() for name in list(frame.columns)[:6]}
    return frame.rename(columns=renamed)


def sensors() -> pd.DataFrame:
    """32 columns with capitals and spaces, a binary integer label no straight line separates."""
    rng = np.random.default_rng(5)
    rows = 600
    values = rng.normal(size=(rows, 32))
    frame = pd.DataFrame(values, columns=[f"Sensor {index:02d}" for index in range(32)])
    ring = values[:, 0] ** 2 + values[:, 1] ** 2 + 0.5 * values[:, 2]
    frame["Alarm"] = (ring > 1.6).astype(int)
    return frame


def customers() -> pd.DataFrame:
    """Text labels, a category with gaps, dates, an id, free text, a sensitive attribute."""
    from sklearn.datasets import make_classification

    rows = 600
    features, labels = make_classification(
        n_samples=rows, n_features=6, n_informative=4, n_classes=3, random_state=7
    )
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(features, columns=[f"Usage {index}" for index in range(6)])
    frame.insert(0, "customer_id", [f"C{index:05d}" for index in range(rows)])
    region = np.where(features[:, 0] > 0, "north", "south").astype(object)
    region[rng.random(rows) < 0.08] = None
    frame["Region"] = region
    frame["gender"] = rng.choice(["female", "male"], size=rows)
    frame["signed up"] = pd.date_range("2023-01-01", periods=rows, freq="12h").astype(str)
    frame["note"] = [f"called about item {rng.integers(1e6)} on a weekday" for _ in range(rows)]
    frame["Plan"] = np.array(["basic", "plus", "premium"])[labels]
    return frame


def diabetes() -> pd.DataFrame:
    """Regression on a target in its own units (not miles per gallon), `sex` coded 1/2."""
    from sklearn.datasets import load_diabetes

    return load_diabetes(as_frame=True, scaled=False).frame


def house_prices() -> pd.DataFrame:
    """Regression on a wide table (32 columns): dates, a category with gaps, no sensitive one.

    The price depends on a few columns non-linearly, so a forest beats a straight line.
    """
    rows = 500
    rng = np.random.default_rng(3)
    features = rng.normal(size=(rows, 30))
    frame = pd.DataFrame(features, columns=[f"Feature {index:02d}" for index in range(30)])
    district = np.where(features[:, 1] > 0, "East", "West").astype(object)
    district[rng.random(rows) < 0.05] = None
    frame["District"] = district
    frame["sold_on"] = pd.date_range("2020-01-01", periods=rows, freq="D").astype(str)
    signal = 40_000 * np.abs(features[:, 0]) + 25_000 * features[:, 1] ** 2
    signal += 30_000 * (features[:, 2] > 0.5)
    frame["Sale Price"] = 200_000 + signal + rng.normal(0, 5_000, size=rows)
    return frame


def engine_wear() -> pd.DataFrame:
    """Regression from a handful of numeric columns only, some values missing."""
    rng = np.random.default_rng(11)
    rows = 400
    hours = rng.uniform(0, 5000, size=rows)
    load = rng.uniform(0.2, 1.0, size=rows)
    temperature = rng.normal(80, 10, size=rows)
    wear = 0.002 * hours * load + 0.05 * (temperature - 80) + rng.normal(0, 0.5, size=rows)
    frame = pd.DataFrame(
        {"hours": hours, "load": load, "oil_temperature": temperature, "wear_mm": wear}
    )
    frame.loc[rng.random(rows) < 0.05, "oil_temperature"] = np.nan
    return frame


def weak_churn() -> pd.DataFrame:
    """A weak binary signal: 20 % positives that a model barely tells from the majority.

    1,200 rows with an id, a date and 5 % of some columns' values missing. Under heavy
    noise a forest reaches an accuracy about 0.80 to 0.81 against 0.80 for always
    answering the majority class, an F1 (macro) about 0.55.
    """
    rng = np.random.default_rng(25)
    rows = 1200
    values = rng.normal(size=(rows, 5))
    frame = pd.DataFrame(values, columns=[f"usage_{index}" for index in range(5)])
    frame.insert(0, "account_id", [f"A{index:06d}" for index in range(rows)])
    frame["plan"] = rng.choice(["monthly", "yearly", "trial"], size=rows, p=[0.5, 0.3, 0.2])
    frame["opened_on"] = pd.date_range("2024-01-01", periods=rows, freq="7h").astype(str)
    # Risk rises at both tails of one column (no straight line follows it, so a forest
    # beats a logistic regression) and a little where two others are high.
    tails = np.abs(values[:, 0]) > 1.2
    risk = 0.08 + 0.45 * tails + 0.1 * ((values[:, 1] > 0.5) & (values[:, 2] > 0.5))
    frame["churned"] = (rng.random(rows) < risk).astype(int)
    for column in ["usage_0", "usage_3", "plan"]:
        frame.loc[rng.random(rows) < 0.05, column] = None
    return frame


def district_prices() -> pd.DataFrame:
    """Regression on a skewed target from one nullable number, a 400-value district and a date.

    The only numeric feature, ``area``, is missing in 10 % of the rows: a batch where
    every area is missing must still train.
    """
    rng = np.random.default_rng(26)
    rows = 1200
    districts = np.array([f"D{index:03d}" for index in range(400)])
    effect = rng.normal(0, 0.3, size=400)
    # Every district at least once, most of them a few times.
    chosen = rng.permutation(np.concatenate([np.arange(400), rng.integers(0, 400, rows - 400)]))
    area = rng.gamma(4.0, 20.0, size=rows)
    log_price = 10.5 + 0.012 * area + effect[chosen] + rng.normal(0, 0.25, size=rows)
    frame = pd.DataFrame(
        {
            "listed_on": pd.date_range("2022-01-01", periods=rows, freq="13h").astype(str),
            "district": districts[chosen],
            "area": area.round(1),
        }
    )
    frame.loc[rng.random(rows) < 0.1, "area"] = np.nan
    frame["price"] = np.exp(log_price).round(0)
    return frame


TABLES = {
    "wine": wine,
    "breast_cancer": breast_cancer,
    "sensors": sensors,
    "customers": customers,
    "diabetes": diabetes,
    "house_prices": house_prices,
    "engine_wear": engine_wear,
    "weak_churn": weak_churn,
    "district_prices": district_prices,
}


def read(path: Path) -> pd.DataFrame:
    """A table written by ``write``."""
    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def write(name: str, path: Path) -> None:
    """Write table ``name`` to ``path``."""
    table = TABLES[name]()
    if path.suffix == ".parquet":
        table.to_parquet(path, index=False)
    else:
        table.to_csv(path, index=False)


def rows(path: Path, target: str, columns: list[str]) -> list:
    """Two request bodies from labeled rows: a dict, and a JSON record as text."""
    table = read(path)
    table = table[table[target].notna()][columns]
    as_dict = json.loads(json.dumps(table.iloc[3].to_dict(), default=str))
    as_record = table.iloc[[5]].to_json(orient="records")[1:-1]
    return [as_dict, as_record]


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    if command == "write":
        write(arguments[0], Path(arguments[1]))
    else:
        print(json.dumps(rows(Path(arguments[0]), arguments[1], arguments[2:])))
