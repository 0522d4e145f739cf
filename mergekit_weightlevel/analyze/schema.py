"""The JSON Schema of the analyze report, and a validator that needs no extra package.

``validate_report`` uses ``jsonschema`` when it is installed. Otherwise it checks the
subset of JSON Schema that ``schema.json`` is written in (type, const, enum, required,
properties, additionalProperties, items, minItems, minimum, maximum, local ``$ref``).
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

from mergekit_weightlevel.errors import WeightLevelInputError

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "null": (type(None),),
}


@cache
def report_schema() -> dict[str, Any]:
    """The shipped JSON Schema (``mergekit_weightlevel/analyze/schema.json``)."""
    return json.loads(
        files("mergekit_weightlevel.analyze").joinpath("schema.json").read_text("utf-8")
    )


def _is_type(value: Any, name: str) -> bool:
    if isinstance(value, bool) and name in ("integer", "number"):
        return False  # JSON booleans are not numbers
    return isinstance(value, _JSON_TYPES[name])


def _resolve(schema: dict[str, Any], root: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        path = schema["$ref"].removeprefix("#/").split("/")
        schema = root
        for part in path:
            schema = schema[part]
    return schema


def schema_errors(
    value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$"
) -> list[str]:
    """Every violation of ``schema`` by ``value`` (the subset above), as 'path: problem'."""
    schema = _resolve(schema, root)
    errors: list[str] = []
    if "const" in schema and value != schema["const"]:
        errors.append(f"{where}: {value!r} is not {schema['const']!r}")
    if "enum" in schema and value not in schema["enum"]:
        errors.append(f"{where}: {value!r} is not one of {schema['enum']}")
    if "type" in schema:
        allowed = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        if not any(_is_type(value, name) for name in allowed):
            return [*errors, f"{where}: {type(value).__name__} is not {'/'.join(allowed)}"]
    if _is_type(value, "number"):
        if "minimum" in schema and value < schema["minimum"]:
            errors.append(f"{where}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errors.append(f"{where}: {value} > maximum {schema['maximum']}")
    if isinstance(value, dict):
        errors += [
            f"{where}: missing {key!r}" for key in schema.get("required", []) if key not in value
        ]
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                errors += schema_errors(item, properties[key], root, f"{where}.{key}")
            elif extra is False:
                errors.append(f"{where}: unexpected {key!r}")
            elif isinstance(extra, dict):
                errors += schema_errors(item, extra, root, f"{where}.{key}")
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            errors.append(f"{where}: fewer than {schema['minItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                errors += schema_errors(item, schema["items"], root, f"{where}[{index}]")
    return errors


def validate_report(report: dict[str, Any]) -> None:
    """Raise ValueError listing what in ``report`` (a parsed JSON report) breaks the schema."""
    schema = report_schema()
    try:
        import jsonschema
    except ImportError:
        errors = schema_errors(report, schema, schema)
    else:
        validator = jsonschema.Draft202012Validator(schema)
        errors = [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(report)]
    if errors:
        shown = "\n  ".join(errors[:20])
        raise WeightLevelInputError(f"analyze report does not match its schema:\n  {shown}")
