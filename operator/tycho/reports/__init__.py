"""Read-only views over the store: explain, lineage, run listings."""
