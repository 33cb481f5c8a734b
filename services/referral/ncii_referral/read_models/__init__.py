"""Referral's read models: tables, projections (and the reactor), queries."""
