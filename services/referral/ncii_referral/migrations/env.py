from ncii_events.db import run_migrations_online
from ncii_referral.read_models.schema import METADATA

run_migrations_online(METADATA)
