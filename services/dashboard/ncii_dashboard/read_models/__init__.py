"""The dashboard's tables, projections and queries."""
