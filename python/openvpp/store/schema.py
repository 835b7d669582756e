"""Tables. Times are integer microseconds since the Unix epoch (UTC) so both
backends store and compare them exactly."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
)

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# One row: the head of the registry log. Writers lock it, which serialises
# appends so sequence numbers commit in order and watchers never skip one.
registry_head = Table(
    "registry_head",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("head_hash", LargeBinary(32), nullable=False),
    # The RFC 6962 root of the whole log, kept with the head so reading it is O(1).
    Column("root_hash", LargeBinary(32), nullable=True),
)

# Roots of the log's complete perfect subtrees above the leaves: (level,
# index) covers leaves [index * 2^level, (index + 1) * 2^level). Written as
# entries append; any root or audit path needs O(log N) of them.
registry_tree = Table(
    "registry_tree",
    metadata,
    Column("level", SmallInteger, primary_key=True, autoincrement=False),
    Column("idx", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

registry_log = Table(
    "registry_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("der_id", String(44), nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("entry_bytes", LargeBinary, nullable=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Index("ix_registry_log_der_id_version", "der_id", "version"),
)

devices = Table(
    "devices",
    metadata,
    Column("der_id", String(44), primary_key=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("name", String(253), nullable=False, unique=True),
    Column("vendor_namespace", String(253), nullable=False, index=True),
    Column("kind", SmallInteger, nullable=False),
    Column("utility_territory", String(64), nullable=False, index=True),
    Column("status", SmallInteger, nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("version", BigInteger, nullable=False),
    Column("record_bytes", LargeBinary, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("registered_seq", BigInteger, nullable=False, unique=True),
    Column("log_seq", BigInteger, nullable=False),
    Column("registered_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

device_aliases = Table(
    "device_aliases",
    metadata,
    Column("kind", SmallInteger, primary_key=True),
    Column("value", String(128), primary_key=True),
    Column("der_id", ForeignKey("devices.der_id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
)

partners = Table(
    "partners",
    metadata,
    Column("namespace", String(253), primary_key=True),
    Column("kind", SmallInteger, nullable=False),
    Column("legal_name", String(256), nullable=False),
    Column("contacts", Text, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("onboarded_at_us", BigInteger, nullable=False),
)

certificates = Table(
    "certificates",
    metadata,
    Column("serial", String(40), primary_key=True),
    Column("namespace", ForeignKey("partners.namespace"), nullable=False, index=True),
    Column("kind", SmallInteger, nullable=False),
    Column("not_before_us", BigInteger, nullable=False),
    Column("not_after_us", BigInteger, nullable=False),
    Column("revoked_at_us", BigInteger, nullable=True),
    Column("revocation_reason", SmallInteger, nullable=False),
    Column("certificate_pem", Text, nullable=False),
)

_ID = BigInteger().with_variant(Integer, "sqlite")

# One row per revocation, suspension or reinstatement, appended in the same
# transaction: every replica's credential cache follows it (see
# integration.partners), so a cached verdict never outlives the change.
credential_log = Table(
    "credential_log",
    metadata,
    Column("seq", _ID, primary_key=True, autoincrement=True),
    Column("namespace", String(253), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("change", String(16), nullable=False),
    Column("at_us", BigInteger, nullable=False),
)

# Partner endpoints and their last probe. `probe` is the JSON of the probe
# result (steps, pins, capabilities); `state` is what routing reads.
endpoints = Table(
    "endpoints",
    metadata,
    Column("endpoint_id", String(320), primary_key=True),
    Column("namespace", ForeignKey("partners.namespace"), nullable=False, index=True),
    Column("name", String(63), nullable=False),
    Column("url", Text, nullable=False),
    Column("protocol", SmallInteger, nullable=False),
    Column("programs", Text, nullable=False),
    Column("tls_server_name", String(253), nullable=False),
    Column("auth_mode", SmallInteger, nullable=False),
    Column("health_path", Text, nullable=False),
    Column("trust_anchors_pem", Text, nullable=False),
    Column("expected_spki_pins", Text, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("probe", Text, nullable=False),
    Column("probed_at_us", BigInteger, nullable=False),
    Column("registered_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

programs = Table(
    "programs",
    metadata,
    Column("program_id", String(320), primary_key=True),
    Column("utility_namespace", ForeignKey("partners.namespace"), nullable=False, index=True),
    Column("code", String(63), nullable=False),
    Column("name", String(256), nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("route_ttl_seconds", Integer, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

program_endpoints = Table(
    "program_endpoints",
    metadata,
    Column("program_id", ForeignKey("programs.program_id"), primary_key=True),
    Column("endpoint_id", ForeignKey("endpoints.endpoint_id"), primary_key=True, index=True),
    Column("priority", Integer, nullable=False),
    Column("weight", Integer, nullable=False),
    Column("attached_at_us", BigInteger, nullable=False),
)

# One row per (program, device), kept after unenrolment so the consent a
# device once gave stays on record. Namespaces are denormalised so watch
# visibility is one indexed query.
enrollments = Table(
    "enrollments",
    metadata,
    Column("program_id", ForeignKey("programs.program_id"), primary_key=True),
    Column("der_id", ForeignKey("devices.der_id"), primary_key=True, index=True),
    Column("utility_namespace", String(253), nullable=False, index=True),
    Column("vendor_namespace", String(253), nullable=False, index=True),
    Column("account_ref", String(128), nullable=False),
    Column("consent_payload", LargeBinary, nullable=False),
    Column("consent_signature", LargeBinary(64), nullable=False),
    Column("scopes", Text, nullable=False),
    Column("status", SmallInteger, nullable=False),
    Column("status_reason", Text, nullable=False),
    Column("consent_expires_at_us", BigInteger, nullable=False),
    Column("enrolled_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

# The route-change log: writers lock the head row so sequence numbers commit
# in order and WatchRoutes resumes without gaps, as the registry log does.
route_head = Table(
    "route_head",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

route_log = Table(
    "route_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", SmallInteger, nullable=False),
    Column("der_id", String(44), nullable=False),
    Column("vendor_namespace", String(253), nullable=False, index=True),
    Column("utility_namespace", String(253), nullable=False, index=True),
    Column("program_id", String(320), nullable=False),
    Column("endpoint_id", String(320), nullable=False),
    Column("namespace", String(253), nullable=False),
    Column("detail", Text, nullable=False),
    Column("at_us", BigInteger, nullable=False),
)

# IEEE 2030.5 device certificates and the identifiers derived from them.
device_certificates = Table(
    "device_certificates",
    metadata,
    Column("lfdi", String(40), primary_key=True),
    Column("der_id", ForeignKey("devices.der_id"), nullable=False, index=True),
    Column("sfdi", String(12), nullable=False, unique=True),
    Column("certificate_der", LargeBinary, nullable=False),
    Column("registered_at_us", BigInteger, nullable=False),
)

# -- the embedded chain ---------------------------------------------------------
# Every account a transaction wrote, as the chain's own (bincode) encoding,
# committed with the transaction's signature status: the in-process chain
# is exactly as durable as the database.
chain_accounts = Table(
    "chain_accounts",
    metadata,
    Column("address", String(44), primary_key=True),
    Column("account", LargeBinary, nullable=False),
)

chain_state = Table(
    "chain_state",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("slot", BigInteger, nullable=False),
    Column("block_height", BigInteger, nullable=False),
    Column("unix_time_us", BigInteger, nullable=False),
    Column("genesis_hash", String(44), nullable=True),
)

# Blockhashes handed out, so a transaction signed before a restart is still
# accepted until its last valid block height, as on a cluster.
chain_blockhashes = Table(
    "chain_blockhashes",
    metadata,
    Column("blockhash", String(44), primary_key=True),
    Column("block_height", BigInteger, nullable=False, index=True),
)

chain_transactions = Table(
    "chain_transactions",
    metadata,
    Column("signature", String(88), primary_key=True),
    Column("slot", BigInteger, nullable=False),
    Column("error", Text, nullable=True),
    Column("fee", BigInteger, nullable=False),
    Column("compute_units", BigInteger, nullable=False),
    Column("logs", Text, nullable=False),
    Column("raw", LargeBinary, nullable=False),
    # Kept only by a chain served over JSON-RPC (`EmbeddedChain(history=True)`).
    Column("block_time", BigInteger, nullable=True),
    Column("details", Text, nullable=True),
)

# getSignaturesForAddress: every address a transaction loaded, newest by id.
chain_address_signatures = Table(
    "chain_address_signatures",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("address", String(44), nullable=False),
    Column("signature", String(88), nullable=False),
    Column("slot", BigInteger, nullable=False),
    Index("ix_chain_address_signatures_address_id", "address", "id"),
)

# -- settlement: on-chain work and tokens --------------------------------------
settlement_config = Table(
    "settlement_config",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("stablecoin_mint", String(44), nullable=False),
    Column("stablecoin_decimals", SmallInteger, nullable=False),
    Column("stablecoin_program", String(44), nullable=False),
)

# The exactly-once outbox: a transaction is stored signed before it is sent
# and only re-signed once its blockhash has provably expired unlanded.
chain_outbox = Table(
    "chain_outbox",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("kind", String(32), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("state", SmallInteger, nullable=False, index=True),
    Column("raw", LargeBinary, nullable=True),
    Column("signature", String(88), nullable=True, index=True),
    Column("last_valid_block_height", BigInteger, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("slot", BigInteger, nullable=True),
    Column("error", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    # The claim of the replica driving the row (see chain/outbox.py).
    Column("fence", BigInteger, nullable=False, server_default="0"),
    Column("lease_owner", String(128), nullable=True),
    Column("lease_until_us", BigInteger, nullable=True),
    Index("ix_chain_outbox_kind_ref", "kind", "ref", unique=True),
)

use_case_tokens = Table(
    "use_case_tokens",
    metadata,
    Column("mint", String(44), primary_key=True),
    Column("utility_namespace", ForeignKey("partners.namespace"), nullable=False, index=True),
    Column("program_id", ForeignKey("programs.program_id"), nullable=False, index=True),
    Column("name", String(32), nullable=False),
    Column("symbol", String(10), nullable=False),
    Column("uri", String(200), nullable=False),
    Column("unit", SmallInteger, nullable=False),
    Column("decimals", SmallInteger, nullable=False),
    Column("redemption_value", BigInteger, nullable=False),
    Column("interest_rate_bps", Integer, nullable=True),
    Column("reserve_account", String(44), nullable=False),
    Column("stablecoin_mint", String(44), nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

redemptions = Table(
    "redemptions",
    metadata,
    Column("redemption_id", String(36), primary_key=True),
    Column("mint", ForeignKey("use_case_tokens.mint"), nullable=False, index=True),
    Column("holder", String(44), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("payout", BigInteger, nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("last_valid_block_height", BigInteger, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("signature", String(88), nullable=True),
    Column("error", Text, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    # The bill the payout pays into the utility's treasury instead of the holder.
    Column("bill_id", BigInteger, nullable=True),
)

registry_anchors = Table(
    "registry_anchors",
    metadata,
    Column("tree_size", BigInteger, primary_key=True, autoincrement=False),
    Column("root_hash", LargeBinary(32), nullable=False),
    Column("signature", String(88), nullable=False),
    Column("slot", BigInteger, nullable=False),
    Column("authority", String(44), nullable=False),
    Column("anchored_at_us", BigInteger, nullable=False),
)

# -- settlement: readings ------------------------------------------------------
# Per device: what the next batch is checked against, and the head of the
# device's hash chain of stored readings.
reading_devices = Table(
    "reading_devices",
    metadata,
    Column("der_id", ForeignKey("devices.der_id"), primary_key=True),
    Column("has_baseline", SmallInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_interval_end", BigInteger, nullable=False),
    Column("import_wh", BigInteger, nullable=False),
    Column("export_wh", BigInteger, nullable=False),
    Column("head_hash", LargeBinary(32), nullable=False),
    Column("stored", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

# Accepted readings as their original signed bytes, hash-chained per device:
# chain_hash = SHA-256(previous chain_hash || payload || signature).
# Keyed by the device's registry number (devices.registered_seq, unique and
# never reused) rather than its 44-character der_id: a batch from thousands
# of devices inserts at one place per device all over this key, so its index
# must stay small to stay cached as the table grows. The payload's SHA-256,
# needed only to tell a replay from a conflict, is computed when needed.
readings = Table(
    "readings",
    metadata,
    Column("device", BigInteger, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("covered_from", BigInteger, nullable=False),
    Column("interval_end", BigInteger, nullable=False, index=True),
    Column("import_wh", BigInteger, nullable=False),
    Column("export_wh", BigInteger, nullable=False),
    Column("flags", SmallInteger, nullable=False),
    Column("missing", BigInteger, nullable=False),
    Column("payload", LargeBinary(72), nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("chain_hash", LargeBinary(32), nullable=False),
    Column("received_at_us", BigInteger, nullable=False),
    Column("batch_id", BigInteger, nullable=True),
)

# -- settlement: oracles, programs, ledger, payouts, events --------------------

# One row per SubmitReadings batch: its counts and the W3C traceparent of the
# span that stored it, so the credits and payouts it leads to join its trace.
reading_batches = Table(
    "reading_batches",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("batch_ref", String(64), nullable=False),
    Column("vendor_namespace", String(253), nullable=False),
    Column("accepted", Integer, nullable=False),
    Column("rejected", Integer, nullable=False),
    Column("trace_parent", String(64), nullable=False),
    Column("received_at_us", BigInteger, nullable=False),
)

# Versions are rows: a tariff is never edited, a new version takes over.
tariffs = Table(
    "tariffs",
    metadata,
    Column("tariff_id", String(320), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("utility_namespace", ForeignKey("partners.namespace"), nullable=False, index=True),
    Column("time_zone", String(64), nullable=False),
    Column("effective_from", String(10), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("published_at_us", BigInteger, nullable=False),
)

price_feeds = Table(
    "price_feeds",
    metadata,
    Column("feed_id", String(320), primary_key=True),
    Column("utility_namespace", ForeignKey("partners.namespace"), nullable=False, index=True),
    Column("oracle_key", String(44), nullable=False),
    Column("max_age_seconds", Integer, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

# Signed publications exactly as received, and the points they carried.
price_publications = Table(
    "price_publications",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("feed_id", ForeignKey("price_feeds.feed_id"), nullable=False, index=True),
    Column("points", LargeBinary, nullable=False),
    Column("signature", LargeBinary(64), nullable=False),
    Column("received_at_us", BigInteger, nullable=False),
)

price_points = Table(
    "price_points",
    metadata,
    Column("feed_id", String(320), primary_key=True),
    Column("at", BigInteger, primary_key=True, autoincrement=False),
    Column("price_micro_per_kwh", BigInteger, nullable=False),
    Column("carbon_g_per_kwh", BigInteger, nullable=False),
    Column("publication_id", BigInteger, nullable=False),
)

program_settlements = Table(
    "program_settlements",
    metadata,
    Column("program_id", ForeignKey("programs.program_id"), primary_key=True),
    Column("utility_namespace", String(253), nullable=False, index=True),
    Column("version", Integer, nullable=False),
    Column("kind", SmallInteger, nullable=False),
    Column("mint", ForeignKey("use_case_tokens.mint"), nullable=False),
    Column("tariff_id", String(320), nullable=False),
    Column("price_feed_id", String(320), nullable=False),
    Column("split", Text, nullable=False),
    Column("hold_reason", Text, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    Column("dr_includes_exports", SmallInteger, nullable=False, server_default="0"),
)

# Per (program, device): the next reading to price. `carry` is unused since
# remainders are carried per receiving party (party_carries); always "0".
pricing_cursors = Table(
    "pricing_cursors",
    metadata,
    Column("program_id", String(320), primary_key=True),
    Column("der_id", String(44), primary_key=True),
    Column("next_seq", BigInteger, nullable=False),
    Column("carry", String(40), nullable=False),
)

# Per (receiving wallet, token): the open rounding remainder, in units of
# 1 / denominator (the token's pricing denominator, fixed per mint), so each
# party is paid floor(exact sum of its shares) however credits are batched.
party_carries = Table(
    "party_carries",
    metadata,
    Column("wallet", String(44), primary_key=True),
    Column("mint", String(44), primary_key=True),
    Column("carry", String(48), nullable=False),
    Column("denominator", String(48), nullable=False),
)

ledger_entries = Table(
    "ledger_entries",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("ref", String(128), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

# Signed amounts; the lines of one entry sum to zero. Accounts:
# issued:<program>, pending:<wallet>, paid:<wallet>.
ledger_lines = Table(
    "ledger_lines",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("entry_id", BigInteger, nullable=False, index=True),
    # Billing's receivables name the program and the customer's account.
    Column("account", String(480), nullable=False),
    Column("mint", String(44), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Index("ix_ledger_lines_mint_account", "mint", "account"),
)

credits = Table(
    "credits",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("program_id", String(320), nullable=False, index=True),
    Column("kind", SmallInteger, nullable=False),
    Column("der_id", String(44), nullable=False, index=True),
    Column("party", SmallInteger, nullable=False),
    Column("wallet", String(44), nullable=False, index=True),
    Column("mint", String(44), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("seq_first", BigInteger, nullable=False),
    Column("seq_last", BigInteger, nullable=False),
    Column("energy_wh", BigInteger, nullable=False),
    Column("estimated_wh", BigInteger, nullable=False),
    Column("dr_event_id", String(36), nullable=False),
    Column("entry_id", BigInteger, nullable=False),
    Column("payout_id", BigInteger, nullable=True, index=True),
    Column("trace_parent", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    # How the amount was made: the party's basis points, its exact share and
    # its remainder after, both in units of 1 / denominator; the interval covered.
    Column("share_bps", Integer, nullable=False, server_default="10000"),
    Column("exact_share", String(48), nullable=False, server_default="0"),
    Column("carry_after", String(48), nullable=False, server_default="0"),
    Column("denominator", String(48), nullable=False, server_default="1"),
    Column("interval_start", BigInteger, nullable=False, server_default="0"),
    Column("interval_end", BigInteger, nullable=False, server_default="0"),
)

settlements = Table(
    "settlements",
    metadata,
    Column("settlement_id", String(36), primary_key=True),
    Column("state", SmallInteger, nullable=False),
    Column("transactions", Integer, nullable=False),
    Column("payouts", Integer, nullable=False),
    Column("credits", Integer, nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("digest", LargeBinary(32), nullable=False),
    Column("trace_parent", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

payouts = Table(
    "payouts",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("settlement_id", ForeignKey("settlements.settlement_id"), nullable=False, index=True),
    Column("tx_index", Integer, nullable=False),
    Column("wallet", String(44), nullable=False, index=True),
    Column("mint", String(44), nullable=False),
    Column("program_id", String(320), nullable=False),
    Column("amount", BigInteger, nullable=False),
    Column("credits", Integer, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("signature", String(88), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

# Token accounts known to exist, so payouts only create the ones missing.
token_accounts = Table(
    "token_accounts",
    metadata,
    Column("wallet", String(44), primary_key=True),
    Column("mint", String(44), primary_key=True),
)

dr_events = Table(
    "dr_events",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("program_id", ForeignKey("programs.program_id"), nullable=False, index=True),
    Column("start_s", BigInteger, nullable=False),
    Column("end_s", BigInteger, nullable=False),
    Column("incentive", BigInteger, nullable=False),
    Column("method", String(64), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
)

dr_results = Table(
    "dr_results",
    metadata,
    Column("event_id", String(36), primary_key=True),
    Column("der_id", String(44), primary_key=True),
    Column("baseline_wh", BigInteger, nullable=False),
    Column("actual_wh", BigInteger, nullable=False),
    Column("performance_wh", BigInteger, nullable=False),
    Column("adjustment_bps", Integer, nullable=False),
    Column("baseline_days", Text, nullable=False),
    Column("intervals", Text, nullable=False),
    Column("credited", BigInteger, nullable=False),
    Column("note", Text, nullable=False),
    Column("computed_at_us", BigInteger, nullable=False),
)

# Settlement events for utility backends, appended under the head-row lock
# (as the registry and route logs are) so cursors never skip one.
settlement_event_head = Table(
    "settlement_event_head",
    metadata,
    Column("id", SmallInteger, primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# Events committed by writers and not yet given a cursor (see event_repo).
settlement_event_staging = Table(
    "settlement_event_staging",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("utility_namespace", String(253), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("at_us", BigInteger, nullable=False),
)

settlement_events = Table(
    "settlement_events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("utility_namespace", String(253), nullable=False, index=True),
    Column("body", LargeBinary, nullable=False),
    Column("at_us", BigInteger, nullable=False),
)


# -- billing ---------------------------------------------------------------------

# A program's billing plan; versions are rows, the newest applies to periods
# not yet issued.
billing_plans = Table(
    "billing_plans",
    metadata,
    Column("program_id", String(320), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("utility_namespace", String(253), nullable=False, index=True),
    Column("regime", SmallInteger, nullable=False),
    Column("time_zone", String(64), nullable=False),
    Column("cycle_day", SmallInteger, nullable=False),
    Column("true_up_month", SmallInteger, nullable=False),
    Column("surplus_rate", BigInteger, nullable=False),
    Column("tax_bps", Integer, nullable=False),
    Column("urdb_json", Text, nullable=False),
    Column("urdb_label", String(200), nullable=False),
    Column("tariff_name", Text, nullable=False),
    # The first billed date (local); the first version fixes it.
    Column("bills_from", String(10), nullable=False),
    # Continuous autopay: collect an open bill once this much is due (0: at issue only).
    Column("collect_threshold", BigInteger, nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    # Past-due retry policy: this many more attempts, this far apart.
    Column("payment_retries", SmallInteger, nullable=False, server_default="0"),
    Column("retry_interval_s", Integer, nullable=False, server_default="86400"),
    # Whether customers may pay bills with the utility's use-case tokens.
    Column("accepts_tokens", SmallInteger, nullable=False, server_default="0"),
)

# Issued bills, final: `body` is the bill as issued (lines, exact totals and
# what it carries to the account's next bill), JSON.
bills = Table(
    "bills",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("program_id", String(320), nullable=False),
    Column("account_ref", String(128), nullable=False),
    Column("period_start", String(10), nullable=False),
    Column("period_end", String(10), nullable=False),
    Column("plan_version", Integer, nullable=False),
    Column("body", Text, nullable=False),
    Column("amount_due", BigInteger, nullable=False),
    Column("issued_at_us", BigInteger, nullable=False),
    # billing_pb2.BillState; the payment's transfer, or why it was not collected.
    Column("state", SmallInteger, nullable=False, index=True),
    Column("payment_signature", String(88), nullable=True),
    Column("payment_reason", Text, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    # Collection attempts made (autopay), and when a past-due bill is next tried.
    Column("attempts", SmallInteger, nullable=False, server_default="0"),
    Column("retry_at_us", BigInteger, nullable=True),
    # billing_pb2.PaymentMethod of the payment that paid it.
    Column("payment_method", SmallInteger, nullable=False, server_default="0"),
    Index("ix_bills_program_account_period", "program_id", "account_ref", "period_start", unique=True),
)

# Pay-by-request: one Solana Pay transfer request per bill, with the
# reference key that finds its payment on chain.
bill_payment_requests = Table(
    "bill_payment_requests",
    metadata,
    Column("bill_id", BigInteger, primary_key=True, autoincrement=False),
    Column("reference", String(44), nullable=False, unique=True),
    Column("recipient", String(44), nullable=False),
    Column("amount", BigInteger, nullable=False),
    # 1 open, 2 paid (signature is the transfer), 3 closed (paid otherwise).
    Column("state", SmallInteger, nullable=False, index=True),
    Column("signature", String(88), nullable=True),
    Column("created_at_us", BigInteger, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
)

# An account's autopay: the Approve prepared for (or signed by) its holder.
billing_autopay = Table(
    "billing_autopay",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("program_id", String(320), nullable=False),
    Column("account_ref", String(128), nullable=False),
    Column("holder", String(44), nullable=False),
    Column("token_account", String(44), nullable=False),
    Column("delegate", String(44), nullable=False),
    Column("allowance", BigInteger, nullable=False),
    Column("message", LargeBinary, nullable=False),
    Column("last_valid_block_height", BigInteger, nullable=False),
    Column("state", SmallInteger, nullable=False),
    Column("signature", String(88), nullable=True),
    Column("error", Text, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    Index("ix_billing_autopay_program_account", "program_id", "account_ref", unique=True),
)

# Continuous autopay: each transfer collected from an open bill while it accrues.
bill_collections = Table(
    "bill_collections",
    metadata,
    Column("id", _ID, primary_key=True, autoincrement=True),
    Column("program_id", String(320), nullable=False),
    Column("account_ref", String(128), nullable=False),
    Column("period_start", String(10), nullable=False),
    Column("period_end", String(10), nullable=False),
    Column("amount", BigInteger, nullable=False),
    # 1 collecting (stored and sent), 2 paid, 3 failed (nothing moved).
    Column("state", SmallInteger, nullable=False),
    Column("signature", String(88), nullable=True),
    Column("reason", Text, nullable=False),
    Column("updated_at_us", BigInteger, nullable=False),
    Index("ix_bill_collections_account_period", "program_id", "account_ref", "period_start"),
)

# The web app's sign-in: one-time challenges (a wallet's Sign-In-With-Solana
# message, or a staff login code issued to a partner's certificate), and the
# sessions they open. Only hashes of the secrets are stored, so a database
# reader cannot take over a session. Shared by every replica.
web_challenges = Table(
    "web_challenges",
    metadata,
    # SHA-256 of the nonce or login code.
    Column("secret_hash", LargeBinary(32), primary_key=True),
    # "wallet" or "staff".
    Column("kind", String(8), nullable=False),
    # The wallet address, or the partner identity URI.
    Column("subject", String(400), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("message", Text, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False, index=True),
    Column("used_at_us", BigInteger, nullable=True),
)

web_sessions = Table(
    "web_sessions",
    metadata,
    Column("token_hash", LargeBinary(32), primary_key=True),
    Column("kind", String(8), nullable=False),
    Column("subject", String(400), nullable=False),
    Column("serial", String(40), nullable=False),
    Column("created_at_us", BigInteger, nullable=False),
    Column("expires_at_us", BigInteger, nullable=False, index=True),
    Column("ended_at_us", BigInteger, nullable=True),
)
