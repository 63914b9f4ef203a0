"""Image search: web search backends and the local SQLite FTS5 pool."""
