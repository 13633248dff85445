//! The OpenAPI 3.1 document for every endpoint the router serves.
//!
//! Written as data rather than generated from annotations: the domain types live in crates
//! that must not depend on an HTTP documentation library, and the document is small. A test
//! checks that it lists exactly the router's routes.

use axum::Json;
use serde_json::{Value, json};

/// The (method, path) pairs the document describes; kept equal to the router's.
pub const ROUTES: &[(&str, &str)] = &[
    ("get", "/healthz"),
    ("get", "/metrics"),
    ("get", "/v1/openapi.json"),
    ("post", "/v1/queries"),
    ("get", "/v1/queries/{id}"),
    ("get", "/v1/objects/{key}"),
    ("get", "/v1/labels"),
    ("get", "/v1/labels/{name}/revisions"),
    ("get", "/v1/labels/{name}/revisions/{revision}/export"),
    ("post", "/v1/labels/{name}/sync"),
    ("post", "/v1/results/{name}"),
    ("get", "/v1/runs"),
    ("get", "/v1/runs/{id}"),
    ("get", "/v1/runs/{id}/logs"),
];

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The document.
pub fn spec() -> Value {
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
                    "error_code": {"type": "string", "enum": ["invalid_parameter", "unauthorized", "forbidden", "not_found", "conflict", "source_error", "too_many_requests", "internal_error"]},
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
        "paths": {
            "/healthz": {"get": {"summary": "Liveness and state-database check", "responses": {"200": {"description": "healthy"}, "503": {"description": "the state database does not answer"}}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text exposition format", "content": {"text/plain": {}}}}}},
            "/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/v1/queries": {"post": {
                "summary": "Submit a read-only SELECT; the result is written to the object store as UNLOAD-format gzip CSV parts",
                "security": [{"basic": []}],
                "requestBody": {"required": true, "content": {
                    "application/x-www-form-urlencoded": {"schema": {"$ref": "#/components/schemas/Submit"}},
                    "application/json": {"schema": {"$ref": "#/components/schemas/Submit"}}}},
                "responses": {
                    "201": {"description": "accepted", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Query"}}}},
                    "400": error_response("not a single read-only SELECT, malformed SQL, or placeholders and values differ"),
                    "401": error_response("missing or wrong credentials"),
                    "429": error_response("the token's concurrency limit and queue are full; retry later")}}},
            "/v1/queries/{id}": {"get": {
                "summary": "A query's status and, on success, its signed data URLs",
                "security": [{"basic": []}],
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "integer"}},
                    {"name": "fields", "in": "query", "schema": {"type": "string"}, "description": "comma-separated: __default__, manifest_file_url, select_stmt, created_at, s3_prefix, record_count, format (also accepted as a form body)"}],
                "responses": {
                    "200": {"description": "the query", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Query"}}}},
                    "400": error_response("bad id or unknown field"),
                    "401": error_response("missing or wrong credentials"),
                    "404": error_response("no such query for this token")}}},
            "/v1/objects/{key}": {"get": {
                "summary": "Download a result object of the local store through its signed URL",
                "parameters": [
                    {"name": "key", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "expires", "in": "query", "required": true, "schema": {"type": "integer"}},
                    {"name": "signature", "in": "query", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the object", "content": {"application/gzip": {}, "application/json": {}, "application/octet-stream": {}}},
                    "403": error_response("unsigned, tampered or expired URL"),
                    "404": error_response("the object no longer exists")}}},
            "/v1/labels": {"get": {
                "summary": "The project's label sets (labels/*.toml) and their current revisions",
                "security": [{"basic": []}],
                "responses": {
                    "200": {"description": "`{label_sets: [{name, table, key, source, columns, revision, fingerprint, definition}]}`", "content": {"application/json": {}}},
                    "401": error_response("missing or wrong credentials")}}},
            "/v1/labels/{name}/revisions": {"get": {
                "summary": "A label set's revisions, oldest first",
                "security": [{"basic": []}],
                "parameters": [{"name": "name", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "`{name, revisions: [{revision, created_at, actor, fingerprint, rows_total, added, changed, removed, skipped_invalid, snapshot_key, migration}]}`", "content": {"application/json": {}}},
                    "401": error_response("missing or wrong credentials"),
                    "404": error_response("no such label set")}}},
            "/v1/labels/{name}/revisions/{revision}/export": {"get": {
                "summary": "A revision's rows, exactly as they were, as CSV or Parquet",
                "security": [{"basic": []}],
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "revision", "in": "path", "required": true, "schema": {"type": "integer"}},
                    {"name": "format", "in": "query", "schema": {"type": "string", "enum": ["csv", "parquet"], "default": "csv"}}],
                "responses": {
                    "200": {"description": "the rows", "content": {"text/csv": {}, "application/vnd.apache.parquet": {}}},
                    "400": error_response("a bad format or revision number"),
                    "401": error_response("missing or wrong credentials"),
                    "404": error_response("no such label set or revision")}}},
            "/v1/labels/{name}/sync": {"post": {
                "summary": "Read the label set's source, validate it, and apply the difference to its table as a new revision",
                "security": [{"basic": []}],
                "parameters": [
                    {"name": "name", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "dry_run", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "skip_invalid", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "migrate", "in": "query", "schema": {"type": "boolean"}},
                    {"name": "force", "in": "query", "schema": {"type": "boolean"}}],
                "responses": {
                    "200": {"description": "the report: `{name, key, outcome (applied|unchanged|no_changes|dry_run), revision, fingerprint, rows, diff, rows_written, invalid, empty_rows, unnamed_columns, migration, snapshot_key}`", "content": {"application/json": {}}},
                    "400": error_response("invalid rows; nothing was written (the message lists them by row and cell)"),
                    "401": error_response("missing or wrong credentials"),
                    "404": error_response("no such label set"),
                    "409": error_response("the definition changed (sync with migrate=true), or another sync holds the lock"),
                    "422": error_response("the source or the definition cannot be read")}}},
            "/v1/results/{name}": {"post": {
                "summary": "Write rows into the declared result table `name` (results/NAME.toml): one bulk upsert keyed by the table's key, all rows or none",
                "security": [{"basic": []}],
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
                    "401": error_response("missing or wrong credentials"),
                    "404": error_response("no such result table or model"),
                    "409": error_response("the declaration changed since the table was created"),
                    "415": error_response("a body that is not CSV, JSON lines or Parquet")}}},
            "/v1/runs": {"get": {
                "summary": "Recent app runs, newest first",
                "security": [{"basic": []}],
                "parameters": [
                    {"name": "app", "in": "query", "schema": {"type": "string"}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "default": 50, "minimum": 1, "maximum": 10000}}],
                "responses": {
                    "200": {"description": "`{runs: [Run]}`", "content": {"application/json": {}}},
                    "400": error_response("a bad app name or limit"),
                    "401": error_response("missing or wrong credentials")}}},
            "/v1/runs/{id}": {"get": {
                "summary": "One run: app, attempt, status (running|succeeded|failed|timed_out|cancelled|lost), command, times, exit code, signal, peak memory, log key, error",
                "security": [{"basic": []}],
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the run", "content": {"application/json": {}}},
                    "401": error_response("missing or wrong credentials"),
                    "404": error_response("no such run")}}},
            "/v1/runs/{id}/logs": {"get": {
                "summary": "The run's log, streamed: one line per output line, `TIME out|err TEXT`",
                "security": [{"basic": []}],
                "parameters": [
                    {"name": "id", "in": "path", "required": true, "schema": {"type": "string"}},
                    {"name": "follow", "in": "query", "schema": {"type": "boolean"}, "description": "keep the response open until the run ends"},
                    {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}, "description": "start at this byte"}],
                "responses": {
                    "200": {"description": "the log", "content": {"text/plain": {}}},
                    "401": error_response("missing or wrong credentials"),
                    "404": error_response("no such run")}}}
        }
    })
}

/// `GET /v1/openapi.json`.
pub async fn document() -> Json<Value> {
    Json(spec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_exactly_the_routes() {
        let spec = spec();
        let paths = spec["paths"].as_object().unwrap();
        let mut listed: Vec<(String, String)> = paths
            .iter()
            .flat_map(|(p, ops)| {
                ops.as_object()
                    .unwrap()
                    .keys()
                    .map(move |m| (m.clone(), p.clone()))
            })
            .collect();
        listed.sort();
        let mut want: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p)| (m.to_string(), p.to_string()))
            .collect();
        want.sort();
        assert_eq!(listed, want);
    }
}
