"""The layouts `segprep convert` knows (name -> adapter) and the layout options they read, declared once.

Adding a layout: a module with `plan(context) -> ConvertPlan`, one Adapter line here and, for a
dataset with fixed classes, its entry in the top-level dataset_registry.yaml. The CLI needs nothing else.
This module imports no adapter: `segprep --help` builds its options from it.
"""

from __future__ import annotations

from segprep.datasets.adapter import Adapter, LayoutOption

OPTIONS: dict[str, LayoutOption] = {
    option.dest: option
    for option in (
        LayoutOption("--label-dir", "Label folder (e.g. SegmentationClassAug).", default="SegmentationClass"),
        LayoutOption("--name", "The dataset's registry name (registered if new). With --classes/--merge/--drop: the new dataset's name (default <dataset>_<classes> or <dataset>_merged); folder and labelme read --name as the source's name, so theirs is the default."),
        LayoutOption("--classes", "A subset dataset of these classes (e.g. car or person,rider): 1..k in this order, all others 0 (background)."),
        LayoutOption("--merge", "NEW=CLASS,CLASS,... repeatable: a new dataset whose classes are these groups in the order given, then each class in no group under its own name; a group's colour is its first member's.", kind="pairs"),
        LayoutOption("--drop", "CLASS, repeatable or comma-separated: its pixels become the ignore label (a new dataset without it).", kind="pairs"),
        LayoutOption("--split", "NAME=FRACTION, repeatable (default train=0.9, val=0.1).", kind="pairs"),
        LayoutOption("--seed", "Seed of the random split.", kind="int", default=0),
        LayoutOption("--class-names", "Class names, one a line (default ROOT/class_names.txt).", kind="file"),
        LayoutOption("--ignore-label", "Ignore label of a new dataset.", kind="byte", default=255),
        LayoutOption("--colormap", "Colormap of a new dataset.", default="pascal"),
        LayoutOption("--label-colors", "Labels are RGB images in this colour map: a built-in colormap (e.g. kitti_road) or a file of 'R G B name' lines, one per class in class order; other colours are refused.", kind="text"),
        LayoutOption("--void-color", "R,G,B of RGB labels stored as the ignore label, repeatable (with --label-colors).", kind="pairs"),
        LayoutOption("--lists", "Splits from DIR/*.txt (train.txt -> train; a line: an image stem, file name or path under ROOT) instead of --split.", kind="dir"),
    )
}

ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        Adapter("pascal_voc_seg", "PASCAL VOC 2012 (JPEGImages/, a label folder, ImageSets/Segmentation/*.txt)", "one per list: train, val, trainval", "segprep.datasets.pascal_voc", ("label_dir",)),
        Adapter("cityscapes", "Cityscapes (leftImg8bit/, gtFine/, gtCoarse/); trainIds made where missing", "train, val, test; add trainval, train_extra", "segprep.datasets.cityscapes", ("classes", "name")),
        Adapter("camvid", "CamVid in SegNet's layout (train/ trainannot/ ... and {split}.txt)", "train, val, test; add trainval", "segprep.datasets.camvid"),
        Adapter("kitti_road", "KITTI road (training/image_2/, training/gt_image_2/)", "train, val (seeded, per category), trainval", "segprep.datasets.kitti_road", ("seed",)),
        Adapter("ade20k", "ADE20K scene parsing (ADEChallengeData2016/images/, annotations/)", "train, val; add trainval", "segprep.datasets.ade20k"),
        Adapter("mapillary_vistas", "Mapillary Vistas v1.2 ({training,validation}/images/, v1.2/labels/)", "train, val; add trainval", "segprep.datasets.mapillary_vistas"),
        Adapter("apolloscape", "ApolloScape scene parsing (ROAD/ColorImage/, ROAD/Label/ *_bin.png ids -> trainIds)", "the official ROAD_*.lst lists, else by record (--split, --seed); trainval", "segprep.datasets.apolloscape", ("split", "seed")),
        Adapter("labelme", "the VOC folder `segprep labelme` wrote", "one per non-empty list", "segprep.datasets.labelme", ("name", "colormap")),
        Adapter("folder", "any ROOT/images/ + ROOT/labels/ with matching stems", "seeded: --split NAME=FRACTION, or one per --lists file", "segprep.datasets.folder", ("name", "split", "seed", "class_names", "ignore_label", "colormap", "label_colors", "void_color", "lists")),
    )
}


MAPPING_OPTIONS = ("name", "classes", "merge", "drop")
"""Options every layout takes: a class mapping (segprep.ops.class_mapping) applied to whatever it planned."""


def takes(adapter: Adapter) -> tuple[str, ...]:
    """Every option a layout takes: its own, then the class-mapping ones."""
    return adapter.options + tuple(d for d in MAPPING_OPTIONS if d not in adapter.options)


def readers_of(dest: str) -> list[str]:
    """The layouts that read an option, in catalog order ("every layout" for the class-mapping ones)."""
    if dest in MAPPING_OPTIONS:
        return ["every layout"]
    return [name for name, adapter in ADAPTERS.items() if dest in adapter.options]
