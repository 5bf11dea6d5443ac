"""``bakeoff serve``: the registry's champion behind an HTTP API, through ONNX Runtime.

- :mod:`components.serve.inputs`: the request body, checked against the model's
  inputs and turned into the serving matrix (pure, no I/O).
- :mod:`components.serve.champion`: the champion, loaded from the MLflow
  registry and swapped for a new one when the alias moves.
- :mod:`components.serve.app`: the FastAPI application.
- :mod:`components.serve.cli`: the command's options and the server.
"""
