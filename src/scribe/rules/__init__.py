"""Rules: the schema, loading with errors that say where, templating and matching."""
