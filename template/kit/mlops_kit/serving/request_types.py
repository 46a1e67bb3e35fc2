"""Request and answer types, built from the bundle's input schema.

A request the model could not have been trained on is refused with a 4xx that
names the field and the problem: the rules are those ``conf/schema/`` gives the
validation stage, carried in the bundle's metadata.
"""

import contextlib
import math
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    TypeAdapter,
    ValidationError,
    create_model,
)

from mlops_kit.core.params import ColumnSchema

# Extra fields are refused everywhere, and nothing is coerced that the schema did not say.
STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)


def whole_number(value: Any) -> Any:
    """An integral float as an int; a fractional one refused.

    A row of an all-numeric table (``DataFrame.iloc[i]``, a CSV read by pandas)
    comes as floats, so a count like 97 arrives as 97.0: the same number.
    """
    if isinstance(value, float) and math.isfinite(value):
        if not value.is_integer():
            raise ValueError(f"a whole number is expected, got {value}")
        return int(value)
    return value


def flag_as_number(value: Any) -> Any:
    """JSON true/false as 1/0: a 0..1 column is how the schema stores a boolean."""
    return int(value) if isinstance(value, bool) else value


def scalar_as_text(value: Any) -> Any:
    """A number or boolean as pandas writes it as text (``str``), for text columns."""
    return str(value) if isinstance(value, bool | int | float) else value


def accepted_values(annotation: Any, candidates: list) -> list:
    """The candidates a field of type ``annotation`` accepts, each once, in order."""
    adapter = TypeAdapter(annotation, config=STRICT)
    accepted = []
    for value in candidates:
        try:
            adapter.validate_python(value)
        except ValidationError:
            continue
        if not any(type(value) is type(seen) and value == seen for seen in accepted):
            accepted.append(value)
    return accepted


def category_inputs(categories: list, annotation: Any) -> Any:
    """The JSON values a category field accepts, so the API document lists them all.

    Its categories, and the numbers or booleans whose text is one (``scalar_as_text``).
    """
    candidates: list = [*categories, True, False]
    for category in categories:
        for number in (int, float):
            with contextlib.suppress(TypeError, ValueError):
                candidates.append(number(category))
    # Nothing accepted (categories the field can never match): document the categories.
    return Literal[tuple(accepted_values(annotation, candidates) or categories)]


def field_type(rules: ColumnSchema) -> Any:
    """The pydantic type of one input column: categories, bounded numbers, nullability.

    A conversion a field makes (97.0 to 97, true to 1, 1 to "1") is declared as its
    JSON Schema input type, so the API document accepts exactly what the service does.
    """
    if rules.categories is not None:
        categories = Literal[tuple(rules.categories)]
        inputs = category_inputs(
            rules.categories, Annotated[categories, BeforeValidator(scalar_as_text)]
        )
        annotation: Any = Annotated[
            categories, BeforeValidator(scalar_as_text, json_schema_input_type=inputs)
        ]
    elif rules.dtype == "str":
        text_or_scalar = str | bool | int | float
        annotation = Annotated[
            str, BeforeValidator(scalar_as_text, json_schema_input_type=text_or_scalar)
        ]
    else:
        number = int if rules.dtype == "int" else float
        bounds = Field(ge=rules.min, le=rules.max, allow_inf_nan=False)
        annotation = Annotated[number, bounds]
        if rules.dtype == "int":
            # JSON Schema's integer is any number without a fraction: 97.0 included.
            annotation = Annotated[
                annotation, BeforeValidator(whole_number, json_schema_input_type=annotation)
            ]
        if (rules.min, rules.max) == (0, 1):
            flag = Annotated[number, bounds] | bool
            annotation = Annotated[
                annotation, BeforeValidator(flag_as_number, json_schema_input_type=flag)
            ]
    # Nullable columns accept an explicit null, but the field is still required.
    return annotation | None if rules.nullable else annotation


def record_type(input_schema: dict[str, dict]) -> type[BaseModel]:
    """A strict request model with one required field per input column, extras refused.

    Fields are named ``column_0``, ``column_1``...: a column's own name (``Color
    Intensity``, ``_id``, ``model_config``, ``copy``) need not be a Python identifier
    and may clash with pydantic's attributes. Each field's alias is the column's
    name, so requests, error locations and dumps use the names the user knows.
    """
    fields = {
        f"column_{index}": (
            field_type(ColumnSchema.model_validate(rules)),
            Field(alias=column, title=column),
        )
        for index, (column, rules) in enumerate(input_schema.items())
    }
    config = ConfigDict(
        **STRICT,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
    )
    return create_model("Record", __config__=config, **fields)


def batch_type(record: type[BaseModel], max_batch_size: int) -> tuple[Any, type[BaseModel]]:
    """The list-of-records annotation and the ``{"records": [...]}`` request model."""
    records = Annotated[list[record], Field(min_length=1, max_length=max_batch_size)]
    return records, create_model("BatchRequest", __config__=STRICT, records=(records, ...))


# A label is sent back with its own type: 1 stays 1, a text label stays text.
Label = StrictBool | StrictInt | StrictFloat | StrictStr


class Prediction(BaseModel):
    """One prediction, its id in the prediction log and the model that made it."""

    request_id: str
    prediction: Label
    probabilities: dict[str, float] | None = None
    model_name: str
    model_version: str
    model_alias: str


class BatchPredictions(BaseModel):
    """Predictions in request order, their ids in the prediction log and the model."""

    request_ids: list[str]
    predictions: list[Label]
    probabilities: list[dict[str, float]] | None = None
    model_name: str
    model_version: str
    model_alias: str


class Explanation(BaseModel):
    """How much each input column moved one prediction, measured by occlusion."""

    prediction: Label
    explained_output: str
    output: float
    reference_output: float
    contributions: dict[str, float]
    model_name: str
    model_version: str
    model_alias: str


def label_type(classes: list | None) -> Any:
    """The type of a prediction: one of the classes a classifier predicts, else a number."""
    return float if classes is None else Literal[tuple(classes)]


def answer_types(classes: list | None) -> tuple[type[BaseModel], ...]:
    """``Prediction``, ``BatchPredictions`` and ``Explanation`` typed by the bundle's labels.

    So the API document says what ``prediction`` holds ("Adelie", 3, 1.25).
    """
    label = label_type(classes)
    return (
        create_model("Prediction", __base__=Prediction, prediction=(label, ...)),
        create_model("BatchPredictions", __base__=BatchPredictions, predictions=(list[label], ...)),
        create_model("Explanation", __base__=Explanation, prediction=(label, ...)),
    )
