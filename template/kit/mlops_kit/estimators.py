"""Estimators the kit adapts so that a ``conf/model/`` file can name them as they are.

XGBoost's scikit-learn classifier learns only from the labels 0 to n-1 and refuses
any other ("Invalid classes inferred from unique values of `y`"), where every other
classifier takes the table's own labels (``Adelie``, ``churned``). ``XGBClassifier``
here encodes them for XGBoost and decodes its answers, so the pipeline predicts the
table's labels like any other; the trees are XGBoost's own, and ``trees.py`` reads
them unchanged. Import this module only through a config's ``_target_``: it needs
XGBoost installed.
"""

from typing import Any

import numpy as np
import xgboost


class XGBClassifier(xgboost.XGBClassifier):
    """XGBoost's classifier for labels of any kind: strings, booleans, any integers."""

    def fit(self, X: Any, y: Any, **kwargs: Any) -> "XGBClassifier":
        """Fit on ``y`` encoded as 0..n-1; ``classes_`` keeps the labels themselves."""
        labels, codes = np.unique(np.asarray(y), return_inverse=True)
        # XGBoost's fit checks the codes against ``classes_``, which must then be its own.
        self.__dict__.pop("labels_", None)
        super().fit(X, codes, **kwargs)
        self.labels_ = labels
        return self

    @property
    def classes_(self) -> np.ndarray:
        """The labels of the training target, in sorted order (XGBoost's codes before fit)."""
        labels = self.__dict__.get("labels_")
        return labels if labels is not None else super().classes_

    def predict(self, X: Any, **kwargs: Any) -> np.ndarray:
        """The most probable label of each row (margins unchanged with ``output_margin``)."""
        codes = super().predict(X, **kwargs)
        if kwargs.get("output_margin"):
            return codes
        return self.labels_[np.asarray(codes, dtype=np.intp)]
