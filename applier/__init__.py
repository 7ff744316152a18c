"""whatsmeow-tenancy: applies and checks the multi-tenant whatsmeow PostgreSQL store."""

__version__ = "0.1.0"
