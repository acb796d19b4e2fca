"""`segtrain predict`: index, colour and overlay PNGs of images, or a Cityscapes benchmark submission;
never over a file predict did not write."""

from __future__ import annotations

from pathlib import Path

import click

from segtrain.cli.common import fail_lines, load_predictor, model_root, model_source_options, start_tensorflow


@click.command(epilog="""\b
Examples:
  segtrain predict --checkpoint runs/camvid CamVid/test/0001TP_008550.png --out predictions
  segtrain predict --checkpoint runs/camvid photos/ --out predictions
  segtrain predict --model exported/camvid.tflite photos/ --out predictions_tflite
  segtrain predict --checkpoint runs/cityscapes cityscapes/leftImg8bit/test --cityscapes-submission submission --zip submission.zip
""")
@model_source_options
@click.argument("inputs", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Output folder: outside every input and the model's files.")
@click.option("--cityscapes-submission", "submission", type=click.Path(file_okay=False, path_type=Path), default=None, help="Instead of --out: a Cityscapes benchmark submission folder (label-id PNGs only).")
@click.option("--zip", "zip_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="With --cityscapes-submission: also a zip of its PNGs.")
def predict(checkpoint, model_path, inputs, out_dir, submission, zip_path):  # type: ignore[no-untyped-def]
    """Raw index PNGs ({stem}.png), colour PNGs ({stem}_color.png) and overlays ({stem}_overlay.png).

    \b
    INPUT: image files, or folders whose images (png, jpg, jpeg, bmp, tif, tiff, webp; not hidden
    files, not subfolders) are all predicted. Images are read as training reads them: 16-bit
    samples keep their high byte (value >> 8, as TensorFlow's PNG decoder does), alpha is
    dropped, palette / grey / 1-bit / CMYK images become RGB; 32-bit integer and float images
    have no defined 0..255 range and are refused. Images smaller than the output stride are
    padded and the prediction cropped back: every output has its input's size.
    \b
    Two inputs whose outputs would share a name (a.png and a.jpg, x.png in two folders, a.png
    beside a_color.png) are refused before any work: rename one, or use separate --out folders.
    --out may not be, be inside or contain an input or the model's files. It may hold other
    files: only files this command wrote there before (listed in --out/.segtrain-predict.json
    with their sha256, and unchanged since) are replaced; any other file in the way is refused.
    A file that cannot be read does not stop the others: each is reported at the end, exit 1.
    So is anything named like an image that is not a regular file (a FIFO, a folder x.png):
    it is never opened. EXIF orientation is not applied (fit and eval do not apply it either):
    predictions have the image's stored size.
    \b
    --cityscapes-submission DIR (instead of --out): for a model of Cityscapes' 19 train classes,
    one PNG of Cityscapes label ids per image, named <city>_<seq>_<frame>_leftImg8bit.png as the
    benchmark server and cityscapesScripts expect, and nothing else in DIR; INPUT may be the
    leftImg8bit/<split>/ tree. --zip FILE also packs them for the server (only when every image
    was predicted).
    """
    root = model_root(checkpoint, model_path)
    if (out_dir is None) == (submission is None):
        raise click.UsageError("give --out (pictures) or --cityscapes-submission (a benchmark submission), one of them")
    if zip_path is not None and submission is None:
        raise click.UsageError("--zip needs --cityscapes-submission")
    if submission is not None:
        _submission(checkpoint, model_path, root, inputs, submission, zip_path)
    else:
        _pictures(checkpoint, model_path, root, inputs, out_dir)


def _pictures(checkpoint: Path | None, model_path: Path | None, root: Path, inputs: tuple[Path, ...], out_dir: Path) -> None:
    """Index, colour and overlay PNGs through predict's ledger."""
    from segprep.paths import check_output_location
    from segtrain.outputs import PredictLedger, collect_images, name_clashes, output_names

    files, irregular = collect_images(inputs)  # FIFOs and folders named like images: reported, never opened
    check_output_location(out_dir, [*inputs, root], "--out")
    if not files:
        fail_lines(irregular, f"{len(irregular)} input(s) are not regular image files; nothing was predicted", limit=1000)
    clashes = name_clashes(files)
    if clashes:
        fail_lines(clashes, f"{len(clashes)} input(s) would overwrite another input's predictions in {out_dir}; nothing was predicted")
    planned = [name for path in files for name in output_names(path)]
    ledger = PredictLedger(out_dir)
    foreign = ledger.foreign(planned)
    if foreign:
        fail_lines(foreign, f"{len(foreign)} file(s) in {out_dir} are in the way and not segtrain predict's own; nothing was predicted")

    start_tensorflow()
    from segtrain.predict import write_predictions

    predict_image, labels = load_predictor(checkpoint, model_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger.begin(planned)
    written: dict[str, str] = {}
    try:
        problems = irregular + write_predictions(predict_image, labels, files, out_dir, written)
    finally:
        ledger.finish(written)
    total = len(files) + len(irregular)
    done = total - len(problems)
    if problems:
        fail_lines(problems, f"{len(problems)} of {total} image(s) could not be predicted; the other {done} are in {out_dir}", limit=1000)
    click.echo(f"{done} image(s) predicted into {out_dir}")


def _submission(checkpoint: Path | None, model_path: Path | None, root: Path, inputs: tuple[Path, ...], out_dir: Path, zip_path: Path | None) -> None:
    """Cityscapes label-id PNGs (segtrain.cityscapes_submission), refused before the model loads when they cannot be."""
    from segtrain.cityscapes_submission import check_cityscapes_classes, check_submission_target, cityscapes_images, write_submission

    images, problems = cityscapes_images(inputs)
    if problems:
        fail_lines(problems, f"{len(problems)} input(s) cannot be part of a Cityscapes submission; nothing was predicted", limit=1000)
    sources = [*inputs, root]
    check_submission_target(out_dir, sources, zip_path)
    start_tensorflow()
    probabilities, labels = load_predictor(checkpoint, model_path)
    check_cityscapes_classes(labels.class_names, labels.num_classes)
    result = write_submission(lambda rgb: probabilities(rgb).argmax(axis=-1).astype("uint8"), images, out_dir, zip_path, inputs=sources)
    if result.problems:
        fail_lines(result.problems, f"{len(result.problems)} of {len(images)} image(s) could not be predicted; the submission in {out_dir} is incomplete (no zip written)", limit=1000)
    packed = f", packed in {result.zip_path}" if result.zip_path else ""
    click.echo(f"{len(result.written)} label-id PNG(s) in {out_dir}{packed}")
