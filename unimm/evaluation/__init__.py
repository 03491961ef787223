"""Registered metrics and evaluation tasks."""
