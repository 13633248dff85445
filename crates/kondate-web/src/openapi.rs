//! The OpenAPI 3.1 document for every endpoint the router serves.
//!
//! The operations' prose (summaries, parameters, responses) is written here as data: the
//! domain types live in crates that must not depend on an HTTP documentation library. What
//! each route needs — its scope, whether it is audited — is not written here: it is taken
//! from the router's own table when the document is made, so it cannot drift. Tests check
//! that every route has its prose and that nothing else is described.

use std::sync::Arc;

use axum::Json;
use axum::extract::Extension;
use serde_json::{Value, json};

use crate::access::RouteDoc;

/// The router's table, reachable from the document's handler.
#[derive(Clone)]
pub struct Docs(pub Arc<Vec<RouteDoc>>);

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The operations' prose, one path at a time (one `json!` each keeps the macro within its
/// recursion limit).
fn written_paths() -> serde_json::Map<String, Value> {
    let mut paths = serde_json::Map::new();
    paths.insert("/readyz".into(), json!({"get": {"summary": "Readiness: whether the state database, service database, object store and warehouse each answer within 5 s", "responses": {"200": {"description": "`{status: ready, parts: {state_database, service_database, store, warehouse: ok}}`"}, "503": {"description": "a part is `unavailable` (the reason is in the server's log)"}}}}));
    paths.insert("/healthz".into(), json!({"get": {"summary": "Liveness and state-database check", "responses": {"200": {"description": "healthy"}, "503": {"description": "the state database does not answer"}}}}));
    paths.insert("/metrics".into(), json!({"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}}));
    paths.insert("/v1/openapi.json".into(), json!({"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}}));
    paths.insert("/v1/queries".into(), json!({"post": {
                "summary": "Submit a read-only SELECT; the result is written to the object store as UNLOAD-format gzip CSV parts",
                "requestBody": {"required": true, "content": {
                    "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Submit"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/Submit"}}}},
                "responses": {
                    "201": {"description": "accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Query"}}}},
                    "400": error_response("not a single read-only SELECT, malformed SQL, or placeholders and values differ"),
                    "429": error_response("the token's concurrency limit and queue are full; retry later")}}}));
    paths.insert("/v1/queries/{id}".into(), json!({"get": {
                "summary": "A query's status and, on success, its signed data URLs",
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}},
                    {"name": "fields", "in": "query", "schema": {"type": "string"}, "description": "comma-separated: __default__, manifest_file_url, select_stmt, created_at, s3_prefix, record_count, format (also accepted as a form body)"}],
                "responses": {
                    "200": {"description": "the query", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Query"}}}},
                    "400": error_response("bad id or unknown field"),
                    "404": error_response("no such query for this token")}}}));
    paths.insert("/v1/objects/{key}".into(), json!({"get": {
                "summary": "Download a result object of the local store through its signed URL",
                "parameters": [
                    {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "expires", "in": "query", "required": true, "schema": {"type": "integer"}},
                    {"name": "signature", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the object", "content": {"application/gzip": {}, "application/json": {}, "application/octet-stream": {}}},
                    "403": error_response("unsigned, tampered or expired URL"),
                    "404": error_response("the object no longer exists")}}}));
    paths.insert("/v1/labels".into(), json!({"get": {
                "summary": "The project's label sets (labels/*.toml) and their current revisions",
                "responses": {
                    "200": {"description": "`{label_sets: [{name, table, key, source, columns, revision, fingerprint, definition}]}`", "content": {"application/json": {}}}}}}));
    paths.insert("/v1/labels/{name}/revisions".into(), json!({"get": {
                "summary": "A label set's revisions, oldest first",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "`{name, revisions: [{revision, created_at, actor, fingerprint, rows_total, added, changed, removed, skipped_invalid, snapshot_key, migration}]}`", "content": {"application/json": {}}},
                    "404": error_response("no such label set")}}}));
    paths.insert("/v1/labels/{name}/revisions/{revision}/export".into(), json!({"get": {
                "summary": "A revision's rows, exactly as they were, as CSV or Parquet",
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "revision", "in": "path", "required": true, "schema": {"type": "integer"}},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "parquet"], "default": "csv"}}],
                "responses": {
                    "200": {"description": "the rows", "content": {"text/csv": {}, "application/vnd.apache.parquet": {}}},
                    "400": error_response("a bad format or revision number"),
                    "404": error_response("no such label set or revision")}}}));
    paths.insert("/v1/labels/{name}/sync".into(), json!({"post": {
                "summary": "Read the label set's source, validate it, and apply the difference to its table as a new revision",
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "skip_invalid", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "migrate", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {
                    "200": {"description": "the report: `{name, key, outcome (applied|unchanged|no_changes|dry_run), revision, fingerprint, rows, diff, rows_written, invalid, empty_rows, unnamed_columns, migration, snapshot_key}`", "content": {"application/json": {}}},
                    "400": error_response("invalid rows; nothing was written (the message lists them by row and cell)"),
                    "404": error_response("no such label set"),
                    "409": error_response("the definition changed (sync with migrate=true), or another sync holds the lock"),
                    "422": error_response("the source or the definition cannot be read")}}}));
    paths.insert("/v1/results/{name}".into(), json!({"post": {
                "summary": "Write rows into the declared result table `name` (results/NAME.toml): one bulk upsert keyed by the table's key, all rows or none",
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "model", "in": "query", "schema": {"type": "string"}, "description": "the model that produced the rows, NAME[@N|@ALIAS]"},
                    {"name": "run_id", "in": "query", "schema": {"type": "string"}},
                    {"name": "publish", "in": "query", "schema": {"type": "string", "enum": ["upsert", "swap"]}},
                    {"name": "prune", "in": "query", "schema": {"type": "boolean"}, "description": "remove the rows whose keys this write does not contain"},
                    {"name": "migrate", "in": "query", "schema": {"type": "boolean"}, "description": "add the nullable columns the declaration gained"}],
                "requestBody": {"required": true, "content": {
                    "text/csv": {}, "application/x-ndjson": {}, "application/vnd.apache.parquet": {}}},
                "responses": {
                    "200": {"description": "`{name, table, created, publish, rows, pruned}`", "content": {"application/json": {}}},
                    "400": error_response("a row that does not fit the declaration (the message names the row and column); nothing was written"),
                    "404": error_response("no such result table or model"),
                    "409": error_response("the declaration changed since the table was created"),
                    "415": error_response("a body that is not CSV, JSON lines or Parquet")}}}));
    paths.insert("/v1/runs".into(), json!({"get": {
                "summary": "Recent app runs, newest first",
                "parameters": [
                    {"name": "app", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50, "minimum": 1, "maximum": 10000}}],
                "responses": {
                    "200": {"description": "`{runs: [Run]}`", "content": {"application/json": {}}},
                    "400": error_response("a bad app name or limit")}}}));
    paths.insert("/v1/runs/{id}".into(), json!({"get": {
                "summary": "One run: app, attempt, status (running|succeeded|failed|timed_out|cancelled|lost), command, times, exit code, signal, peak memory, log key, error",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the run", "content": {"application/json": {}}},
                    "404": error_response("no such run")}}}));
    paths.insert("/v1/runs/{id}/logs".into(), json!({"get": {
                "summary": "The run's log, streamed: one line per output line, `TIME out|err TEXT`",
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "follow", "in": "query", "schema": {"type": "boolean"}, "description": "keep the response open until the run ends"},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "start at this byte"}],
                "responses": {
                    "200": {"description": "the log", "content": {"text/plain": {}}},
                    "404": error_response("no such run")}}}));
    let instance_id =
        json!({"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}});
    let job_name =
        json!({"name": "name", "in": "path", "required": true, "schema": {"type": "string"}});
    paths.insert("/v1/jobs".into(), json!({"get": {
                "summary": "Every job the caller may read: revision, load error, schedules, next fire time",
                "responses": {
                    "200": {"description": "`{jobs: [Job]}`", "content": {"application/json": {}}}}}}));
    paths.insert(
        "/v1/jobs/{name}".into(),
        json!({"get": {
                "summary": "One job, with its next five fire times",
                "parameters": [job_name],
                "responses": {
                    "200": {"description": "the job", "content": {"application/json": {}}},
                    "404": error_response("no such job")}}}),
    );
    paths.insert("/v1/jobs/{name}/instances".into(), json!({
        "get": {
                "summary": "The job's instances, newest first",
                "parameters": [job_name, {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50, "minimum": 1, "maximum": 10000}}],
                "responses": {
                    "200": {"description": "`{instances: [Instance]}`", "content": {"application/json": {}}},
                    "400": error_response("a bad job name or limit")}},
        "post": {
                "summary": "Launch the job now: `{env: {NAME: value}, key}` (the same key launches once)",
                "parameters": [job_name],
                "requestBody": {"required": false, "content": {"application/json": {}}},
                "responses": {
                    "201": {"description": "the instance", "content": {"application/json": {}}},
                    "400": error_response("a bad body, variable name or key"),
                    "404": error_response("no such job"),
                    "409": error_response("the job's definition has never loaded")}}}));
    paths.insert("/v1/instances/{id}".into(), json!({"get": {
                "summary": "An instance (working|error|success|cancel) with its steps: key, task, queue, status, attempt, worker, exit code, peak memory, log key, error",
                "parameters": [instance_id],
                "responses": {
                    "200": {"description": "the instance", "content": {"application/json": {}}},
                    "404": error_response("no such instance")}}}));
    paths.insert("/v1/instances/{id}/logs".into(), json!({"get": {
                "summary": "Its steps' logs in order: one line per output line, `STEP TIME out|err TEXT`; with `follow=true` the response stays open, streaming what running steps write, until no step runs or waits",
                "parameters": [instance_id, {"name": "follow", "in": "query", "schema": {"type": "boolean"},
                    "description": "keep streaming while the instance runs"}],
                "responses": {
                    "200": {"description": "the logs", "content": {"text/plain": {}}},
                    "404": error_response("no such instance")}}}));
    for (action, summary) in [
        (
            "suspend",
            "Suspend the job: it launches nothing (no slot, no trigger) until resumed; slots passing meanwhile are not launched later",
        ),
        (
            "resume",
            "Resume a job suspended here (a definition's own `suspended: true` stays until its file changes)",
        ),
    ] {
        paths.insert(format!("/v1/jobs/{{name}}/{action}"), json!({"post": {
                "summary": format!("{summary}. Needs `jobs:operate` on the job, or being one of its owners"),
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the job, with `suspended` and `suspended_by`", "content": {"application/json": {}}},
                    "403": error_response("neither `jobs:operate` on the job nor one of its owners"),
                    "404": error_response("no such job")}}}));
    }
    for (action, summary) in [
        (
            "retry",
            "Run the instance's failed step again (a new attempt), then the rest",
        ),
        ("skip", "Go on after the instance's failed step"),
        ("cancel", "Cancel the instance: steps not yet run never run"),
    ] {
        let mut parameters = vec![instance_id.clone()];
        if action == "cancel" {
            parameters.push(json!({"name": "force", "in": "query", "schema": {"type": "boolean"},
                "description": "also stop the steps running now (their process groups: SIGTERM, then SIGKILL)"}));
        }
        paths.insert(format!("/v1/instances/{{id}}/{action}"), json!({"post": {
                "summary": format!("{summary}. Needs `jobs:operate` on the job, or being one of its owners"),
                "parameters": parameters,
                "responses": {
                    "200": {"description": "the instance", "content": {"application/json": {}}},
                    "403": error_response("neither `jobs:operate` on the job nor one of its owners"),
                    "404": error_response("no such instance"),
                    "409": error_response("the instance is not in a state this applies to")}}}));
    }
    paths.insert("/v1/models".into(), json!({"get": {
                "summary": "Every model the caller may read, with its latest version and aliases",
                "responses": {
                    "200": {"description": "`{models: [{name, latest_version, aliases, created_at, updated_at}]}`", "content": {"application/json": {}}}}}}));
    paths.insert("/v1/models/{name}".into(), json!({"get": {
                "summary": "A model's versions, oldest first",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "`{name, versions: [Version]}`", "content": {"application/json": {}}},
                    "404": error_response("no such model")}}}));
    paths.insert("/v1/models/{name}/versions".into(), json!({"post": {
                "summary": "Commit a new version whose files were uploaded (`POST /v1/blobs/check`, `PUT /v1/blobs/{digest}`); answers 201 with the version",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["layout", "files"], "properties": {
                    "layout": {"type": "string", "enum": ["file", "directory"]},
                    "files": {"type": "array", "items": {"type": "object", "required": ["path", "digest", "size"], "properties": {"path": {"type": "string"}, "digest": {"type": "string", "description": "sha256:HEX"}, "size": {"type": "integer"}}}},
                    "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                    "params": {"type": "object", "additionalProperties": {"type": "string"}},
                    "lineage": {"type": "object", "description": "`{labels: [{name, revision}], queries: [id], parent: NAME@N}`"},
                    "note": {"type": "string"}}}}}},
                "responses": {
                    "201": {"description": "the version", "content": {"application/json": {}}},
                    "400": error_response("a bad file list, path, metric or lineage"),
                    "409": error_response("a file the version names was not uploaded (`missing_blob`)")}}}));
    paths.insert("/v1/models/{name}/versions/{selector}".into(), json!({
                "get": {
                    "summary": "One version, by number, alias or `latest`",
                    "parameters": [
                        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "selector", "in": "path", "required": true, "schema": {"type": "string"}, "description": "N, an alias, or latest"}],
                    "responses": {
                        "200": {"description": "the version: files, metrics, params, lineage, note, created_by, created_at", "content": {"application/json": {}}},
                        "404": error_response("no such model or version")}},
                "delete": {
                    "summary": "Delete a version by number (refused while an alias points at it); its files are collected by gc",
                    "parameters": [
                        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "selector", "in": "path", "required": true, "schema": {"type": "integer"}}],
                    "responses": {
                        "200": {"description": "`{deleted: NAME@N}`", "content": {"application/json": {}}},
                        "400": error_response("not a version number"),
                        "404": error_response("no such model or version"),
                        "409": error_response("an alias points at the version")}}}));
    paths.insert("/v1/models/{name}/aliases/{alias}".into(), json!({
                "put": {
                    "summary": "Move the alias to a version (`{\"version\": N}`); the move is kept in the alias history",
                    "parameters": [
                        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["version"], "properties": {"version": {"type": "integer"}}}}}},
                    "responses": {
                        "200": {"description": "the move: `{model, alias, from_version, to_version, moved_by, moved_at}`", "content": {"application/json": {}}},
                        "400": error_response("a bad alias name or body"),
                        "404": error_response("no such model or version")}},
                "delete": {
                    "summary": "Remove the alias; the removal is kept in the alias history",
                    "parameters": [
                        {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                        {"name": "alias", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "responses": {
                        "200": {"description": "the move (to_version null)", "content": {"application/json": {}}},
                        "404": error_response("no such model or alias")}}}));
    paths.insert("/v1/models/{name}/alias-history".into(), json!({"get": {
                "summary": "Every alias move of the model, oldest first",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "`{name, moves: [{model, alias, from_version, to_version, moved_by, moved_at}]}`", "content": {"application/json": {}}},
                    "404": error_response("no such model")}}}));
    paths.insert("/v1/blobs/check".into(), json!({"post": {
                "summary": "Which of these files the store lacks (the first step of a push)",
                "requestBody": {"required": true, "content": {"application/json": {"schema": {"type": "object", "required": ["blobs"], "properties": {"blobs": {"type": "array", "maxItems": 100000, "items": {"type": "object", "required": ["digest", "size"], "properties": {"digest": {"type": "string"}, "size": {"type": "integer"}}}}}}}}},
                "responses": {
                    "200": {"description": "`{missing: [digest]}`", "content": {"application/json": {}}},
                    "400": error_response("a bad digest or more than 100,000 files")}}}));
    paths.insert("/v1/blobs/gc".into(), json!({"post": {
                "summary": "Collect files no version references, older than the grace period (dry run unless apply)",
                "requestBody": {"content": {"application/json": {"schema": {"type": "object", "properties": {"apply": {"type": "boolean", "default": false}, "grace_seconds": {"type": "integer", "default": 3600}}}}}},
                "responses": {
                    "200": {"description": "the report: what was (or would be) deleted", "content": {"application/json": {}}}}}}));
    paths.insert("/v1/blobs/{digest}".into(), json!({
                "get": {
                    "summary": "A file's bytes, streamed (the client checks the digest)",
                    "parameters": [{"name": "digest", "in": "path", "required": true, "schema": {"type": "string"}, "description": "sha256:HEX"}],
                    "responses": {
                        "200": {"description": "the bytes", "content": {"application/octet-stream": {}}},
                        "404": error_response("no such file")}},
                "put": {
                    "summary": "Upload a file; streamed into the store and checked against its digest. 201 when stored, 200 when it was there",
                    "parameters": [{"name": "digest", "in": "path", "required": true, "schema": {"type": "string"}}],
                    "requestBody": {"required": true, "content": {"application/octet-stream": {}}},
                    "responses": {
                        "200": {"description": "already stored", "content": {"application/json": {}}},
                        "201": {"description": "stored", "content": {"application/json": {}}},
                        "400": error_response("the bytes do not match the digest or the length"),
                        "411": error_response("no Content-Length")}}}));
    paths.insert("/v1/audit".into(), json!({"get": {
                "summary": "The audit trail, newest first: every change and refusal with who, what, on what, parameters, outcome and time",
                "parameters": [
                    {"name": "actor", "in": "query", "schema": {"type": "string"}, "description": "exact, or a prefix ending in `*` (`token:*`)"},
                    {"name": "target", "in": "query", "schema": {"type": "string"}, "description": "exact, or a prefix ending in `*`"},
                    {"name": "action", "in": "query", "schema": {"type": "string"}},
                    {"name": "outcome", "in": "query", "schema": {"type": "string", "enum": ["ok", "denied", "unauthorized", "invalid", "failed"]}},
                    {"name": "since", "in": "query", "schema": {"type": "string"}, "description": "RFC 3339 time, or a duration back from now (`24h`, `7d`)"},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 100, "minimum": 1, "maximum": 10000}}],
                "responses": {
                    "200": {"description": "`{records: [{id, at, actor, action, target, params, outcome, status, source, client, detail}]}`", "content": {"application/json": {}}},
                    "400": error_response("a bad filter")}}}));
    let catalog_key = json!({"name": "key", "in": "path", "required": true, "schema": {"type": "string"},
        "description": "the object's key: `source/S`, `schema/S/SCHEMA`, `table/S/SCHEMA/TABLE`, `column/S/SCHEMA/TABLE/COLUMN` or `keyword/NAME`, each part percent-encoded (`GET /v1/catalog/resolve` gives it)"});
    paths.insert("/v1/catalog/search".into(), json!({"get": {
                "summary": "Search names, database comments, descriptions and keywords at every level, in any language (an n-gram index): exact names first, then name prefixes, then described objects, then the rest",
                "parameters": [
                    {"name": "q", "in": "query", "required": true, "schema": {"type": "string"}, "description": "words, each of which must be found"},
                    {"name": "source", "in": "query", "schema": {"type": "string"}},
                    {"name": "kind", "in": "query", "schema": {"type": "string", "enum": ["schema", "table", "view", "column", "keyword"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 30, "minimum": 1, "maximum": 1000}}],
                "responses": {
                    "200": {"description": "`{query, total, hits: [{target, path, kind, name, rank, described, snippet, url}]}`", "content": {"application/json": {}}},
                    "400": error_response("no words, an unknown kind, a bad limit")}}}));
    paths.insert("/v1/catalog/resolve".into(), json!({"get": {
                "summary": "The object a name as people write it names: `TABLE`, `SCHEMA.TABLE`, `SOURCE.SCHEMA.TABLE`, any of those with `.COLUMN`, `schema:SOURCE.SCHEMA`, `source:NAME`, `keyword:NAME`",
                "parameters": [{"name": "name", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "`{name, key, url, target}`", "content": {"application/json": {}}},
                    "404": error_response("nothing of that name in the catalog"),
                    "409": error_response("`ambiguous`: a bare name names more than one object; the message lists them")}}}));
    paths.insert("/v1/catalog/syncs".into(), json!({"get": {
                "summary": "The catalog's syncs, newest first: source, status (ok|failed), times, counts, error",
                "parameters": [{"name": "source", "in": "query", "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "`{syncs: [Sync]}`", "content": {"application/json": {}}}}}}));
    paths.insert("/v1/catalog/models/{name}".into(), json!({"get": {
                "summary": "A model's page: its aliases and versions, each with its metrics, the label revisions it learned from (label sets the caller may read) and the result tables it wrote (rows and time of its latest write to each)",
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the page", "content": {"application/json": {}}},
                    "404": error_response("no such model")}}}));
    paths.insert("/v1/catalog/objects/{key}".into(), json!({"get": {
                "summary": "An object's page: a table's or view's columns (those gone marked), comment, row count, a view's SQL and `plan` (as the engine explains it), description (Markdown and sanitised HTML) and schema history; a column's; a schema's tables; a source's schemas; a keyword's description. A table kondate writes has `kondate`: a label table's label set, sheet, latest revision and its diff, the models that learned from it; a result table's apps, jobs, schedules, owners, latest writes with their model version and `freshness` (`fresh`, `late` past its schedule, `never_written`, `unscheduled`); a warehouse copy's last export and exporting jobs",
                "parameters": [catalog_key],
                "responses": {
                    "200": {"description": "the page, with `name`, `key` and `url`", "content": {"application/json": {}}},
                    "404": error_response("not a key, or nothing at it")}},
            "delete": {
                "summary": "Delete a table, view or column that a sync found gone from its source (unlinked), with its history, descriptions and favourites. Needs `catalog:edit` on the object's full name; audited as `catalog.delete`",
                "parameters": [catalog_key],
                "responses": {
                    "200": {"description": "`{name, deleted}`: the objects deleted", "content": {"application/json": {}}},
                    "400": error_response("not a table, view or column, or still in its source"),
                    "404": error_response("not a key, or nothing at it")}}}));
    paths.insert("/v1/catalog/history/{key}".into(), json!({"get": {
                "summary": "Every revision of the object's description (version, principal, time, unified diff), newest first, and for a table its schema changes with the sync that saw each",
                "parameters": [catalog_key],
                "responses": {
                    "200": {"description": "`{name, key, descriptions: [Revision], schema: [Change]}`", "content": {"application/json": {}}},
                    "404": error_response("not a key")}}}));
    paths.insert("/v1/catalog/descriptions/{key}".into(), json!({
        "get": {
                "summary": "The description now: Markdown, sanitised HTML (glossary keywords linked), version (0: never described), who and when, the project file it came from",
                "parameters": [catalog_key],
                "responses": {
                    "200": {"description": "the description", "content": {"application/json": {}}},
                    "404": error_response("not a key")}},
        "put": {
                "summary": "Set the description: `{body: MARKDOWN, base_version: N}`, a new revision. An edit started from an older version than the current one is refused with the difference; describing a `keyword/NAME` makes it a glossary keyword. Needs `catalog:edit` on the object's full name (`warehouse.results.recipe_categories`, `keyword:NAME`)",
                "parameters": [catalog_key],
                "requestBody": {"required": true, "content": {"application/json": {}}},
                "responses": {
                    "200": {"description": "`{doc, changed, warning}` (warning: the table is documented from a project file)", "content": {"application/json": {}}},
                    "400": error_response("a bad body, or a description too large"),
                    "404": error_response("no such object"),
                    "409": error_response("`stale`: someone edited it since `base_version`; the answer has `current_version`, `edited_by` and `diff` (now → your edit), and nothing changed")}}}));
    paths.insert("/v1/catalog/lineage".into(), json!({"get": {
                "summary": "Where the tables kondate writes come from: sheet → label table → model version → result table → warehouse copy, as recorded (label syncs, models' lineage, the result tables' write log); all of it or what is connected to `name`. Label sets and models the caller may not read (labels:read, models:read) are left out",
                "parameters": [
                    {"name": "name", "in": "query", "schema": {"type": "string"}, "description": "a table as people write it, or a node id: `labels:SET`, `model:NAME@V`, `result:NAME`, `warehouse:TABLE`"},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["json", "svg"], "default": "json"}}],
                "responses": {
                    "200": {"description": "`{nodes: [{id, kind, label, detail, table, url}], edges: [{from, to, label}]}`, or the graph drawn as SVG", "content": {"application/json": {}, "image/svg+xml": {}}},
                    "400": error_response("a bad format"),
                    "404": error_response("no such table, or not one kondate writes"),
                    "409": error_response("`ambiguous`: a bare name names more than one table")}}}));
    paths.insert("/v1/catalog/favourites".into(), json!({"get": {
                "summary": "The caller's favourite objects (a token's are its owner's), most recently marked first",
                "responses": {
                    "200": {"description": "`{favourites: [{name, key, url}]}`", "content": {"application/json": {}}}}}}));
    paths.insert("/v1/catalog/favourites/{key}".into(), json!({
        "put": {
                "summary": "Mark the object a favourite of the caller (a token's owner)",
                "parameters": [catalog_key],
                "responses": {
                    "200": {"description": "`{name, favourite: true, changed}`", "content": {"application/json": {}}},
                    "400": error_response("an anonymous caller (favourites are per person)"),
                    "404": error_response("no such object")}},
        "delete": {
                "summary": "No longer a favourite of the caller",
                "parameters": [catalog_key],
                "responses": {
                    "200": {"description": "`{name, favourite: false, changed}`", "content": {"application/json": {}}},
                    "404": error_response("no such object")}}}));
    paths.insert("/v1/processes".into(), json!({"get": {
                "summary": "The kondate processes sharing the state database, newest first: live, stopped (deregistered) and lost (silent past state.lost_after), each with the queries it owns",
                "parameters": [
                    {"name": "since", "in": "query", "schema": {"type": "string", "default": "24h"}, "description": "heard from since an RFC 3339 time, or a duration back from now (`1h`, `7d`)"}],
                "responses": {
                    "200": {"description": "`{processes: [{id, host, pid, version, command, state, started_at, last_heartbeat_at, stopped_at, queries}]}`", "content": {"application/json": {}}},
                    "400": error_response("a bad `since`")}}}));
    paths
}

/// The operations' prose, by path and method.
fn written() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kondate",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "kondate's HTTP API. The query endpoints are compatible with Queuery and its public clients (queuery-client on PyPI)."
        },
        "components": {
            "securitySchemes": {"basic": {"type": "http", "scheme": "basic", "description": "token name as user, token secret as password (`kondate tokens create NAME`)"}},
            "schemas": {
                "Error": {"type": "object", "required": ["status_code", "error_code", "error"], "properties": {
                    "status_code": {"type": "integer"},
                    "error_code": {"type": "string", "enum": ["invalid_parameter", "unauthorized", "forbidden", "not_found", "conflict", "ambiguous", "stale", "source_error", "too_many_requests", "internal_error"]},
                    "error": {"type": "string"}}},
                "Query": {"type": "object", "required": ["id", "status", "data_file_urls", "error"], "properties": {
                    "id": {"type": "integer"},
                    "status": {"type": "string", "enum": ["pending", "running", "success", "failed"]},
                    "data_file_urls": {"type": "array", "items": {"type": "string", "format": "uri"}, "description": "signed, expiring URLs of the gzip CSV (or Parquet) parts"},
                    "error": {"type": ["string", "null"]},
                    "manifest_file_url": {"type": ["string", "null"], "format": "uri"},
                    "select_stmt": {"type": "string"},
                    "created_at": {"type": "string", "format": "date-time"},
                    "s3_prefix": {"type": "string"},
                    "record_count": {"type": ["integer", "null"]},
                    "format": {"type": "string", "enum": ["csv", "parquet"]}}},
                "Submit": {"type": "object", "required": ["q"], "properties": {
                    "q": {"type": "string", "description": "one read-only SELECT (or WITH … SELECT)"},
                    "values": {"type": "array", "items": {"type": "string"}, "description": "one value per `?` placeholder (form key `values[]`)"},
                    "enable_metadata": {"type": "boolean", "description": "also return manifest_file_url"},
                    "format": {"type": "string", "enum": ["csv", "parquet"], "default": "csv"}}}
            }
        },
        "paths": {}
    })
}

/// The document for the routes in `routes`: the written prose of each operation, with its
/// security and scope filled in from the table.
pub fn spec(routes: &[RouteDoc]) -> Value {
    let mut doc = written();
    let written_paths = Value::Object(written_paths());
    let mut paths = serde_json::Map::new();
    for r in routes {
        let mut op = written_paths[r.path][r.method].clone();
        if op.is_null() {
            // A test keeps this from happening; the document still lists the route.
            op = json!({"summary": "(not yet described)", "responses": {}});
        }
        let op_obj = op.as_object_mut().expect("operations are objects");
        if let Some(kind) = r.need.scope() {
            op_obj.insert("security".into(), json!([{"basic": []}]));
            op_obj.insert(
                "x-kondate-scope".into(),
                json!({"scope": kind.as_str(), "needs": r.need.describe()}),
            );
            let summary = op_obj
                .get("summary")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            op_obj.insert(
                "summary".into(),
                json!(format!("{summary} — needs `{}`", kind.as_str())),
            );
            let responses = op_obj
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses are objects");
            responses
                .entry("401")
                .or_insert_with(|| error_response("missing or wrong credentials"));
            responses.entry("403").or_insert_with(|| {
                error_response(&format!(
                    "the token lacks the scope ({}); the message names the scope needed",
                    r.need.describe()
                ))
            });
            responses.entry("429").or_insert_with(|| {
                error_response(
                    "too many failed sign-in attempts from this address or for this token, or \
                     (queries) the token's concurrency limit and queue are full",
                )
            });
        }
        if let Some(action) = r.action {
            op_obj.insert("x-kondate-audited-as".into(), json!(action));
        }
        op_obj.insert("x-kondate-body-limit".into(), json!(r.body_limit));
        if matches!(r.method, "post" | "put") {
            let responses = op_obj
                .entry("responses")
                .or_insert_with(|| json!({}))
                .as_object_mut()
                .expect("responses are objects");
            responses.entry("413").or_insert_with(|| {
                error_response(&format!(
                    "the body is larger than this endpoint takes ({} bytes)",
                    r.body_limit
                ))
            });
            responses.entry("408").or_insert_with(|| {
                error_response("the body stopped arriving (server.body_timeout)")
            });
        }
        paths
            .entry(r.path)
            .or_insert_with(|| json!({}))
            .as_object_mut()
            .expect("path items are objects")
            .insert(r.method.into(), op);
    }
    doc["paths"] = Value::Object(paths);
    doc
}

/// `GET /v1/openapi.json`.
pub async fn document(Extension(Docs(routes)): Extension<Docs>) -> Json<Value> {
    Json(spec(&routes))
}

/// The (method, path) pairs that have written prose.
pub fn written_operations() -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = written_paths()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .expect("path item")
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    out.sort();
    out
}
