"""Runners execute a plan. They differ only in how a stage is executed."""
