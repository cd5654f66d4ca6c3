"""The run index: an SQLite cache of the store's run summaries for listing, filtering and sorting."""
