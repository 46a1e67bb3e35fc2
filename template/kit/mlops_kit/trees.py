"""Tree ensembles as one ONNX TreeEnsemble node in double precision.

skl2onnx writes tree thresholds and leaves in float32 (and cannot read LightGBM or
XGBoost models at all); onnxmltools' converters compare in float32 too, so a
regressor with targets in the tens of thousands strays by hundredths. Here each
family's fitted trees are read as they are stored (double thresholds for
scikit-learn and LightGBM, float32 for XGBoost) into the flat layout of
ai.onnx.ml 5's TreeEnsemble, which computes in the input's type.

Each reader returns the trees and the ``kind`` the predictor needs to feed them:
``forest`` and ``xgboost`` models compare float32-cast inputs; ``boosting``,
``lightgbm`` and ``xgboost`` give raw scores that the predictor turns into
probabilities (sigmoid or softmax).
"""

import json
import math
from typing import Any

import numpy as np

TREE_OPSET = 5

ONNX_OPSET = 18


class Unsupported(Exception):
    """A part of the model this module cannot compile; the message says which."""


class Trees:
    """Trees in the flat layout of ONNX's TreeEnsemble operator (ai.onnx.ml 5).

    That operator computes in the input's type, double here; each of its leaves adds
    to one target, so a forest classifier's tree becomes one tree per class.
    """

    def __init__(self, n_targets: int, base: list[float]) -> None:
        """An ensemble of no trees whose targets start at ``base``."""
        self.n_targets = n_targets
        self.base = base
        self.roots: list[int] = []
        self.features: list[int] = []
        self.splits: list[float] = []
        self.nan_left: list[int] = []
        self.branches: dict[str, list[int]] = {
            key: [] for key in ("true", "true_leaf", "false", "false_leaf")
        }
        self.targets: list[int] = []
        self.weights: list[float] = []

    def add(
        self,
        left: np.ndarray,
        right: np.ndarray,
        feature: np.ndarray,
        threshold: np.ndarray,
        nan_left: np.ndarray,
        is_leaf: np.ndarray,
        value: np.ndarray,
        target: int,
    ) -> None:
        """One tree whose leaf ``i`` adds ``value[i]`` to ``target``.

        Node 0 is its root; x <= threshold goes left.
        """
        splits = [int(i) for i in np.flatnonzero(~is_leaf)]
        leaves = [int(i) for i in np.flatnonzero(is_leaf)]
        split_index = {node: len(self.features) + k for k, node in enumerate(splits)}
        leaf_index = {node: len(self.weights) + k for k, node in enumerate(leaves)}
        if not splits:
            # A tree that is one leaf: a split whose both branches reach it.
            self.roots.append(len(self.features))
            self.features.append(0)
            self.splits.append(0.0)
            self.nan_left.append(0)
            for key, index in (
                ("true", leaf_index[0]),
                ("true_leaf", 1),
                ("false", leaf_index[0]),
                ("false_leaf", 1),
            ):
                self.branches[key].append(index)
        else:
            self.roots.append(split_index[0])
        for node in splits:
            self.features.append(int(feature[node]))
            self.splits.append(float(threshold[node]))
            self.nan_left.append(int(nan_left[node]))
            for side, child in (("true", int(left[node])), ("false", int(right[node]))):
                leaf = bool(is_leaf[child])
                self.branches[side].append(leaf_index[child] if leaf else split_index[child])
                self.branches[f"{side}_leaf"].append(int(leaf))
        for node in leaves:
            self.targets.append(target)
            self.weights.append(float(value[node]))


def forest_trees(estimator: Any, classification: bool) -> Trees:
    """A random forest's (or one tree's) nodes: leaves hold each tree's share of the mean.

    scikit-learn compares float32-cast inputs with float64 thresholds; the predictor
    casts its inputs the same way, so the double thresholds are kept exactly.
    """
    members = getattr(estimator, "estimators_", [estimator])
    if getattr(estimator, "n_outputs_", 1) != 1:
        raise Unsupported("a multi-output tree model")
    n_targets = len(estimator.classes_) if classification else 1
    trees = Trees(n_targets, [0.0] * n_targets)
    for member in members:
        tree = member.tree_
        value = tree.value[:, 0, :]
        if classification:
            value = value / value.sum(axis=1, keepdims=True)
        nan_left = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=bool))
        for target in range(n_targets):
            trees.add(
                tree.children_left,
                tree.children_right,
                tree.feature,
                tree.threshold,
                nan_left,
                tree.children_left == -1,
                value[:, target] / len(members),
                target,
            )
    return trees


def boosting_trees(estimator: Any, classification: bool) -> Trees:
    """A histogram gradient boosting model's raw score: its baseline plus every tree's leaf.

    It compares float64 inputs with float64 thresholds. The predictor applies the
    loss's inverse link (sigmoid, softmax or identity) to the raw score.
    """
    categorical = getattr(estimator, "is_categorical_", None)
    if getattr(estimator, "_preprocessor", None) is not None or (
        categorical is not None and np.any(categorical)
    ):
        raise Unsupported("HistGradientBoosting with native categorical features")
    loss = estimator.loss
    if loss != ("log_loss" if classification else "squared_error"):
        raise Unsupported(f"HistGradientBoosting with loss {loss!r}")
    baseline = [float(v) for v in np.ravel(estimator._baseline_prediction)]
    trees = Trees(estimator.n_trees_per_iteration_, baseline)
    for iteration in estimator._predictors:
        for target, predictor in enumerate(iteration):
            nodes = predictor.nodes
            trees.add(
                nodes["left"],
                nodes["right"],
                nodes["feature_idx"],
                nodes["num_threshold"],
                nodes["missing_go_to_left"],
                nodes["is_leaf"].astype(bool),
                nodes["value"],
                target,
            )
    return trees


# LightGBM objectives whose prediction is the raw score (regression) or its sigmoid or
# softmax (classification); the others (poisson, gamma, tweedie, one-vs-rest) are not.
LIGHTGBM_IDENTITY = {"regression", "regression_l1", "huber", "fair", "quantile", "mape"}


def lightgbm_nodes(root: dict) -> dict[str, np.ndarray]:
    """A LightGBM tree dump (nested dicts) as node arrays, the root first.

    LightGBM compares double inputs with double thresholds (``x <= t`` goes left). A
    missing value follows ``default_left`` when the split tracks NaN; otherwise
    LightGBM reads it as 0.0, which the comparison then sends one way.
    """
    nodes: list[dict] = []
    stack = [root]
    while stack:
        node = stack.pop()
        node["_index"] = len(nodes)
        nodes.append(node)
        stack.extend(node[k] for k in ("right_child", "left_child") if k in node)
    count = len(nodes)
    arrays = {
        "left": np.full(count, -1),
        "right": np.full(count, -1),
        "feature": np.zeros(count, dtype=int),
        "threshold": np.zeros(count),
        "nan_left": np.zeros(count, dtype=bool),
        "is_leaf": np.zeros(count, dtype=bool),
        "value": np.zeros(count),
    }
    for node in nodes:
        i = node["_index"]
        if "leaf_value" in node:
            if "leaf_coeff" in node:
                raise Unsupported("a LightGBM model with linear trees")
            arrays["is_leaf"][i] = True
            arrays["value"][i] = node["leaf_value"]
            continue
        if node["decision_type"] != "<=":
            raise Unsupported("a LightGBM model with categorical splits")
        threshold = float(node["threshold"])
        zero_left = threshold >= 0.0
        missing = node["missing_type"]
        if missing == "NaN":
            nan_left = bool(node["default_left"])
        elif missing == "None" or bool(node["default_left"]) == zero_left:
            nan_left = zero_left
        else:
            raise Unsupported("a LightGBM split that sends zero its own way (zero_as_missing)")
        arrays["left"][i] = node["left_child"]["_index"]
        arrays["right"][i] = node["right_child"]["_index"]
        arrays["feature"][i] = node["split_feature"]
        arrays["threshold"][i] = threshold
        arrays["nan_left"][i] = nan_left
    return arrays


def lightgbm_trees(estimator: Any, classification: bool) -> Trees:
    """A LightGBM model's raw score: the sum of its trees' leaves.

    The first tree holds the starting average; the predictor applies the sigmoid or
    softmax.
    """
    dump = estimator.booster_.dump_model()
    objective, *options = dump["objective"].split()
    settings = dict(option.split(":", 1) for option in options if ":" in option)
    if dump.get("average_output"):
        raise Unsupported("a LightGBM random forest (boosting='rf')")
    scale = 1.0
    if classification and objective == "binary":
        scale = float(settings.get("sigmoid", 1.0))
    elif not (
        (classification and objective == "multiclass")
        or (not classification and objective in LIGHTGBM_IDENTITY)
    ):
        raise Unsupported(f"LightGBM's objective {objective!r}")
    n_targets = int(dump["num_tree_per_iteration"])
    trees = Trees(n_targets, [0.0] * n_targets)
    for number, tree in enumerate(dump["tree_info"]):
        nodes = lightgbm_nodes(tree["tree_structure"])
        trees.add(**{**nodes, "value": nodes["value"] * scale}, target=number % n_targets)
    return trees


# XGBoost objectives: the margin's link for each, and how base_score becomes a margin.
XGBOOST_CLASSIFICATION = {"binary:logistic", "multi:softprob", "multi:softmax"}
XGBOOST_IDENTITY = {
    "reg:squarederror",
    "reg:absoluteerror",
    "reg:pseudohubererror",
    "reg:quantileerror",
}


def xgboost_base(text: str) -> list[float]:
    """XGBoost's base_score as floats ("5E-1" or, from 3.0, "[5E-1,2.5E-1]")."""
    return [float(value) for value in text.strip("[]").split(",")]


def xgboost_trees(estimator: Any, classification: bool) -> Trees:
    """An XGBoost tree model's margin: its base margin plus every tree's leaf.

    XGBoost compares float32 inputs with float32 thresholds, strictly (``x < t`` goes
    left); for float32 values that is ``x <= t'`` with ``t'`` the float32 just below
    ``t``, which the predictor reproduces by casting its inputs to float32.
    """
    model = json.loads(estimator.get_booster().save_raw("json"))["learner"]
    booster = model["gradient_booster"]
    if booster["name"] != "gbtree":
        raise Unsupported(f"XGBoost's booster {booster['name']!r}")
    objective = model["objective"]["name"]
    known = XGBOOST_CLASSIFICATION if classification else XGBOOST_IDENTITY
    if objective not in known:
        raise Unsupported(f"XGBoost's objective {objective!r}")
    n_targets = max(1, int(model["learner_model_param"]["num_class"]))
    base = xgboost_base(model["learner_model_param"]["base_score"])
    # Binary base_score is a probability, its margin the logit; multi-class base scores
    # (one per class from XGBoost 3, centred log-priors) are margins already.
    if objective == "binary:logistic":
        base = [math.log(p / (1 - p)) for p in base]
    base = base * n_targets if len(base) == 1 else base
    trees = Trees(n_targets, base)
    forest = booster["model"]
    for tree, target in zip(forest["trees"], forest["tree_info"], strict=True):
        if any(int(kind) != 0 for kind in tree["split_type"]):
            raise Unsupported("an XGBoost model with categorical splits")
        left = np.asarray(tree["left_children"])
        conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
        is_leaf = left == -1
        below = np.nextafter(conditions, np.float32(-np.inf)).astype(np.float64)
        trees.add(
            left,
            np.asarray(tree["right_children"]),
            np.asarray(tree["split_indices"]),
            below,
            np.asarray(tree["default_left"], dtype=bool),
            is_leaf,
            conditions.astype(np.float64),
            int(target),
        )
    return trees


def graph(trees: Trees, n_features: int) -> bytes:
    """A TreeEnsemble node summing the trees in double precision, plus the base scores."""
    from onnx import TensorProto, helper, numpy_helper

    def tensor(values: list, dtype: Any = np.float64):
        return numpy_helper.from_array(np.asarray(values, dtype=dtype))

    ensemble = helper.make_node(
        "TreeEnsemble",
        ["X"],
        ["sum"],
        domain="ai.onnx.ml",
        n_targets=trees.n_targets,
        aggregate_function=1,  # SUM
        post_transform=0,  # NONE
        tree_roots=trees.roots,
        nodes_featureids=trees.features,
        nodes_splits=tensor(trees.splits),
        nodes_modes=tensor([0] * len(trees.features), np.uint8),  # BRANCH_LEQ
        nodes_missing_value_tracks_true=trees.nan_left,
        nodes_truenodeids=trees.branches["true"],
        nodes_trueleafs=trees.branches["true_leaf"],
        nodes_falsenodeids=trees.branches["false"],
        nodes_falseleafs=trees.branches["false_leaf"],
        leaf_targetids=trees.targets,
        leaf_weights=tensor(trees.weights),
    )
    base = numpy_helper.from_array(np.asarray([trees.base], dtype=np.float64), name="base")
    onnx_graph = helper.make_graph(
        [ensemble, helper.make_node("Add", ["sum", "base"], ["Y"])],
        "model",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, trees.n_targets])],
        initializer=[base],
    )
    opsets = [helper.make_opsetid("", ONNX_OPSET), helper.make_opsetid("ai.onnx.ml", TREE_OPSET)]
    model = helper.make_model(onnx_graph, opset_imports=opsets, producer_name=__name__)
    return model.SerializeToString(deterministic=True)


def tree_graph(estimator: Any, n_features: int, classification: bool) -> tuple[bytes, str] | None:
    """The estimator as a TreeEnsemble graph and its kind.

    None when it is no tree model this module reads (skl2onnx gets it then).
    """
    from sklearn.ensemble import (
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        HistGradientBoostingClassifier,
        HistGradientBoostingRegressor,
        RandomForestClassifier,
        RandomForestRegressor,
    )
    from sklearn.tree import BaseDecisionTree

    forests = (
        RandomForestClassifier,
        RandomForestRegressor,
        ExtraTreesClassifier,
        ExtraTreesRegressor,
        BaseDecisionTree,
    )
    if isinstance(estimator, forests):
        return graph(forest_trees(estimator, classification), n_features), "forest"
    if isinstance(estimator, HistGradientBoostingClassifier | HistGradientBoostingRegressor):
        return graph(boosting_trees(estimator, classification), n_features), "boosting"
    # By module, not isinstance: neither package needs to be installed for the others.
    # The class or one it derives from (the kit's XGBClassifier is XGBoost's).
    families = {cls.__module__.split(".")[0] for cls in type(estimator).__mro__}
    if "lightgbm" in families and hasattr(estimator, "booster_"):
        return graph(lightgbm_trees(estimator, classification), n_features), "lightgbm"
    if "xgboost" in families and hasattr(estimator, "get_booster"):
        return graph(xgboost_trees(estimator, classification), n_features), "xgboost"
    return None
