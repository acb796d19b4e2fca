"""segprep: prepare semantic-segmentation datasets as DeepLab-compatible sharded TFRecords."""

from __future__ import annotations

import click

from segprep.cli.guarded import GuardedGroup
from segprep.cli.colormap_cmd import remove_colormap
from segprep.cli.convert_cmd import convert
from segprep.cli.inspect_cmd import inspect_cmd
from segprep.cli.labelme_cmd import labelme
from segprep.cli.lists_cmd import lists
from segprep.cli.register_cmd import register
from segprep.cli.tfrecord_cmd import tfrecord
from segprep.cli.trainids_cmd import trainids
from segprep.cli.verify_cmd import verify


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="segprep", message="%(prog)s %(version)s")
def main() -> None:
    """Prepare segmentation datasets for DeepLab-style training.

    \b
    Converts PASCAL VOC, Cityscapes, CamVid, KITTI road, ADE20K, labelme annotations and
    folders of image/label pairs into sharded TFRecords, validates every label pixel on the
    way, and records split sizes, class counts, ignore labels and colormaps in the
    registry (built-ins ship with segprep; yours: --registry, $SEGPREP_REGISTRY, else
    ~/.config/segprep/registry.yaml).

    \b
    Example:
      segprep convert camvid --root CamVid --out tfrecords/camvid
      segprep verify tfrecords/camvid
    """


main.add_command(convert)
main.add_command(labelme)
main.add_command(trainids)
main.add_command(tfrecord)
main.add_command(remove_colormap)
main.add_command(lists)
main.add_command(inspect_cmd)
main.add_command(verify)
main.add_command(register)


if __name__ == "__main__":
    main()
