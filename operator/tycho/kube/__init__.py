"""The cluster runner: stage Jobs, pipeline status and events (pure builders) plus the few
functions that send them to the API server. ``tycho.handlers`` wires kopf events to it.
"""
