"""The ExperimentPipeline API (``tycho.dev/v1alpha1``): models, CRD and validation."""
