"""The project's data schema as a TFMD ``Schema`` proto for TFX's ImportSchemaGen.

The clean splits carry bakeoff's own columns (``_row_key``, ``_source_file``,
``_source_row``); they are in the proto as ``DEBUG_ONLY`` so that validation
knows them and TF Transform leaves them out of the features and the serving
signature (a SavedModel argument may not start with an underscore).
"""

from __future__ import annotations

from typing import Any

from components import columns as kinds
from components.clean.schema import DataSchema


def tfmd_schema(schema: DataSchema) -> Any:
    """Types, presence, ranges and label values of every column of the clean splits."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    proto = schema_pb2.Schema()
    for name in schema.used:
        spec = schema.columns[name]
        feature = proto.feature.add(name=name)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
        feature.shape.dim.add(size=1)
        is_label = name == schema.label
        if spec.kind == kinds.STRING:
            feature.type = schema_pb2.BYTES
            if spec.allowed is not None:
                feature.string_domain.value.extend(str(v) for v in spec.allowed)
        elif is_label and schema.task == "classification":
            feature.type = schema_pb2.INT
            classes = [int(v) for v in spec.allowed or ()]
            if classes:
                feature.int_domain.min, feature.int_domain.max = min(classes), max(classes)
        else:
            feature.type = schema_pb2.FLOAT
            if spec.minimum is not None:
                feature.float_domain.min = float(spec.minimum)
            if spec.maximum is not None:
                feature.float_domain.max = float(spec.maximum)
    for name, kind in (
        (kinds.ROW_KEY, schema_pb2.INT),
        (kinds.SOURCE_ROW, schema_pb2.INT),
        (kinds.SOURCE_FILE, schema_pb2.BYTES),
    ):
        feature = proto.feature.add(name=name, type=kind)
        feature.lifecycle_stage = schema_pb2.DEBUG_ONLY
    return proto
