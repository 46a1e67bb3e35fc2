"""What a model learned from: one lineage per task, target, input columns and labels.

The registry tags each version with its lineage; evaluation, export, rollback and
the reference profile compare lineages to decide whether two models can be scored
on one table or stand in for each other.
"""

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from mlops_kit.core.params import Params


def input_columns_of(model: Any, params: Params) -> list[str]:
    """The columns ``model`` was fitted on (the configured inputs when it has none recorded).

    A champion trained before the feature lists in ``conf/data/`` changed still
    needs its own columns, both to be scored against a challenger and to be served.
    """
    return list(getattr(model, "feature_names_in_", params.data.input_columns))


@dataclass(frozen=True)
class Lineage:
    """What a model learned from: its task, its target and the input columns it was fitted on.

    Models of one lineage can be scored on the same test split and stand in for one
    another (promotion, rollback); another target, task or table starts a new one.
    ``source`` only says where the data came from: a refreshed file of the same
    table, or one with extra columns, continues the lineage. ``labels`` are a
    classifier's classes as the table holds them (integers stay integers): a table
    re-exported with class names instead of codes, or with a class the model never
    learned, starts a new lineage too. Empty for a regressor, or when not recorded.
    """

    task: str
    target: str
    columns: tuple[str, ...]
    source: str
    labels: tuple = ()

    # Model version tags: the registry says what each version learned from without
    # loading it (an old pickle may need feature code that no longer exists).
    TAG_PREFIX = "lineage."

    def tags(self) -> dict[str, str]:
        """The lineage as model version tags."""
        return {
            f"{self.TAG_PREFIX}task": self.task,
            f"{self.TAG_PREFIX}target": self.target,
            f"{self.TAG_PREFIX}columns": json.dumps(list(self.columns)),
            f"{self.TAG_PREFIX}source": self.source,
            f"{self.TAG_PREFIX}labels": json.dumps(list(self.labels)),
        }

    @classmethod
    def from_tags(cls, tags: Mapping[str, str]) -> "Lineage | None":
        """The lineage recorded in a version's tags; None when it was registered without one."""
        try:
            return cls(
                task=tags[f"{cls.TAG_PREFIX}task"],
                target=tags[f"{cls.TAG_PREFIX}target"],
                columns=tuple(json.loads(tags[f"{cls.TAG_PREFIX}columns"])),
                source=tags[f"{cls.TAG_PREFIX}source"],
                # Versions tagged before labels were recorded: unknown, not compared.
                labels=tuple(json.loads(tags.get(f"{cls.TAG_PREFIX}labels", "[]"))),
            )
        except KeyError:
            return None

    def __str__(self) -> str:
        """What was learned from where, as in "species from data/raw/penguins.csv"."""
        return f"{self.target} from {self.source}"


def plain_labels(values: Iterable) -> tuple:
    """Labels as plain JSON values, each in its own type (numpy's 1 becomes 1, not "1")."""
    return tuple(getattr(label, "item", lambda label=label: label)() for label in values)


def labels_of(model: Any) -> tuple:
    """A classifier's classes as plain JSON values; () for a regressor."""
    classes = getattr(model, "classes_", None)
    return () if classes is None else plain_labels(classes)


def lineage_of(model: Any, params: Params) -> Lineage:
    """The lineage of a model fitted on the configured data."""
    data = params.data
    return Lineage(
        data.task,
        data.target,
        tuple(input_columns_of(model, params)),
        str(data.source),
        labels_of(model) if data.is_classification else (),
    )


def label_kind(labels: Iterable) -> str:
    """What the labels are, in words: integers, numbers, strings, or a mix."""
    kinds = set()
    for label in labels:
        if isinstance(label, bool):
            kinds.add("booleans")
        elif isinstance(label, int):
            kinds.add("integers")
        elif isinstance(label, float):
            kinds.add("numbers")
        else:
            kinds.add("strings")
    return " and ".join(sorted(kinds)) or "none"


def label_change(old: Iterable, new: Iterable) -> str | None:
    """Why labels ``new`` cannot be scored by a model that learned labels ``old``.

    A change of kind (codes re-exported as class names: ``1`` is not ``"1"``, and
    scikit-learn refuses to compare the two) or a label the old model never learned.
    A label the new data lacks is no change: a small split may miss a rare class.
    """
    old, new = list(old), list(new)
    if not old or not new:
        return None
    shown = f"{label_kind(old)} {old[:6]}{' ...' if len(old) > 6 else ''}"
    now = f"{label_kind(new)} {new[:6]}{' ...' if len(new) > 6 else ''}"
    if label_kind(old) != label_kind(new):
        return f"the labels changed from {shown} to {now}"
    unknown = [label for label in new if label not in set(old)]
    if unknown:
        return f"the labels changed from {shown} to {now} (new: {unknown[:3]})"
    return None


def lineage_change(old: Lineage, new: Lineage, available: Iterable[str], table: str) -> str | None:
    """Why a model of lineage ``old`` cannot be scored beside, or stand in for, one of ``new``.

    ``available`` are the columns of ``table``, the data it would be given. None when
    nothing stands in the way: the two are of one lineage.
    """
    changes = []
    if old.task != new.task:
        changes.append(f"the task changed from {old.task} to {new.task}")
    if old.target != new.target:
        changes.append(f"the target changed from {old.target!r} to {new.target!r}")
    labels = label_change(old.labels, new.labels)
    if labels and old.target == new.target:
        changes.append(labels)
    present = set(available)
    missing = [column for column in old.columns if column not in present]
    if missing:
        shown = ", ".join(missing[:3]) + (", ..." if len(missing) > 3 else "")
        kept = len(old.columns) - len(missing)
        changes.append(
            f"{table} has {kept or 'none'} of the {len(old.columns)} columns it was fitted on, "
            f"lacking {shown}"
        )
    return "; ".join(changes) or None
