"""The staff dashboard: aggregate read models, their JSON API and a browser page."""
