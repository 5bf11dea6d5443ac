"""A TFX component that stops the pipeline when ExampleValidator found anomalies.

No ``from __future__ import annotations`` here: TFX reads the signature's
annotations as objects to build the component.
"""

import os

from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import ExampleAnomalies


class AnomaliesFound(RuntimeError):
    """ExampleValidator reported anomalies; training on the data would be wrong."""


@tfx.dsl.components.component
def AnomaliesGate(
    anomalies: tfx.dsl.components.InputArtifact[ExampleAnomalies],
) -> tfx.dsl.components.OutputDict(checked_splits=str):  # type: ignore[valid-type]
    """Raise with every anomaly named (split, feature, what) so nothing downstream runs."""
    import tensorflow as tf
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    problems = []
    splits = artifact_utils.decode_split_names(anomalies.split_names)
    for split in splits:
        path = os.path.join(anomalies.uri, f"Split-{split}", "SchemaDiff.pb")
        with tf.io.gfile.GFile(path, "rb") as handle:
            found = anomalies_pb2.Anomalies.FromString(handle.read())
        for feature, info in sorted(found.anomaly_info.items()):
            problems.append(
                f"split '{split}': feature '{feature}': {info.short_description} ({info.description})"
            )
        if found.HasField("dataset_anomaly_info"):
            problems.append(f"split '{split}': {found.dataset_anomaly_info.description}")
    if problems:
        raise AnomaliesFound(
            f"ExampleValidator found {len(problems)} anomalies: " + "; ".join(problems)
        )
    return {"checked_splits": ",".join(splits)}
