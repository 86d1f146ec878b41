"""Blendset add-on (placeholder until the UI lands): importing this package does no work."""
