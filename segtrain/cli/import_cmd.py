"""`segtrain import-deeplab CKPT --out LOGDIR`: a DeepLab TF1 checkpoint becomes a segtrain logdir."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import registry_option
from segtrain.cli.common import registry_entry, start_tensorflow


@click.command("import-deeplab", epilog="""\b
Examples:
  segtrain import-deeplab deeplabv3_mnv2_cityscapes_train/model.ckpt --out runs/cityscapes_mnv2 --output-stride 8 --dataset cityscapes
  segtrain import-deeplab deeplabv3_pascal_train_aug --out runs/pascal_xception65 --dataset pascal_voc_seg
  segtrain fit --dataset camvid --logdir runs/camvid --init-checkpoint runs/cityscapes_mnv2 --init-mode all-but-logits --no-aspp --no-decoder
""")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="The new logdir: a new or empty folder, outside the checkpoint's folder.")
@click.option("--output-stride", type=click.Choice(["8", "16"]), default="16", show_default=True, help="What to run the network at (the weights do not say; DeepLab evaluates the same checkpoint at 8 or 16).")
@click.option("--dataset", default=None, help="Registry name whose class names, colormap and ignore label the logdir takes (its class count must equal the checkpoint's).")
@registry_option
def import_deeplab_cmd(checkpoint, out_dir, output_stride, dataset, registry):  # type: ignore[no-untyped-def]
    """A DeepLab TF1 checkpoint (model zoo or one's own) -> a segtrain logdir.

    \b
    CHECKPOINT: a prefix (model.ckpt, model.ckpt-30000), one of its files, or the folder holding it.
    The network is read from the variables: the backbone (MobilenetV2 and its depth multiplier,
    xception_41/65/71), ASPP's atrous branches, the decoder, the class count. Every model variable is
    copied; optimizer slots, EMA shadows and global_step are counted and left out. The logdir works
    with eval, predict, export and fit --init-checkpoint like one written by fit; its logits equal
    DeepLab's for the same weights. Without --dataset the classes are class_0, class_1, ... with
    PASCAL's colormap and ignore label 255.
    """
    from segprep.paths import check_output_location

    source = checkpoint if checkpoint.is_dir() else checkpoint.parent
    check_output_location(out_dir, [source], "--out")
    start_tensorflow()
    from segtrain.import_deeplab import check_import_target, import_to_logdir
    from segtrain.labels import Labels

    check_import_target(out_dir)
    labels = None if dataset is None else Labels.from_entry(registry_entry(dataset, registry), use_class_weights=False)
    click.echo(import_to_logdir(checkpoint, out_dir, int(output_stride), labels))
