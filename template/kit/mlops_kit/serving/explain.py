"""Explanations: how much each input column moved one prediction, by occlusion."""

from typing import Any

from mlops_kit.predictor import Predictor


def occlusion(
    model: Predictor, row: dict[str, Any], reference: dict[str, Any], classification: bool
) -> dict[str, Any]:
    """Each input column's contribution to one prediction.

    A column's contribution is the output minus the output with that column set
    to the reference record's value (median or most frequent in training).
    Contributions are one-at-a-time effects; with interactions between columns
    they need not add up to ``output - reference_output``. All variants go to the
    model in one call.
    """
    columns = list(row)
    variants = [{**row, column: reference[column]} for column in columns]
    reference_row = {column: reference[column] for column in columns}
    values, probabilities = model.predict([row, *variants, reference_row])
    if classification:
        # The predicted class's probability, as the service predicts it (argmax).
        first = probabilities[0]
        class_index = max(range(len(first)), key=first.__getitem__)
        label = model.classes[class_index]
        outputs = [float(row_probabilities[class_index]) for row_probabilities in probabilities]
        prediction, explained = label, f"probability of {label!r}"
    else:
        outputs = [float(value) for value in values]
        prediction, explained = outputs[0], "predicted value"
    return {
        "prediction": prediction,
        "explained_output": explained,
        "output": outputs[0],
        "reference_output": outputs[-1],
        "contributions": {
            column: outputs[0] - outputs[1 + index] for index, column in enumerate(columns)
        },
    }
