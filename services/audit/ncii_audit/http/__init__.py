"""The auditor's routes."""
