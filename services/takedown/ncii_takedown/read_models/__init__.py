"""Takedowns read models: platforms, cases as takedown sees them, takedowns, outbox, deliveries."""
