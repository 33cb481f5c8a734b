from ncii_events.db import run_migrations_online
from ncii_hashmatch.projections import METADATA

run_migrations_online(METADATA)
