"""`segprep register NAME`: add or update a custom dataset in the registry."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import fail, load_registry_or_exit, registry_option


@click.command(
    "register",
    epilog="""\b
Examples:
  segprep register roads --class-names background,road,lane --colormap pascal
  segprep register mine --class-names-file class_names.txt --ignore-label 255 --colormap colors.txt
  segprep register mine --data-dir tfrecords/mine        # update one field, keep the rest
  segprep register mine --class-weights none             # clear the class weights
\b
A colormap file has one "r g b" (or "r,g,b") line per class, in index order.
""",
)
@click.argument("name")
@click.option("--class-names", default=None, help="Comma-separated class names in index order.")
@click.option("--class-names-file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None, help="Class names, one a line.")
@click.option("--num-classes", type=click.IntRange(1, 256), default=None, help="Checked against the class names (optional).")
@click.option("--ignore-label", type=click.IntRange(0, 255), default=None, help="Label value excluded from loss and metrics [new datasets: 255].")
@click.option("--colormap", default=None, help="A built-in colormap name or a file of r g b lines [new datasets: pascal].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Where the dataset's TFRecords are.")
@click.option("--class-weights", "weights_text", default=None, help="Comma-separated weights, one per class, or 'none' to clear.")
@registry_option
def register(
    name: str,
    class_names: str | None,
    class_names_file: Path | None,
    num_classes: int | None,
    ignore_label: int | None,
    colormap: str | None,
    data_dir: Path | None,
    weights_text: str | None,
    registry: Path | None,
) -> None:
    """Add a dataset to the registry, or change the given fields of one (splits are kept)."""
    from segprep.registry import RegistryError, register_dataset, validate_entry

    if class_names and class_names_file:
        raise click.UsageError("give --class-names or --class-names-file, not both")
    reg = load_registry_or_exit(registry)
    names = _class_names(class_names, class_names_file)
    existing = reg.datasets.get(name)
    if existing is None and names is None:
        raise click.UsageError(f"{name!r} is new: give its classes with --class-names or --class-names-file")
    raw = existing.to_dict() if existing is not None else {"ignore_label": 255, "colormap": "pascal", "splits": {}, "class_weights": None}
    if names is not None:
        if existing is not None and raw.get("class_weights") is not None and len(names) != len(raw["class_weights"]):
            click.echo(f"warning: {name}: the class count changed, its class_weights are cleared", err=True)
            raw["class_weights"] = None
        raw["class_names"], raw["num_classes"] = names, len(names)
    if num_classes is not None and num_classes != raw["num_classes"]:
        raise click.UsageError(f"--num-classes {num_classes} but {len(raw['class_names'])} class names were given")
    if ignore_label is not None:
        raw["ignore_label"] = ignore_label
    if colormap is not None:
        raw["colormap"] = _colormap(colormap, raw["num_classes"])
    if data_dir is not None:
        raw["data_dir"] = str(data_dir.resolve())
    if weights_text is not None:
        raw["class_weights"] = parse_class_weights(weights_text, f"{reg.path}: dataset {name!r}")
    try:
        entry = validate_entry(name, raw, reg.path)
        register_dataset(reg.path, entry)
    except RegistryError as exc:
        fail([], str(exc))
    action = "updated" if existing is not None else "registered"
    colormap_text = entry.colormap if isinstance(entry.colormap, str) else f"{len(entry.colormap)} colours"
    click.echo(f"{action} {name} in {reg.path}: {entry.num_classes} classes, ignore {entry.ignore_label}, colormap {colormap_text}")


def _class_names(text: str | None, path: Path | None) -> list[str] | None:
    if path is not None:
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise click.UsageError(f"{path}: not UTF-8 text") from None
        names = [line.strip() for line in lines if line.strip()]
    elif text is not None:
        names = [n.strip() for n in text.split(",")]
    else:
        return None
    if not names or any(not n for n in names):
        raise click.UsageError("class names must be non-empty")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise click.UsageError(f"duplicate class name(s): {', '.join(duplicates)}")
    return names


def _colormap(spec: str, num_classes: int) -> str | list[list[int]]:
    """A built-in name stays a name; a file becomes a list of [r, g, b] (errors name the file)."""
    from segprep.colormaps import ColormapFileError, colormap_option

    try:
        return colormap_option(spec, num_classes)
    except ColormapFileError as exc:
        raise click.UsageError(str(exc)) from None


def parse_class_weights(text: str, where: str) -> list[float] | None:
    """--class-weights: None for 'none', else finite weights >= 0, not all 0 (training would get NaN or 0/0 losses).

    where names the registry file and dataset, for the message.
    """
    from segprep.registry import class_weights_problem

    if text.strip().lower() in ("none", "null", ""):
        return None
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        raise click.UsageError(f"--class-weights: expected comma-separated numbers, got {text!r}") from None
    problem = class_weights_problem(weights)
    if problem:
        raise click.UsageError(f"--class-weights: {where}: class_weights {problem}")
    return [w + 0.0 for w in weights]
