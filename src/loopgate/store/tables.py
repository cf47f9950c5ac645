"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/versions`` create exactly these.

JSON columns are Text holding orjson-encoded documents: the service encodes once, and nothing parses
them on the write path. A log's bulky payload (inputs, messages, provider request/responses, ...) lives in
``logs.payload`` with long strings replaced by references into ``blobs`` (see ``content.py``), so content
that repeats across logs -- a system prompt, a shared history -- is stored once.
"""

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

metadata = MetaData()

ID = String(40)

organizations = Table(
    "organizations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("name", String(255), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(255), nullable=True),
    # sha256 of the key; the key itself is shown once and never stored.
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

projects = Table(
    "projects",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # JSON list of FeedbackTypeModel: the project's custom feedback types and their allowed values.
    Column("feedback_types", Text, nullable=True),
    Column("directory_id", ID, nullable=True),
    UniqueConstraint("org_id", "name", name="uq_projects_org_name"),
)

model_configs = Table(
    "model_configs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    # sha256 of the canonical parameter set: same parameters in a project -> same config.
    Column("config_hash", String(64), nullable=False),
    Column("name", String(255), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    # model | tool (configs of POST /logs may be tool configs)
    Column("config_type", String(16), nullable=False, server_default="model"),
    UniqueConstraint("project_id", "config_hash", name="uq_model_configs_project_hash"),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("reference_id", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("org_id", "reference_id", name="uq_sessions_org_reference"),
    Index("ix_sessions_org_created_id", "org_id", "created_at", "id"),
)

logs = Table(
    "logs",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("project_id", ID, ForeignKey("projects.id"), nullable=True),
    Column("session_id", ID, ForeignKey("sessions.id"), nullable=True),
    Column("parent_id", ID, nullable=True),
    Column("reference_id", String(255), nullable=True),
    Column("config_id", ID, ForeignKey("model_configs.id"), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("source", String(255), nullable=True),
    Column("source_datapoint_id", String(64), nullable=True),
    Column("environment", String(255), nullable=True),
    Column("user", String(255), nullable=True),
    Column("save", Boolean, nullable=False),
    # complete | partial (stream cut short by the client) | error
    Column("status", String(16), nullable=False),
    Column("sample_index", Integer, nullable=False),
    Column("output", Text, nullable=True),
    Column("finish_reason", String(32), nullable=True),
    Column("error", Text, nullable=True),
    Column("prompt_tokens", Integer, nullable=True),
    Column("output_tokens", Integer, nullable=True),
    Column("provider_latency", Float, nullable=True),
    Column("metadata", Text, nullable=True),
    Column("payload", Text, nullable=True),
    Column("judgment", Text, nullable=True),
    Column("stdout", Text, nullable=True),
    Column("duration", Float, nullable=True),
    Column("prompt_cost", Float, nullable=True),
    Column("output_cost", Float, nullable=True),
    # Retries of the upstream call behind a generated log (null for logs posted to /logs).
    Column("provider_retries", Integer, nullable=True),
    # What each index serves: migrations/versions/0004_list_indexes.py and 0005_search_and_counts.py.
    # Search indexes live outside this metadata: PostgreSQL's trigram indexes on logs.output, the inputs
    # expression and blobs.data; SQLite's FTS5 table ``logs_search`` and its triggers (0005).
    Index("ix_logs_project_org_created", "project_id", "org_id", "created_at", "id"),
    Index("ix_logs_session_project", "session_id", "project_id", "created_at"),
    Index("ix_logs_parent", "parent_id"),
    # Partial on both backends, WHERE reference_id IS NOT NULL (revision 0005), which makes it smaller
    # and not stricter: NULLs never collide in a unique index. The condition is left out here because a
    # dialect's keyword (``postgresql_where``) imports that dialect, ~40 ms of every start on SQLite.
    Index("uq_logs_org_reference", "org_id", "reference_id", unique=True),
    Index("ix_logs_config_project", "config_id", "created_at", "project_id", "org_id", "id"),
    Index("ix_logs_created", "created_at"),
    # Also outside this metadata (revision 0008), for the OTLP export's commit-ordered cursor
    # (store/exports.py): on PostgreSQL the column ``export_xid`` (xid8, default pg_current_xact_id(): the
    # inserting transaction) and its index; on SQLite the trigger ``logs_export_tail``, which lowers the
    # cursors when the newest logs are deleted (their rowids would be handed out again). A migration that
    # rebuilds ``logs`` on SQLite must create that trigger again, as it must the search triggers (0005).
    # The writers insert every column named here, so a column with a default must stay out of it.
)

# Logs per (organization, project, config version), '' for a NULL project or config: the exact totals of
# the lists without counting rows (tallies.py). Triggers on ``logs`` maintain it (revision 0005).
log_tallies = Table(
    "log_tallies",
    metadata,
    Column("org_id", ID, primary_key=True),
    Column("project_id", ID, primary_key=True),
    Column("config_id", ID, primary_key=True),
    Column("logs", Integer, nullable=False),
    Index("ix_log_tallies_config", "config_id"),
)

environments = Table(
    "environments",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("name", String(255), nullable=False),
    # default (the organization's default environment, "production") | other
    Column("tag", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("org_id", "name", name="uq_environments_org_name"),
)

deployments = Table(
    "deployments",
    metadata,
    Column("project_id", ID, ForeignKey("projects.id"), primary_key=True),
    Column("environment_id", ID, ForeignKey("environments.id"), primary_key=True),
    Column("config_id", ID, ForeignKey("model_configs.id"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

feedback = Table(
    "feedback",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("log_id", ID, ForeignKey("logs.id"), nullable=False),
    Column("type", String(255), nullable=False),
    Column("value", Text, nullable=True),  # JSON: label, text, number, bool or list of labels
    Column("user", String(255), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_feedback_log_type_created", "log_id", "type", "created_at"),
    Index("ix_feedback_org_type", "org_id", "type"),
    Index("ix_feedback_type_value", "type", "value", "log_id"),
)

datasets = Table(
    "datasets",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    # The project it was created in; NULL once that project is deleted (the dataset stays, see projects.py).
    Column("project_id", ID, ForeignKey("projects.id"), nullable=True),
    Column("name", String(255), nullable=False),
    Column("description", String(255), nullable=False),
    # Kept in the transaction that adds or deletes datapoints, so DatasetResponse never counts rows.
    Column("datapoint_count", Integer, nullable=False),
    # v4 commits a new version per change of the datapoints; no response shows it, a counter is enough.
    Column("version", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("ix_datasets_org_created", "org_id", "created_at", "id"),
    Index("ix_datasets_project", "project_id"),
)

datapoints = Table(
    "datapoints",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    # The dataset version that added it and its place in that request: the order of the dataset's list.
    Column("version", Integer, nullable=False),
    Column("position", Integer, nullable=False),
    Column("inputs", Text, nullable=True),  # JSON object of strings
    Column("messages", Text, nullable=True),  # JSON list of ChatMessageWithToolCall
    Column("target", Text, nullable=True),  # JSON object
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("dataset_id", "version", "position", name="uq_datapoints_dataset_order"),
)

evaluators = Table(
    "evaluators",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    # New on every update: an evaluation result names the version of the evaluator that produced it.
    Column("version_id", ID, nullable=False),
    Column("name", String(255), nullable=False),
    Column("description", String(255), nullable=False),
    Column("type", String(16), nullable=False),  # python / llm / human / external
    Column("arguments_type", String(16), nullable=False),
    Column("return_type", String(16), nullable=False),
    Column("code", Text, nullable=True),  # run only where allowed (service/code_evaluators.py)
    Column("model_config", Text, nullable=True),  # JSON: the ModelConfigCompletionRequest as sent
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Where the evaluator's judgments are logged, made on its first (migration 0010). No foreign key: a
    # deleted project is replaced by a new one at the next judgment.
    Column("logging_project_id", ID, nullable=True),
    Index("ix_evaluators_org_created", "org_id", "created_at", "id"),
    UniqueConstraint("version_id", name="uq_evaluators_version"),
)

evaluations = Table(
    "evaluations",
    metadata,
    Column("id", ID, primary_key=True),
    Column("org_id", ID, ForeignKey("organizations.id"), nullable=False),
    # Deleting the project deletes its evaluations (and its configs, which they evaluate): see projects.py.
    Column("project_id", ID, ForeignKey("projects.id"), nullable=False),
    Column("config_id", ID, ForeignKey("model_configs.id"), nullable=False),
    # A dataset in use cannot be deleted (409), so the snapshot below always has its rows.
    Column("dataset_id", ID, ForeignKey("datasets.id"), nullable=False),
    # datasets.version at creation: the snapshot is the datapoints whose version is at most this.
    Column("dataset_version", Integer, nullable=False),
    Column("name", String(255), nullable=True),
    # pending (a generated run not started yet) / running / completed; cancelled is never set
    Column("status", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # Runs loopgate generates (hl_generated=true) and the lease of the process running one: see
    # store/evaluation_runs.py and migration 0009.
    Column("hl_generated", Boolean, nullable=False, server_default=false()),
    Column("owner", String(255), nullable=True),
    Column("lease_until", Float, nullable=False, server_default="0"),
    Column("generated_at", DateTime(timezone=True), nullable=True),
    Index("ix_evaluations_project_created", "project_id", "created_at", "id"),
    Index("ix_evaluations_dataset", "dataset_id"),
    Index("ix_evaluations_unfinished", "hl_generated", "generated_at"),
)

evaluation_evaluators = Table(
    "evaluation_evaluators",
    metadata,
    Column("evaluation_id", ID, ForeignKey("evaluations.id"), primary_key=True),
    # An evaluator in use cannot be deleted (409): its results and the aggregates need it.
    Column("evaluator_id", ID, ForeignKey("evaluators.id"), primary_key=True),
    Column("position", Integer, nullable=False),
    Index("ix_evaluation_evaluators_evaluator", "evaluator_id"),
)

evaluation_logs = Table(
    "evaluation_logs",
    metadata,
    # One log per datapoint of a run. No foreign keys to logs or datapoints: both can be deleted by their
    # own endpoints (DELETE /logs, 0.5.18's DELETE /datapoints), which then read as absent.
    Column("evaluation_id", ID, ForeignKey("evaluations.id"), primary_key=True),
    Column("datapoint_id", ID, primary_key=True),
    Column("log_id", ID, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("evaluation_id", "log_id", name="uq_evaluation_logs_log"),
    Index("ix_evaluation_logs_log", "log_id"),  # a log's runs, its batch_ids (migration 0009)
)

evaluation_results = Table(
    "evaluation_results",
    metadata,
    Column("id", ID, primary_key=True),
    Column("evaluation_id", ID, ForeignKey("evaluations.id"), nullable=False),
    Column("log_id", ID, nullable=False),
    Column("evaluator_id", ID, ForeignKey("evaluators.id"), nullable=False),
    Column("evaluator_version_id", ID, nullable=False),
    Column("value", Text, nullable=True),  # JSON: true/false or a number
    # The value as a number (true 1, false 0), so an aggregate is one AVG() in the database.
    Column("score", Float, nullable=True),
    Column("error", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    # The log of the judgment that gave the result, for the evaluators loopgate runs (migration 0010).
    Column("evaluator_log_id", ID, nullable=True),
    # Posting a result again for the same log and evaluator replaces it.
    UniqueConstraint("evaluation_id", "log_id", "evaluator_id", name="uq_evaluation_results_one"),
    # GET /logs' evaluator-<id>_filter: the evaluator's results; a log's evaluation_results (migration 0010).
    Index("ix_evaluation_results_evaluator", "evaluator_id"),
    Index("ix_evaluation_results_log", "log_id"),
)

# Where each exporter of committed logs stands (one row per exporter; today only "otlp"), and which process
# holds the right to export (a lease: one exporter across ``--workers N`` and servers sharing a database).
export_cursors = Table(
    "export_cursors",
    metadata,
    Column("name", String(40), primary_key=True),
    # The last exported log's place in commit order: its rowid on SQLite; on PostgreSQL its transaction id
    # (logs.export_xid), with ``log_id`` ordering the logs of one transaction.
    Column("position", BigInteger, nullable=False),
    Column("log_id", ID, nullable=False),
    # Bumped by the SQLite trigger when the newest logs are deleted: a batch read before that cannot move
    # the cursor (rowids above the new newest log may be handed out again).
    Column("generation", Integer, nullable=False),
    Column("owner", String(255), nullable=True),
    Column("lease_until", Float, nullable=False),  # unix seconds
    Column("exported", BigInteger, nullable=False),  # spans the collector accepted, all time
    Column("dropped", BigInteger, nullable=False),  # spans in batches the collector refused (4xx)
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

blobs = Table(
    "blobs",
    metadata,
    Column("hash", String(32), primary_key=True),
    Column("data", Text, nullable=False),
)
