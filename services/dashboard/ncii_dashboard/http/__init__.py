"""The dashboard's routes: the JSON API and the page."""
