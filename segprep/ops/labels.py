"""Turn an encoded label file into the single-channel index PNG DeepLab expects, or refuse it.

A label that already is a single-channel 8-bit PNG whose values are all classes or the ignore
label is kept byte for byte. Anything else is converted only in the ways the dataset allows
(palette -> index, a documented value remap, colour -> index through a colormap) and is
otherwise refused with a reason that names the offending values, because a wrong class id in a
label silently poisons training.
"""

from __future__ import annotations

import io
from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image

from segprep.colormaps import colors_to_index
from segprep.errors import SegprepError
from segprep.formats.images import ImageFormatError, read_image_info, sniff_format
from segprep.formats.payload import check_png_image_data, strict_pillow
from segprep.formats.png import encode_index_png


class LabelError(SegprepError, ValueError):
    """The label cannot be stored as a valid index PNG; the message is a one-line reason."""


@dataclass(frozen=True)
class LabelPolicy:
    """What a dataset's labels may contain and which conversions are allowed.

    remap: documented value changes applied before validation, e.g. CamVid's void 11 -> 255.
    colormap: for colour-coded (RGB) labels, the class colours in index order; None refuses RGB.
    extra_colors: more ((r, g, b), index) pairs for RGB labels, e.g. a void colour -> ignore.
    known_values: the only values the label files hold (a dataset's label ids, e.g. ApolloScape's),
    checked before the remap, so that a value no table names is refused as itself, never remapped
    or taken for a class; None: any value, checked after the remap against the classes.
    """

    num_classes: int
    ignore_label: int = 255
    remap: tuple[tuple[int, int], ...] = ()
    accept_palette: bool = True
    colormap: tuple[tuple[int, int, int], ...] | None = None
    extra_colors: tuple[tuple[tuple[int, int, int], int], ...] = ()
    known_values: tuple[int, ...] | None = None

    def manifest_entry(self) -> dict[str, object]:
        """The policy as the manifest (and the fingerprint) records it; known_values only where set,
        so that the fingerprints of datasets without a label table stay what they were."""
        entry = asdict(self)
        if self.known_values is None:
            del entry["known_values"]
        return entry

    def lookup_table(self) -> np.ndarray | None:
        """The remap as a 256-entry uint8 table, or None when there is nothing to remap."""
        if not self.remap:
            return None
        table = np.arange(256, dtype=np.uint8)
        for source, target in self.remap:
            table[source] = target
        return table

    def valid_values_text(self) -> str:
        return f"[0, {self.num_classes}) ∪ {{{self.ignore_label}}}"


@dataclass
class PreparedLabel:
    """A label ready to store: its PNG bytes, its pixel histogram and what was done to it."""

    png: bytes
    histogram: np.ndarray  # int64 counts of each value 0..255
    width: int
    height: int
    conversion: str | None = None  # None when the source bytes are stored unchanged
    notes: list[str] = field(default_factory=list)


def out_of_range_values(histogram: np.ndarray, policy: LabelPolicy) -> dict[int, int]:
    """{value: pixel count} for every value that is neither a class nor the ignore label."""
    present = np.flatnonzero(histogram)
    return {int(v): int(histogram[v]) for v in present if v >= policy.num_classes and v != policy.ignore_label}


def format_values(values: dict[int, int], limit: int = 12) -> str:
    items = sorted(values.items())
    text = ", ".join(f"{v} ({n} px)" for v, n in items[:limit])
    if len(items) > limit:
        text += f", … {len(items) - limit} more"
    return text


def format_colors(unknown: dict[tuple[int, int, int], int], limit: int = 8) -> str:
    items = sorted(unknown.items(), key=lambda item: -item[1])
    text = ", ".join(f"rgb{c} ({n} px)" for c, n in items[:limit])
    if len(items) > limit:
        text += f", … {len(items) - limit} more"
    return text


def decode_label(data: bytes) -> tuple[np.ndarray, str, np.ndarray | None]:
    """Decode label bytes to (array, PIL mode, 256-bin histogram for L/P labels, else None).

    Raises LabelError with a one-line reason for what cannot be a label: not a PNG, a bad chunk
    CRC (every chunk is checked, IDAT included), damaged or short image data, or pixels that do
    not decode. The histogram comes from PIL's C histogram, which is ~4x cheaper than
    np.bincount here.
    """
    kind = sniff_format(data)
    if kind != "png":
        raise LabelError("label is not a PNG" + (" (JPEG is lossy and corrupts class ids)" if kind == "jpeg" else ""))
    try:
        # A valid index PNG is stored byte for byte, and Pillow checks no IDAT CRC and pads a zlib
        # stream that ends rows early with zeros (class 0!) where libpng, and so TensorFlow, fails:
        # walk every chunk with its CRC, then inflate the image data strictly (~0.2 ms a CamVid label).
        check_png_image_data(data, read_image_info(data))
    except ImageFormatError as exc:
        raise LabelError(f"cannot decode label PNG: {exc}") from None
    try:
        with strict_pillow(), Image.open(io.BytesIO(data)) as image:
            image.load()
            mode = image.mode
            array = np.asarray(image)
            histogram = np.array(image.histogram(), dtype=np.int64) if mode in ("L", "P") else None
    except Exception as exc:  # PIL raises many types for damaged files
        raise LabelError(f"cannot decode label PNG ({exc})") from None
    return array, mode, histogram


def prepare_label(data: bytes, policy: LabelPolicy) -> PreparedLabel:
    """Validate every pixel of an encoded label and return the bytes to store (see module docstring)."""
    array, mode, histogram = decode_label(data)
    conversion: str | None = None
    if mode == "L":
        info = read_image_info(data)
        if info.bit_depth != 8:
            # 1-, 2- and 4-bit grey: decoders scale the samples to 8 bits (4-bit 3 reads as 51), and the
            # contract stores 8-bit PNGs only, so the values every decoder reads are written as 8-bit.
            conversion = f"{info.bit_depth}-bit grey→8-bit"
    elif mode == "P":
        if not policy.accept_palette:
            raise LabelError("palette PNG label; expected a single-channel index PNG")
        conversion = "palette→index"
    elif mode in ("RGB", "RGBA"):
        if policy.colormap is None:
            raise LabelError(
                f"{mode} label (colour-coded?); expected a single-channel index PNG: "
                "convert it with `segprep remove-colormap --colormap NAME`"
            )
        if mode == "RGBA":
            if (array[..., 3] != 255).any():
                raise LabelError("RGBA label with transparent pixels; expected an index PNG")
            array = array[..., :3]
        array, unknown = colors_to_index(np.ascontiguousarray(array), np.array(policy.colormap, dtype=np.uint8), dict(policy.extra_colors))
        if unknown:
            raise LabelError(f"colours not in the colormap: {format_colors(unknown)}")
        histogram = np.bincount(array.ravel(), minlength=256).astype(np.int64)
        conversion = "colour→index"
    elif mode in ("I;16", "I;16B", "I", "I;16L"):
        raise LabelError("16-bit label PNG; expected 8-bit class indices")
    else:
        raise LabelError(f"label PNG in mode {mode}; expected a single-channel 8-bit index PNG")
    height, width = array.shape[:2]
    assert histogram is not None
    if policy.known_values is not None:
        unknown = {int(v): int(histogram[v]) for v in np.flatnonzero(histogram) if int(v) not in policy.known_values}
        if unknown:
            raise LabelError(f"label values that are no id of the dataset's label table: {format_values(unknown)}")
    table = None
    if policy.remap and histogram[[s for s, _ in policy.remap]].any():
        table = policy.lookup_table()
        remapped = np.zeros(256, dtype=np.int64)
        np.add.at(remapped, table, histogram)  # remap the 256 counts, not the pixels
        histogram = remapped
        conversion = "remap " + ", ".join(f"{s}→{t}" for s, t in policy.remap) if conversion is None else conversion + " + remap"
    bad = out_of_range_values(histogram, policy)
    if bad:
        raise LabelError(f"label values outside {policy.valid_values_text()}: {format_values(bad)}")
    if conversion is None:
        return PreparedLabel(data, histogram, width, height)
    # The remap (if any) is applied while the PNG rows are laid out.
    return PreparedLabel(encode_index_png(np.ascontiguousarray(array, dtype=np.uint8), table), histogram, width, height, conversion)
