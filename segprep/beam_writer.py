"""`segprep convert --runner beam`: the local writer's plan, executed as an Apache Beam pipeline.

The same plan (segprep.writer.plan_split: shards, their samples, fingerprints) and the same pure
encoder (encode_sample) as the local runner, so shards and manifests are byte for byte the local
runner's. The pipeline encodes every sample in parallel, groups each shard's records and writes
the shard once (hidden, `.staged-NAME`), then per split either publishes the shards and writes the
manifest (the old manifest first removed, the new one written last, as locally) or, when a
sample is bad and --skip-invalid is not given, removes the staged shards so the split's earlier
output stays. Files go through Beam's FileSystems, so --out may be gs://... on Dataflow; the
inputs must be readable by every worker (a local disk for the DirectRunner, a shared mount
otherwise). A small hidden result file per split tells the launching process what happened; it
reads and removes them, then updates the registry as the local runner does.

Not here (the local runner has them): resuming a killed run shard by shard (Beam retries failed
work itself) and, for a remote --out, the lock, the check for shard files segprep did not write
and the refusal (or --prune) of an earlier run's other splits.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from segprep.convert import check_output_folder, entry_fingerprint_fields, prepare_output, prune_splits, record_results
from segprep.datasets.adapter import label_policy
from segprep.datasets.base import DatasetLayout
from segprep.errors import SegprepError
from segprep.manifest import json_line
from segprep.ops.labels import LabelPolicy
from segprep.problems import Problem
from segprep.registry import DatasetEntry
from segprep.writer import (
    SplitPlan,
    SplitResult,
    WriterOptions,
    encode_sample,
    manifest_document,
    owned_shard_files,
    plan_split,
    shard_outcome,
    up_to_date,
)

RESULT_SUFFIX = ".beam-result.json"


class BeamUnavailableError(SegprepError):
    """apache-beam is not installed."""


def pipeline_flags(text: str | None) -> list[str]:
    """"runner=DirectRunner,direct_num_workers=2" -> ["--runner=DirectRunner", "--direct_num_workers=2"] (TFDS's form).

    With several DirectRunner workers and no running mode given, the workers are processes
    (direct_running_mode=multi_processing): encoding is CPU-bound Python, which threads would serialise.
    """
    pairs: dict[str, str] = {}
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lstrip("-")
        if not sep or not key:
            raise ValueError(f"--beam-pipeline-options: expected KEY=VALUE, got {item!r}")
        pairs[key] = value.strip()
    pairs.setdefault("runner", "DirectRunner")
    workers = pairs.get("direct_num_workers", "1")
    if pairs["runner"] == "DirectRunner" and workers not in ("0", "1") and "direct_running_mode" not in pairs:
        pairs["direct_running_mode"] = "multi_processing"
    return [f"--{key}={value}" for key, value in pairs.items()]


def _join(folder: str, name: str) -> str:
    from apache_beam.io.filesystems import FileSystems

    return FileSystems.join(folder, name)  # type: ignore[no-any-return]


def _encode(element: tuple[tuple[int, int], int, Any], policy: LabelPolicy, checks: Any) -> tuple[tuple[int, int], tuple[int, bytes | None, dict[str, Any] | None, list[Problem]]]:
    """One sample -> its shard's key and (position, framed record, manifest entry, bad)."""
    key, position, sample = element
    outcome = encode_sample(sample, policy, checks)
    if isinstance(outcome, list):
        return key, (position, None, None, outcome)
    record, entry = outcome
    return key, (position, record, entry, [])


def _write_shard(group: tuple[tuple[int, int], Any], out: str, plans: list[SplitPlan], skip_invalid: bool) -> tuple[int, tuple[int, bool, int, list[dict[str, Any]], list[Problem]]]:
    """Write one shard's records in plan order to its staged name, unless the split already failed."""
    from apache_beam.io.filesystems import FileSystems

    (split_index, shard), values = group
    items = sorted((v for v in values if v is not None), key=lambda v: v[0])
    bad = [b for item in items for b in item[3]]
    failed = bool(bad) and not skip_invalid
    size, entries = 0, []
    if not failed:
        plan = plans[split_index]
        with FileSystems.create(_join(out, plan.staged(shard).name)) as handle:
            for _, record, entry, _ in items:
                if record is not None:
                    handle.write(record)
                    size += len(record)
                    entries.append(entry)
    return split_index, (shard, failed, size, entries, bad)


def _finish_split(group: tuple[int, Any], out: str, plans: list[SplitPlan], owned: list[set[str]], skip_invalid: bool) -> None:
    """Publish a split whose shards are all written, or drop them when it failed; then its result file."""
    from apache_beam.io.filesystems import FileSystems

    split_index, shards = group
    plan = plans[split_index]
    shards = sorted(shards, key=lambda s: s[0])
    bad = list(plan.problems) + [b for s in shards for b in s[4]]
    staged = [_join(out, plan.staged(i).name) for i in range(plan.num_shards)]
    if (plan.problems and not skip_invalid) or any(s[1] for s in shards):
        FileSystems.delete([path for path in staged if FileSystems.exists(path)])
        result = {"split": plan.split, "status": "failed", "records": 0, "shards": plan.num_shards, "bad": [b.manifest_entry() for b in bad]}
    else:
        outcomes = {i: shard_outcome(plan, i, size, entries, shard_bad) for i, _, size, entries, shard_bad in shards}
        document = manifest_document(plan, outcomes)
        manifest = _join(out, plan.manifest.name)
        if FileSystems.exists(manifest):  # the split is unfinished from here until the new manifest exists
            FileSystems.delete([manifest])
        FileSystems.rename(staged, [_join(out, name) for name in plan.names])
        stale = [_join(out, name) for name in owned[split_index] - set(plan.names)]
        FileSystems.delete([path for path in stale if FileSystems.exists(path)])
        _write_text(manifest, json_line(document))
        result = {"split": plan.split, "status": "written", "records": document["num_records"], "shards": plan.num_shards, "bad": document["skipped"]}
    _write_text(_join(out, f".{plan.split}{RESULT_SUFFIX}"), json.dumps(result))


def _write_text(path: str, text: str) -> None:
    """Write to a hidden neighbour, then rename: a reader never sees half a file."""
    from apache_beam.io.filesystems import FileSystems

    folder, name = FileSystems.split(path)
    temporary = FileSystems.join(folder, f".{name}.beam.tmp")
    with FileSystems.create(temporary) as handle:
        handle.write(text.encode())
    FileSystems.rename([temporary], [path])


def run_pipeline(plans: list[SplitPlan], out: str, policy: LabelPolicy, skip_invalid: bool, owned: list[set[str]], flags: list[str]) -> None:
    """Encode, write each shard once, then finish each split, on the runner the flags name."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    samples = [((p, i), k, plan.samples[k]) for p, plan in enumerate(plans) for i, shard in enumerate(plan.ranges) for k in shard]
    shard_keys = [((p, i), None) for p, plan in enumerate(plans) for i in range(plan.num_shards)]  # empty shards are written too
    checks = plans[0].checks
    with beam.Pipeline(options=PipelineOptions(flags)) as pipeline:
        encoded = (
            pipeline
            | "Samples" >> beam.Create(samples, reshuffle=True)
            | "Encode" >> beam.Map(_encode, policy, checks)
        )
        every_shard = pipeline | "Shards" >> beam.Create(shard_keys)
        _ = (
            (encoded, every_shard)
            | "Join" >> beam.Flatten()
            | "ByShard" >> beam.GroupByKey()
            | "WriteShard" >> beam.Map(_write_shard, out, plans, skip_invalid)
            | "BySplit" >> beam.GroupByKey()
            | "FinishSplit" >> beam.Map(_finish_split, out, plans, owned, skip_invalid)
        )


def write_layout_beam(
    layout: DatasetLayout,
    entry: DatasetEntry,
    options: WriterOptions,
    flags: list[str],
    registry_path: Path | None = None,
    *,
    inputs: Sequence[Path] = (),
    register: bool = False,
    out_url: str | None = None,
) -> list[SplitResult]:
    """write_layout's contract on Beam: same checks before any work, same files, same registry update.

    flags: the pipeline options (pipeline_flags); out_url: a remote --out (gs://...) as given,
    options.out_dir is then not used for files.
    """
    try:
        import apache_beam  # noqa: F401
    except ImportError:
        raise BeamUnavailableError("--runner beam needs Apache Beam: pip install 'segprep[beam]'") from None
    from apache_beam.io.filesystems import FileSystems

    from segprep.outlock import exclusive_output

    out = out_url or str(options.out_dir)
    policy = label_policy(entry, layout.rules)
    local = FileSystems.get_scheme(out) in (None, "file")
    if local:
        check_output_folder(options.out_dir, inputs, layout)
        with exclusive_output(options.out_dir) as out_dir:
            stale = prepare_output(out_dir, list(layout.splits), options.prune)
            results = _write(layout, entry, options, policy, flags, out, local)
            if all(r.status != "failed" for r in results):
                prune_splits(out_dir, stale)
        data_dir = str(options.out_dir.resolve())
    else:
        results = _write(layout, entry, options, policy, flags, out, local)
        data_dir = out
    record_results(results, entry, data_dir, registry_path, register)
    return results


def _write(layout: DatasetLayout, entry: DatasetEntry, options: WriterOptions, policy: LabelPolicy, flags: list[str], out: str, local: bool) -> list[SplitResult]:
    from apache_beam.io.filesystems import FileSystems

    plans = [
        plan_split(split, samples, policy, options, dataset=entry.name, registry_entry=entry_fingerprint_fields(entry), list_problems=layout.problems_for(split), class_mapping=layout.class_mapping)
        for split, samples in layout.splits.items()
    ]
    done = {plan.split: up_to_date(plan) for plan in plans} if local else {}
    todo = [plan for plan in plans if done.get(plan.split) is None]
    if todo:
        if not FileSystems.exists(out):
            FileSystems.mkdirs(out)
        owned = [owned_shard_files(options.out_dir, plan.split) if local else set() for plan in todo]
        run_pipeline(todo, out, policy, options.skip_invalid, owned, flags)
    results = []
    for plan in plans:
        if done.get(plan.split) is not None:
            results.append(done[plan.split])
            continue
        path = _join(out, f".{plan.split}{RESULT_SUFFIX}")
        with FileSystems.open(path) as handle:
            result = json.loads(handle.read().decode())
        FileSystems.delete([path])
        results.append(SplitResult(result["split"], result["status"], result["records"], result["shards"], [Problem.from_manifest(b) for b in result["bad"]]))
    return results
