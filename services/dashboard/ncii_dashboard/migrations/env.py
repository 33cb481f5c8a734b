from ncii_dashboard.read_models.schema import METADATA
from ncii_events.db import run_migrations_online

run_migrations_online(METADATA)
