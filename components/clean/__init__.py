"""The ``clean`` stage: validate the snapshot against a schema, quarantine, split, compute constants."""
