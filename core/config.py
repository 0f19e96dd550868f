"""Dataclass configs on the command line: one option per field, type-checked by argparse.

Tuple fields take comma-separated lists (`--depths 5,20,40`); unknown options are rejected
by argparse itself.
"""

import argparse
import dataclasses
import typing


def _parser_for(field_type):
    origin = typing.get_origin(field_type)
    if origin is tuple:
        item_type = typing.get_args(field_type)[0]
        return lambda text: tuple(item_type(item) for item in text.split(",") if item.strip())
    if field_type is bool:
        return _parse_bool
    return field_type


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_arguments(parser: argparse.ArgumentParser, config_class) -> None:
    """Add `--field-name` for every field of `config_class`, with its default in the help."""
    hints = typing.get_type_hints(config_class)
    for field in dataclasses.fields(config_class):
        default = field.default if field.default is not dataclasses.MISSING else field.default_factory()
        parser.add_argument(
            "--" + field.name.replace("_", "-"),
            dest=field.name,
            type=_parser_for(hints[field.name]),
            default=default,
            help=f"{field.metadata.get('help', '')} (default: %(default)s)",
        )


def config_from_args(config_class, args: argparse.Namespace):
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(config_class)}
    return config_class(**values)
