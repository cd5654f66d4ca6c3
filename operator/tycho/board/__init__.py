"""``tycho board``: a web app over the store and its run index (leaderboard, runs, compare, provenance)."""
