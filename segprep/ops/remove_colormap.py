"""Colour-coded or palette label PNGs -> raw index PNGs (DeepLab's remove_gt_colormap, generalised).

Palette PNGs keep their palette indices (so VOC's 255 border stays 255). RGB labels are mapped
through a colormap; colours not in it are an error listing them, or the ignore label on request.

Outputs never destroy anything: OUT may not be, lie inside or contain SRC; files are written as
temporaries and renamed only when all were written; and a file already in OUT is replaced only
when this tool recorded it in the folder's sidecar (see segprep.safewrite.OutputLedger).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from segprep.colormaps import colors_to_index
from segprep.formats.png import encode_index_png
from segprep.ops.labels import LabelError, decode_label, format_colors
from segprep.paths import check_output_location
from segprep.safewrite import ANY_TEMP_PATTERN, OutputLedger, make_folder, remove_stale_temporaries

SIDECAR = ".segprep-remove-colormap.json"
TOOL = "segprep remove-colormap"


@dataclass(frozen=True)
class ColormapRemoval:
    """How colours become indices: the colormap in index order, extra colours (e.g. void -> 255), and
    whether unknown colours are an error or the ignore label."""

    colormap: tuple[tuple[int, int, int], ...] | None
    extra: tuple[tuple[tuple[int, int, int], int], ...] = ()
    unknown_to_ignore: bool = False
    ignore_label: int = 255


def remove_colormap(data: bytes, how: ColormapRemoval) -> tuple[bytes, str]:
    """The index PNG for one label file and what was done ('palette', 'rgb' or 'unchanged')."""
    array, mode, _ = decode_label(data)
    if mode == "L":
        return data, "unchanged"
    if mode == "P":
        return encode_index_png(np.ascontiguousarray(array, dtype=np.uint8)), "palette"
    if mode in ("RGB", "RGBA"):
        if how.colormap is None:
            raise LabelError(f"{mode} label needs --colormap NAME to map colours to classes")
        rgb = np.ascontiguousarray(array[..., :3])
        index, unknown = colors_to_index(rgb, np.array(how.colormap, dtype=np.uint8), dict(how.extra))
        if unknown and not how.unknown_to_ignore:
            raise LabelError(f"colours not in the colormap: {format_colors(unknown)} (use --unknown ignore to map them to {how.ignore_label})")
        if unknown and how.ignore_label != 255:
            index = np.where(index == 255, np.uint8(how.ignore_label), index)  # colors_to_index marks unknown as 255
        return encode_index_png(index.astype(np.uint8)), "rgb"
    raise LabelError(f"label PNG in mode {mode}; expected palette or RGB colours")


def convert_file(job: tuple[str, ColormapRemoval]) -> tuple[str, bytes | None, str]:
    """(source path, PNG bytes or None, what was done or the error reason) for a worker pool."""
    path, how = job
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        png, what = remove_colormap(data, how)
        return path, png, what
    except LabelError as exc:
        return path, None, str(exc)
    except OSError as exc:
        return path, None, f"cannot read ({exc.strerror})"


def prepare_output(src: Path, out: Path, targets: list[Path]) -> None:
    """Before any work: refuse an OUT that is, is inside or contains SRC, and remove the
    temporaries a killed run left for these targets (or for the sidecar)."""
    check_output_location(out, [src], "OUT")
    names = {t.name for t in targets} | {SIDECAR}
    for folder in {t.parent for t in targets}:
        remove_stale_temporaries(folder, ANY_TEMP_PATTERN, accept=lambda _path, match: match["name"] in names)


def write_outputs(converted: Mapping[Path, bytes]) -> None:
    """Write every converted label at once, replacing only files this tool wrote before.

    Raises OutputLocationError (nothing written) when a target is a file of someone else's.
    """
    by_folder: dict[Path, dict[Path, bytes]] = {}
    for target, data in converted.items():
        by_folder.setdefault(target.parent, {})[target] = data
    owners = {folder: OutputLedger(folder, SIDECAR, TOOL) for folder in by_folder}
    for folder, files in by_folder.items():
        owners[folder].refuse_foreign(files, "move it away or choose another OUT")
    for folder, files in by_folder.items():
        make_folder(folder)
        owners[folder].replace(files)
