"""Registered datasets and transforms; importing this package registers them all."""
