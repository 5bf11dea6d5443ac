"""The registered MLflow model: the users' columns in, by name; the native model inside.

The frameworks' MLflow flavours take the serving matrix (the flavour for a
``tf.Module`` takes arrays only), so the version register publishes wraps one:
a pyfunc whose signature names every input column as the data has it (numbers
as doubles, categories as strings) and whose input example is real test rows.
Its ``predict`` builds the serving matrix with that version's own vocabularies
(``layout.json``, the export manifest's input and output) and calls the native
model, logged inside it under ``artifacts/native``.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class NamedInputs(mlflow.pyfunc.PythonModel):  # type: ignore[name-defined]
    """A table of raw feature values, by the users' column names, to the native model's answer."""

    def load_context(self, context: Any) -> None:
        """The serving layout and the native model, from the model's own artifacts."""
        from components.contracts import ServingLayout, read_json

        self.layout = ServingLayout.from_manifest(
            read_json(context.artifacts["layout"], "register")
        )
        self.native = mlflow.pyfunc.load_model(context.artifacts["native"])

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        """Probabilities (rows, classes) or values, as the native model answers them."""
        from components.training.features import raw_matrix

        return self.native.predict(raw_matrix(model_input, self.layout))
