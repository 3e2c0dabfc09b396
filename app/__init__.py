"""Territory service: the FastAPI app, persistence on PostGIS and the CLI."""

__version__ = "0.1.0"
