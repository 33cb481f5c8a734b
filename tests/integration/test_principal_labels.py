"""Principal labels and organisations fit the principals table on every database (security
review F17: a 300-character label was a dead letter on PostgreSQL and its key was refused)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from ncii_contracts.principals import PrincipalCreated
from ncii_events.auth import (
    MAX_LABEL,
    PRINCIPALS,
    PRINCIPALS_METADATA,
    PrincipalsProjection,
    create_principal,
)
from ncii_events.db import make_engine
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from tests.conftest import SuiteNats
from tests.support.factories import recorded_case_event


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    eng = make_engine(database_url)
    async with eng.begin() as conn:
        await conn.run_sync(PRINCIPALS_METADATA.create_all)
    yield eng
    await eng.dispose()


async def test_a_label_longer_than_the_column_is_cut_so_the_principal_is_still_projected(
    engine: AsyncEngine,
) -> None:
    created = PrincipalCreated(
        principal_id="p-long-label",
        organisation="ngo-x",
        role="partner",
        key_sha256="a" * 64,
        key_hint="ncii_live_abcd",
        label="x" * 300,
    )
    recorded = recorded_case_event(7, created, case_id="_reference")
    async with engine.begin() as conn:
        await conn.run_sync(lambda c: PrincipalsProjection().apply(c, recorded))
    async with engine.connect() as conn:
        label = (await conn.execute(select(PRINCIPALS.c.label))).scalar_one()
    assert label == "x" * MAX_LABEL


class _NoAppends:
    async def append(self, *args: object, **kwargs: object) -> None:
        raise AssertionError("nothing may be written")


@pytest.mark.parametrize(
    ("organisation", "label", "message"),
    [
        ("ngo-x", "x" * (MAX_LABEL + 1), "label must be at most 200"),
        ("o" * 101, "", "organisation must be 1 to 100"),
        ("  ", "", "organisation must be 1 to 100"),
    ],
)
async def test_create_principal_refuses_what_the_table_cannot_hold_before_writing(
    organisation: str, label: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        await create_principal(
            _NoAppends(),  # type: ignore[arg-type]
            organisation=organisation,
            role="partner",
            label=label,
        )


def test_keys_create_with_a_label_over_200_characters_is_a_usage_error(
    nats_server: SuiteNats, tmp_path: object
) -> None:
    from ncii_cli.main import app

    result = CliRunner().invoke(
        app,
        ["keys", "create", "--org", "x", "--role", "partner", "--label", "x" * 201],
        env={"NCII_NATS_URL": nats_server.url, "NCII_VAR_DIR": str(tmp_path)},
    )
    assert result.exit_code == 2
    assert "--label must be at most 200 characters" in result.output
