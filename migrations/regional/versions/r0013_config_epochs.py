"""Regional: the tenant epoch also moves with the tenant's configuration.

The triggers of ``r0011_auth_epochs`` now also fire on the configuration rows read on every
request — the KMS configuration and data keys, the chat, DLP and gateway policies and the BYO
models — so that those can be kept in memory under the epoch (``kernel.epochs``) and a change,
from any replica or tool, reaches the very next request.

Revision ID: r0013_config_epochs
Revises: r0012_reservations
Create Date: 2026-11-30
"""

from __future__ import annotations

from migrations.epochs import create_epoch_triggers, drop_epoch_triggers

revision = "r0013_config_epochs"
down_revision = "r0012_reservations"
branch_labels = None
depends_on = None

SOURCES = (
    "tenant_kms",
    "data_keys",
    "chat_policies",
    "dlp_policies",
    "gateway_policies",
    "gateway_byo_models",
)


def upgrade() -> None:
    create_epoch_triggers(SOURCES)


def downgrade() -> None:
    drop_epoch_triggers(SOURCES)
