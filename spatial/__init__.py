"""Pure geometry engine: geometries and arrays in, results out (no HTTP, no SQL, no I/O)."""
