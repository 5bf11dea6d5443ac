"""A Parquet ExampleGen executor that keeps zeros.

TFX 1.16's ``parquet_executor`` converts rows with ``dict_to_example``, which
writes an empty feature for any falsy value: every 0, 0.0 and '' becomes
missing (every blank pixel of the digits, every label 0). Here only None or
an empty list is missing.
"""

from __future__ import annotations

import os
from typing import Any

import apache_beam as beam
import numpy as np
import tensorflow as tf
from tfx.components.example_gen.custom_executors import parquet_executor
from tfx.types import standard_component_specs


def to_feature(value: Any) -> tf.train.Feature:
    """One tf.train.Feature from a Parquet cell; None or [] is the only missing value."""
    if isinstance(value, np.ndarray):
        value = value.tolist()
    elif isinstance(value, np.generic):
        value = value.item()
    values = value if isinstance(value, (list, tuple)) else [value]
    values = [v.item() if isinstance(v, np.generic) else v for v in values if v is not None]
    if not values:
        return tf.train.Feature()
    first = values[0]
    if isinstance(first, (bool, int)):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=values))
    if isinstance(first, float):
        return tf.train.Feature(float_list=tf.train.FloatList(value=values))
    if isinstance(first, bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
    if isinstance(first, str):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode() for v in values]))
    raise TypeError(f"a Parquet value of type {type(first).__name__} has no tf.train.Feature")


def to_example(row: dict[str, Any]) -> tf.train.Example:
    """A row of the clean split as a tf.train.Example."""
    return tf.train.Example(
        features=tf.train.Features(feature={k: to_feature(v) for k, v in row.items()})
    )


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def _parquet_to_example(
    pipeline: beam.Pipeline, exec_properties: dict[str, Any], split_pattern: str
) -> Any:
    pattern = os.path.join(exec_properties[standard_component_specs.INPUT_BASE_KEY], split_pattern)
    return (
        pipeline
        | "ReadFromParquet" >> beam.io.ReadFromParquet(pattern)
        | "ToTFExample" >> beam.Map(to_example)
    )


class Executor(parquet_executor.Executor):
    """Drop-in for ``parquet_executor.Executor`` that keeps zero values."""

    def GetInputSourceToExamplePTransform(self) -> Any:
        """The Beam transform reading one split's Parquet files into examples."""
        return _parquet_to_example
