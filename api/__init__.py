"""FastAPI adapter over the Rayplane core. No business logic lives here."""
