"""Helpers the test suites share (one home each): waiting, ports, the test cluster, the
workspace of the toy pipeline."""
