"""The store's repositories, one per kind of record: reads on `Store` (each on a connection of
its own) and reads and writes on a unit of work (`Transaction`), on its connection."""
