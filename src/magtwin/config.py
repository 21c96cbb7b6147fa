"""Load and validate the workflow configuration against its JSON schema.

The schema (``workflow/schemas/config.schema.yaml``) carries the defaults; validation fills
them in, so every stage sees every parameter. Errors are one line naming the key path, e.g.
``config/config.yaml: synth.n_grains: 'many' is not of type 'integer'``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping

import jsonschema
import yaml

from magtwin.errors import ConfigError


def _extend_with_default(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for prop, subschema in properties.items():
                if isinstance(subschema, dict) and "default" in subschema:
                    instance.setdefault(prop, _copy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


def _copy(value):
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value


_DefaultFillingValidator = _extend_with_default(jsonschema.Draft202012Validator)


def load_yaml(path: str | os.PathLike) -> Any:
    """Read a YAML file, turning syntax errors into a one-line :class:`ConfigError`."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError("file does not exist", p)
    try:
        with open(p) as fh:
            return yaml.safe_load(fh)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise ConfigError(f"{where}invalid YAML ({getattr(exc, 'problem', exc)})", p) from None


def _key_path(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    if error.validator == "additionalProperties":
        # The offending key is in the message, not in the path.
        extra = [k for k in error.instance if k not in error.schema.get("properties", {})]
        pat = error.schema.get("patternProperties")
        if pat:
            import re
            extra = [k for k in extra if not any(re.search(rx, k) for rx in pat)]
        return ".".join(parts + [extra[0] if extra else "?"]) + " (unknown key)"
    return ".".join(parts) or "(top level)"


def validate_config(config: dict, schema: Mapping | str | os.PathLike, source: str = "config") -> dict:
    """Validate ``config`` in place against ``schema`` (a mapping or a YAML file), filling
    defaults; return it.

    Raises
    ------
    ConfigError
        For the first (most relevant) violation, naming the key path.
    """
    if not isinstance(schema, Mapping):
        schema = load_yaml(schema)
    if config is None:
        config = {}
    validator = _DefaultFillingValidator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), e.path))
    if errors:
        err = jsonschema.exceptions.best_match(errors)
        key = _key_path(err)
        msg = err.message if err.validator != "additionalProperties" else "not allowed here (typo?)"
        raise ConfigError(f"{key}: {msg}", source)
    return config


def check_files_exist(config: dict, source: str = "config", base: str | os.PathLike = ".") -> None:
    """Check every sample's input files exist (stack, measured curve), naming the key."""
    for name, sample in (config.get("samples") or {}).items():
        for key in ("stack", "measured_curve", "labels", "mesh"):
            value = sample.get(key)
            if value and not (Path(base) / value).exists():
                raise ConfigError(f"samples.{name}.{key}: file does not exist: {value}", source)
