"""bakeoff's pipelines: the command line, the runner of the DVC graph, (later) the TFX factory."""
