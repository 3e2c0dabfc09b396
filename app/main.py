"""ASGI entry point: ``uvicorn app.main:app``. Only calls the factory."""

from app.factory import create_app

app = create_app()
