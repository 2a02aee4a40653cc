"""Case-system adapters: ways for a national case system to use the internal API."""
