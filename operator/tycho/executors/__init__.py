"""Executors: how a stage execution is started, observed and cancelled (subprocess, container, Job)."""
