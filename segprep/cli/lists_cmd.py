"""`segprep lists ROOT`: train.txt / val.txt / trainval.txt from folders or from a seeded random split."""

from __future__ import annotations

from pathlib import Path

import click

from segprep.cli.common import fail, print_table, report_notes


@click.command(
    epilog="""\b
Examples:
  segprep lists data --split train=0.8 --split val=0.1 --split test=0.1 --seed 1
      # data/images/*.jpg + data/labels/*.png -> data/{train,val,test,trainval}.txt (stems)
  segprep lists ADEChallengeData2016 --images images --labels annotations --from-folders
      # images/training + annotations/training -> training.txt ('IMAGE LABEL' lines)

\b
Safety: list files never land inside IMAGES or LABELS, and an existing list file is
replaced only if segprep lists wrote it (recorded with its sha256 in OUT/.segprep-lists.json)
or already holds the same lines; a hand-written list is left alone and the run refused.
"""
)
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--images", default="images", show_default=True, help="Image folder under ROOT.")
@click.option("--labels", default="labels", show_default=True, help="Label folder under ROOT.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None, help="Where the lists go (default ROOT).")
@click.option("--split", "split_specs", multiple=True, help="NAME=FRACTION, repeatable (default train=0.9, val=0.1).")
@click.option("--seed", default=0, show_default=True, help="Seed of the random split (same seed as `convert folder` gives the same lists).")
@click.option("--from-folders", is_flag=True, help="One split per subfolder of IMAGES (with the same subfolder in LABELS).")
def lists(root: Path, images: str, labels: str, out_dir: Path | None, split_specs: tuple[str, ...], seed: int, from_folders: bool) -> None:
    """Write split lists; every image must have a label with the same stem, and the reverse.

    A file name with a line break (newline or carriage return) cannot be a list line: it is refused.
    """
    from segprep.datasets.folder import has_line_break, line_break_reason, pair_by_stem
    from segprep.paths import check_output_location
    from segprep.splits import SplitSpecError, list_file_bytes, parse_fractions, seeded_split, unplaced_note, write_owned_list_files

    out_dir = out_dir or root
    for folder in (root / images, root / labels):
        if not folder.is_dir():
            raise click.UsageError(f"no folder {folder}")
    result: dict[str, list[str]] = {}
    problems: list[str] = []
    if from_folders:
        if split_specs:
            raise click.UsageError("--split and --from-folders exclude each other")
        for sub in sorted(p for p in (root / images).iterdir() if p.is_dir()):
            if has_line_break(sub.name):
                problems.append(f"{root / images}: {line_break_reason('image folder', sub.name)}")
                continue
            label_sub = root / labels / sub.name
            if not label_sub.is_dir():
                problems.append(f"{label_sub}: no label folder for image folder {sub}")
                continue
            samples, unpaired = pair_by_stem(sub, label_sub)
            problems += [p.line() for p in unpaired]
            result[sub.name] = [f"{s.image.relative_to(root).as_posix()} {s.label.relative_to(root).as_posix()}" for s in samples]
        if not result and not problems:
            raise click.UsageError(f"{root / images} has no subfolders; drop --from-folders for a random split")
    else:
        try:
            fractions = parse_fractions(list(split_specs) or ["train=0.9", "val=0.1"])
        except SplitSpecError as exc:
            raise click.UsageError(str(exc)) from None
        samples, unpaired = pair_by_stem(root / images, root / labels)
        problems += [p.line() for p in unpaired]
        result = seeded_split([s.name for s in samples], fractions, seed)
        placed = sum(len(names) for names in result.values())
        if placed < len(samples) and not problems:
            report_notes([unplaced_note(len(samples) - placed, len(samples), fractions)])
    if problems:
        fail(problems, f"{len(problems)} problem(s); no list written")
    for target in list_file_bytes(out_dir, result):
        check_output_location(target, [root / images, root / labels], "list file")
    written = write_owned_list_files(out_dir, result)
    counts = {p.stem: sum(1 for _ in p.open(encoding="utf-8")) for p in written}
    print_table(f"lists in {out_dir}", ["split", "entries"], [[s, n] for s, n in counts.items()])
