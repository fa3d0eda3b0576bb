"""Example FastAPI application."""
