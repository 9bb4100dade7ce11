"""The index schema as an ordered list of migrations.

The index is a cache derived from the refs, but a schema change should not
force a full rebuild, so each version is a migration applied in order and
recorded in schema_migrations.  Never edit a released migration: add one.
"""
from __future__ import annotations

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "initial", """
CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE snapshots (
    snapshot_id VARCHAR PRIMARY KEY, ref VARCHAR, parent VARCHAR, time TIMESTAMP,
    source VARCHAR, origin VARCHAR, scope VARCHAR, n_manifests INTEGER, stats JSON);
CREATE TABLE manifests (
    label VARCHAR PRIMARY KEY, manifest_id VARCHAR, type VARCHAR, source VARCHAR,
    workspace VARCHAR, entity VARCHAR);
CREATE TABLE projects (
    source VARCHAR, workspace VARCHAR, project VARCHAR, description VARCHAR, notes VARCHAR,
    public BOOLEAN, created_at TIMESTAMP, manifest_id VARCHAR, extra JSON);
CREATE TABLE experiments (
    exp_id VARCHAR PRIMARY KEY, source VARCHAR, workspace VARCHAR, project VARCHAR,
    experiment_key VARCHAR, name VARCHAR, created_at TIMESTAMP, started_at TIMESTAMP,
    ended_at TIMESTAMP, updated_at TIMESTAMP, state VARCHAR, archived BOOLEAN,
    manifest_id VARCHAR, extra JSON);
CREATE TABLE params (exp_id VARCHAR, name VARCHAR, value VARCHAR, raw JSON, origin VARCHAR);
CREATE TABLE metrics (
    exp_id VARCHAR, name VARCHAR, step BIGINT, epoch BIGINT, timestamp TIMESTAMP,
    value DOUBLE, context VARCHAR);
CREATE TABLE others (exp_id VARCHAR, name VARCHAR, value VARCHAR, raw JSON, timestamp TIMESTAMP);
CREATE TABLE tags (exp_id VARCHAR, tag VARCHAR);
CREATE TABLE system_details (exp_id VARCHAR, name VARCHAR, value JSON);
CREATE TABLE texts (
    exp_id VARCHAR, kind VARCHAR, name VARCHAR, object_id VARCHAR, size BIGINT, content VARCHAR);
CREATE TABLE assets (
    exp_id VARCHAR, asset_id VARCHAR, file_name VARCHAR, type VARCHAR, step BIGINT, epoch BIGINT,
    context VARCHAR, metadata JSON, object_id VARCHAR, size BIGINT, remote BOOLEAN, link VARCHAR,
    checksum VARCHAR, created_at TIMESTAMP, extra JSON);
CREATE TABLE artifacts (
    source VARCHAR, workspace VARCHAR, name VARCHAR, type VARCHAR, project VARCHAR,
    description VARCHAR, tags VARCHAR[], metadata JSON, manifest_id VARCHAR, extra JSON);
CREATE TABLE artifact_versions (
    source VARCHAR, workspace VARCHAR, artifact VARCHAR, version VARCHAR, aliases VARCHAR[],
    tags VARCHAR[], metadata JSON, state VARCHAR, created_at TIMESTAMP, experiment_key VARCHAR,
    extra JSON);
CREATE TABLE artifact_files (
    source VARCHAR, workspace VARCHAR, artifact VARCHAR, version VARCHAR, path VARCHAR,
    size BIGINT, object_id VARCHAR, remote BOOLEAN, link VARCHAR, checksum VARCHAR, metadata JSON);
CREATE TABLE registry_models (
    source VARCHAR, workspace VARCHAR, name VARCHAR, description VARCHAR, notes VARCHAR,
    public BOOLEAN, tags VARCHAR[], manifest_id VARCHAR, extra JSON);
CREATE TABLE registry_versions (
    source VARCHAR, workspace VARCHAR, model VARCHAR, version VARCHAR, stages VARCHAR[],
    status VARCHAR, tags VARCHAR[], comment VARCHAR, experiment_key VARCHAR,
    created_at TIMESTAMP, object_id VARCHAR, size BIGINT, extra JSON);
CREATE TABLE panels (
    source VARCHAR, workspace VARCHAR, panel_id VARCHAR, name VARCHAR, kind VARCHAR,
    object_id VARCHAR, size BIGINT, manifest_id VARCHAR, extra JSON);
CREATE TABLE push_ledger (
    destination VARCHAR, source_exp_id VARCHAR, source_manifest_id VARCHAR,
    dest_workspace VARCHAR, dest_project VARCHAR, dest_key VARCHAR, state VARCHAR,
    pushed_at TIMESTAMP, detail JSON,
    PRIMARY KEY (destination, source_exp_id));
"""),
    (2, "workspaces view", """
CREATE VIEW workspaces AS
    SELECT DISTINCT source, workspace FROM projects
    UNION SELECT DISTINCT source, workspace FROM experiments
    UNION SELECT DISTINCT source, workspace FROM artifacts
    UNION SELECT DISTINCT source, workspace FROM registry_models
    UNION SELECT DISTINCT source, workspace FROM panels;
"""),
]

# Workspaces, projects, artifacts, registry models and panels are keyed by (source, workspace, name), not
# by origin server: two Comet servers that both have `alice/demo`, fetched into one mirror, share one
# projects row (and one row per artifact/model/panel name); their experiments stay apart by key.  The
# labels already meet in the store (Mirror.current_manifests keys them by source and label), so keeping
# servers apart needs the origin in labels, rows and push/check selections, not a migration here;
# docs/migrate.md asks for one mirror per source server instead.

MIGRATIONS.append((3, "artifact versions and files name their project", """
ALTER TABLE artifact_versions ADD COLUMN project VARCHAR;
ALTER TABLE artifact_files ADD COLUMN project VARCHAR;
"""))
# W&B artifact collections belong to a project: two projects of one entity may both
# have a "model", so (source, workspace, project, name) identifies an artifact.

MIGRATIONS.append((4, "exact values: metric text beside the double", """
ALTER TABLE metrics ADD COLUMN text VARCHAR;
UPDATE manifests SET manifest_id = '';
"""))
# metrics.value stays the DOUBLE for SQL; metrics.text is the exact value where the double's
# canonical text (model.double_text) does not reproduce it: an integer, a long integer, a
# non-canonical literal, a string-valued metric (value NULL).  Rows ingested before this
# migration hold parsed values (params' raw, metadata re-serialized), so every manifest is
# marked stale and the next refresh derives its rows again.

MIGRATIONS.append((5, "metric status: which metrics are only a sample", """
CREATE VIEW metric_status AS
SELECT m.exp_id, m.name, count(*) AS points,
    coalesce(list_contains(from_json(json_extract(e.extra, '$.sampled_metrics'), '["VARCHAR"]'), m.name),
             false) AS sampled,
    CASE WHEN list_contains(from_json(json_extract(e.extra, '$.full_fidelity_metrics'), '["VARCHAR"]'), m.name)
              THEN 'total-fidelity'
         WHEN list_contains(from_json(json_extract(e.extra, '$.sampled_metrics'), '["VARCHAR"]'), m.name)
              THEN 'sample'
         ELSE 'complete' END AS source
FROM metrics m JOIN experiments e USING (exp_id)
GROUP BY m.exp_id, m.name, e.extra;
"""))
# Comet answers at most 15,000 values per metric (sources/comet/full_metrics.py): a metric at that
# count was read whole from its total-fidelity files ('total-fidelity'), or is kept as the sample
# (sampled = true, source 'sample'); every other metric is 'complete'.  A view over the rows the
# normalizer derives (experiments.extra names the two lists), so reindex gives the same answer.

LATEST = MIGRATIONS[-1][0]

# Tables holding one experiment's rows, keyed by exp_id: replaced whole on each ingest.
EXPERIMENT_TABLES = ("experiments", "params", "metrics", "others", "tags", "system_details",
                     "texts", "assets")
