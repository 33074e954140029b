"""Tests of the Python client library (pure parts)."""
