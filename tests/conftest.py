"""Shared test setup: the package lives under operator/ (installed editable by `make test`)."""
