"""Registered model components; importing this package registers them all."""
