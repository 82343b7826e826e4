"""Integrations with training frameworks (optional extras): ``sslmon.integrations.lightning``."""
