"""The cases read model's victim-access columns (decision 25), on SQLite and PostgreSQL: a
database with cases from before the migration keeps them, at zero resets, and the projection
counts resets and new PINs, which the victim's routes read with the reference."""

from __future__ import annotations

from pathlib import Path

import ncii_intake
from alembic import command
from alembic.config import Config
from ncii_contracts.intake import CaseOpened, Consents, VictimAccessReset
from ncii_events.db import make_engine, migrate
from ncii_intake.read_models import queries
from ncii_intake.read_models.projections import CasesProjection
from sqlalchemy import Connection, text

from tests.support.factories import recorded_case_event

MIGRATIONS = Path(ncii_intake.__file__).parent / "migrations"
VERSION_TABLE = "alembic_version_intake"


def _upgrade_to(conn: Connection, revision: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = conn
    cfg.attributes["version_table"] = VERSION_TABLE
    command.upgrade(cfg, revision)


async def test_cases_from_before_the_migration_keep_and_resets_are_counted(
    database_url: str,
) -> None:
    engine = make_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_upgrade_to, "intake_0001")
            await conn.execute(
                text(
                    "INSERT INTO cases (case_id, organisation, reference, age_group, status, "
                    "harm_categories, spread_status, intake_channel, learned_at, opened_at, "
                    "locations, hashes, last_seq, updated_at) VALUES ('old', 'org-a', "
                    "'AAAA-BBBB-CCCC', 'adult', 'active', '[]', 'spread', 'phone', "
                    "'2026-11-01T00:00:00Z', '2026-11-01T00:00:00Z', 0, 0, 1, "
                    "'2026-11-01T00:00:00Z')"
                )
            )
        await migrate(engine, MIGRATIONS, VERSION_TABLE)
        old = await queries.victim_access(engine, "AAAA-BBBB-CCCC")
        assert old is not None and (old.case_id, old.resets, old.pin_generation) == ("old", 0, 0)

        opened = CaseOpened(
            organisation="org-a",
            reference="DDDD-EEEE-FFFF",
            age_group="adult",
            harm_categories=["threat_sextortion"],
            spread_status="threatened",
            channels=[],
            intake_channel="phone",
            learned_at="2026-11-24T09:00:00.000000Z",
            consents=Consents(takedown=True, share_hashes=False, referral=False),
        )
        events = [
            recorded_case_event(2, opened, case_id="new"),
            recorded_case_event(
                3, VictimAccessReset(reset_by="caseworker", new_pin=True), case_id="new"
            ),
            recorded_case_event(
                4, VictimAccessReset(reset_by="partner", new_pin=False), case_id="new"
            ),
        ]
        async with engine.begin() as conn:
            await conn.run_sync(CasesProjection().apply_batch, events)
        new = await queries.victim_access(engine, "DDDD-EEEE-FFFF")
        assert new is not None and (new.resets, new.pin_generation) == (2, 1)
        assert await queries.victim_access(engine, "GGGG-HHHH-JJJJ") is None
    finally:
        await engine.dispose()
