"""The engine: the one scheduler (pure decisions over typed runs) and what drives it."""
