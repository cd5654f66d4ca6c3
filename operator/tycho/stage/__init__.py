"""The stage wrapper: the one function that runs a stage, inside a container or a subprocess."""
