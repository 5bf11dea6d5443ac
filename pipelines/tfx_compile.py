"""``bakeoff compile-tfx``: the TensorFlow stage's TFX pipeline as a Kubeflow Pipelines V2 spec.

The same pipeline ``train@tensorflow`` runs with LocalDagRunner, compiled by
TFX's own ``KubeflowV2DagRunner`` into the JSON that Kubeflow Pipelines and
Vertex AI Pipelines take. It compiles only: nothing trains and no cluster is
reached (see the README's scale-out section for what a cluster run needs).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from components.ingest.core import IngestParams
from components.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The paths default to dvc.yaml's; the image has no default (it must hold this project)."""
    parser.add_argument("--params", default="params.yaml", help="the params file")
    parser.add_argument("--data-dir", default="data/clean", help="the clean splits")
    parser.add_argument(
        "--preprocessing", default="data/clean/preprocessing.json", help="the clean constants"
    )
    parser.add_argument("--schema", help="the data schema (default: schemas/<ingest.name>.yaml)")
    parser.add_argument(
        "--image",
        required=True,
        help="container image with this project installed (e.g. built FROM tfx:1.16.0)",
    )
    parser.add_argument(
        "--output", default="tfx/kubeflow_v2/pipeline.json", help="the compiled spec (JSON)"
    )


def run(args: argparse.Namespace) -> None:
    """Prepare the training job as the stage does, then compile its pipeline."""
    from components.training import driver
    from pipelines.tfx_runner import compile_kubeflow_v2

    ingest = IngestParams.from_section(load_params(args.params).get("ingest") or {})
    schema = Path(args.schema or f"schemas/{ingest.name}.yaml")
    job = driver.prepare(
        "tensorflow", args.params, Path(args.data_dir), Path(args.preprocessing), Path.cwd()
    )
    output = compile_kubeflow_v2(job, schema, Path(args.output), args.image)
    print(f"compile-tfx: {job.plan.name}: Kubeflow Pipelines V2 spec -> {output}")
