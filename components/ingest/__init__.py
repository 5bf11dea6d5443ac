"""The ``ingest`` stage: a data source in, a Parquet snapshot and a manifest out."""
