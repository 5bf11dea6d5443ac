"""The register stage: the champion gate, the MLflow Model Registry, and the serving directory."""
