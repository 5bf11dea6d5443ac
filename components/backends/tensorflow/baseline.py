"""Resolving the Evaluator's baseline: the newest blessed model other than the candidate.

TFX's ``LatestBlessedModelStrategy`` returns the candidate itself on a rerun
once it has been blessed, which changes the Evaluator's inputs and defeats the
cache: a rerun with unchanged data would evaluate and push the same model
again. Leaving the candidate out keeps a rerun's inputs equal to the first
run's, and still compares a new model with the last blessed one.
"""

from typing import Any

from tfx import types
from tfx.dsl.components.common import resolver

CURRENT_MODEL_ID = "current_model_id"
BLESSED = "blessed"


class PreviousBlessedModelStrategy(resolver.ResolverStrategy):
    """Channels ``model``, ``model_blessing`` and ``candidate`` (the Trainer's model)."""

    def resolve_artifacts(
        self, store: Any, input_dict: dict[str, list[types.Artifact]]
    ) -> dict[str, list[types.Artifact]] | None:
        """The newest blessed model (and its blessing) that is not the candidate."""
        candidates = {artifact.id for artifact in input_dict.get("candidate", [])}
        blessings = {
            blessing.get_int_custom_property(CURRENT_MODEL_ID): blessing
            for blessing in input_dict.get("model_blessing", [])
            if blessing.get_int_custom_property(BLESSED) == 1
        }
        result: dict[str, list[types.Artifact]] = {key: [] for key in input_dict}
        result["candidate"] = list(input_dict.get("candidate", []))
        for model in sorted(input_dict.get("model", []), key=lambda a: a.id, reverse=True):
            if model.id in blessings and model.id not in candidates:
                result["model"] = [model]
                result["model_blessing"] = [blessings[model.id]]
                break
        return result
