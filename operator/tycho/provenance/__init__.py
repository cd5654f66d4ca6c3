"""Provenance: hashing, the content-addressed object store and write-once records."""
