"""Pure planning: DAG order, cache keys and "what runs next and why". No I/O here."""
