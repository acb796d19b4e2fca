"""segtrain: fit / eval / score / predict / export DeepLabv3+ on segprep's TFRecords.

A thin click layer, one module per command: each reads the registry (the source of classes,
ignore label, colormap, class weights and split sizes), parses its options into the dataclasses
of the modules that do the work, and reports. TensorFlow is imported only inside commands, so
`segtrain --help` stays instant.
"""

from __future__ import annotations

import click

from segprep.cli.guarded import GuardedGroup
from segtrain.cli.common import remember_verbose
from segtrain.cli.eval_cmd import eval_cmd
from segtrain.cli.export_cmd import export
from segtrain.cli.fit_cmd import fit
from segtrain.cli.import_cmd import import_deeplab_cmd
from segtrain.cli.predict_cmd import predict
from segtrain.cli.score_cmd import score


@click.group(cls=GuardedGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option("--verbose", is_flag=True, expose_value=False, is_eager=True, callback=remember_verbose,
              help="Show TensorFlow's start-up and C++ log lines (hidden by default).")
def main() -> None:
    """Train and evaluate DeepLabv3+ (TensorFlow 2 / Keras 3) on segprep's TFRecords.

    \b
    Example:
      segtrain fit --dataset camvid --logdir runs/camvid --steps 2000 --crop-size 360,480
      segtrain eval --dataset camvid --checkpoint runs/camvid --split test --json test.json
    """


for _command in (fit, eval_cmd, score, predict, export, import_deeplab_cmd):
    main.add_command(_command)

__all__ = ["main"]
