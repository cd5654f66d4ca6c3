"""The operator: kopf wiring, watch-fed caches, and the reconcile that drives the engine."""
