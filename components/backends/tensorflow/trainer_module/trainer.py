"""The TFX Trainer's ``run_fn``: an adapter that hands TFX's inputs to the training driver.

Alone in its folder: TFX packages every module next to a ``module_file`` into
the Trainer's cache key. The code it calls lives in the installed ``components``
package; the job in ``custom_config`` carries a hash of that code, so a change
to it re-runs the Trainer. Nothing per run is in ``custom_config`` (it is part
of the cache key): the driver opens the stage's MLflow run itself.
"""

from __future__ import annotations

from typing import Any


def run_fn(fn_args: Any) -> None:
    """Run the training driver on the Transform output; the model goes to TFX's serving dir.

    In this process, or on ``train_tensorflow.devices`` worker processes
    (``components.backends.tensorflow.stage``).
    """
    from components.backends.tensorflow import stage

    stage.run(stage.TrainerInputs.from_fn_args(fn_args))
