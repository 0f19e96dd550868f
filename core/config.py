"""Dataclass configs on the command line: one option per field, type-checked by argparse.

Tuple fields take comma-separated lists (`--depths 5,20,40`); unknown options are rejected
by argparse itself. Every parser here is a named function that raises `argparse.ArgumentTypeError`
with its own message, so a bad value reads "argument --depths: invalid list of whole numbers: '2.5';
separate them with commas, such as 5,20,40" rather than argparse's "invalid <lambda> value: '2.5'".

An experiment's spec is a dataclass of such configs (and plain fields such as `dataset`); its options
are the fields of its configs, flattened (`spec_defaults`, `spec_from_args`).
"""

import argparse
import dataclasses
import typing


def whole_number(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid whole number value: {text!r}") from None


def number(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number value: {text!r}") from None


def at_least(minimum: int):
    """A parser of whole numbers >= `minimum`, for counts such as `--every` (1) or `--max-frames` (0)."""

    def whole_number_at_least(text: str) -> int:
        value = whole_number(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return whole_number_at_least


# Per item type of a tuple field: its parser, and what the message calls a list of such items.
_ITEMS = {int: (whole_number, "whole numbers", "5,20,40"), float: (number, "numbers", "0.5,1,2"),
          str: (str.strip, "names", "relu,tanh")}


def comma_list(item_type):
    """A parser of comma-separated lists of `item_type` (int, float or str) into a tuple; empty items are dropped."""
    parse_item, plural, example = _ITEMS[item_type]

    def comma_separated_list(text: str) -> tuple:
        try:
            return tuple(parse_item(item) for item in text.split(",") if item.strip())
        except argparse.ArgumentTypeError:
            raise argparse.ArgumentTypeError(
                f"invalid list of {plural}: {text!r}; separate them with commas, such as {example}") from None

    return comma_separated_list


def _parser_for(field_type):
    if typing.get_origin(field_type) is tuple:
        return comma_list(typing.get_args(field_type)[0])
    return {bool: _parse_bool, int: whole_number, float: number}.get(field_type, field_type)


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


def spec_defaults(spec) -> dict:
    """The option values of `spec`: each config field's fields, flattened, and each plain field as it is; for
    `parser.set_defaults`, so that parsing without options gives `spec` back and `--help` shows its values."""
    values = {}
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        values.update(dataclasses.asdict(value) if dataclasses.is_dataclass(value) else {field.name: value})
    return values


def spec_from_args(spec_class, args: argparse.Namespace):
    """The `spec_class` that parsed options describe: the inverse of `spec_defaults`."""
    hints = typing.get_type_hints(spec_class)
    return spec_class(**{
        field.name: config_from_args(hints[field.name], args) if dataclasses.is_dataclass(hints[field.name])
        else getattr(args, field.name) for field in dataclasses.fields(spec_class)})
