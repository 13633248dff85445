//! `/v1/catalog…`: the catalog's pages, search, the syncs, and descriptions (reads need
//! `query`; an edit `catalog:edit` on the object's full name, checked once the key is read).
//! Every object has a stable key (`table/warehouse/results/recipe_categories`, each part
//! percent-encoded) and so a stable URL; `resolve` turns a name as people write it into one.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use kondate_access::ScopeKind;
use kondate_catalog::{CatalogError, SearchQuery, Target};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::access::{Caller, audited};
use crate::api::{ApiError, ApiQuery, ErrorMessage};
use crate::body::ApiBytes;

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let message = e.to_string();
        match e {
            CatalogError::NotFound(_) | CatalogError::NoLineage(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
            }
            CatalogError::Ambiguous { .. } => {
                ApiError::new(StatusCode::CONFLICT, "ambiguous", message)
            }
            CatalogError::Invalid(_) | CatalogError::Pattern { .. } => ApiError::invalid(message),
            CatalogError::Stale { .. } => ApiError::new(StatusCode::CONFLICT, "stale", message),
            CatalogError::Source { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "source_error", message)
            }
            _ => ApiError::internal(message),
        }
    }
}

/// The URL of `target`'s page.
pub fn object_url(target: &Target) -> String {
    format!("/v1/catalog/objects/{}", target.key())
}

/// The target named by the rest of the path after `prefix` — read from the raw path (the
/// router is not nested, so it is the path as sent), since
/// the key's parts are percent-encoded on their own (`b%2Fc` is one part, not two).
fn target_in(uri: &Uri, prefix: &str) -> Result<Target, ApiError> {
    let key = uri.path().strip_prefix(prefix).unwrap_or_default();
    Target::from_key(key).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!(
                "`{key}` is not a catalog key: source/S, schema/S/SCHEMA, table/S/SCHEMA/TABLE, \
                 column/S/SCHEMA/TABLE/COLUMN or keyword/NAME, each part percent-encoded; \
                 GET /v1/catalog/resolve?name=NAME gives an object's key"
            ),
        )
    })
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| ApiError::internal(e.to_string()))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchParams {
    q: String,
    source: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/catalog/search?q=&source=&kind=&limit=`: ranked hits, each with its URL.
pub async fn search(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    let limit = params.limit.unwrap_or(30);
    if limit == 0 || limit > 1000 {
        return Err(ApiError::invalid(format!(
            "`limit` must be 1 to 1000, not {limit}"
        )));
    }
    let results = state
        .catalog_search
        .search(
            &state.catalog,
            &SearchQuery {
                text: params.q,
                source: params.source,
                kind: params.kind,
                limit,
            },
        )
        .await?;
    let mut body = to_json(&results)?;
    if let Some(hits) = body["hits"].as_array_mut() {
        for (h, hit) in hits.iter_mut().zip(&results.hits) {
            h["url"] = json!(object_url(&hit.target));
        }
    }
    Ok(Json(body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveParams {
    name: String,
}

/// `GET /v1/catalog/resolve?name=`: the object a name as people write it names
/// (`recipe_categories`, `results.recipe_categories.score`, `keyword:主菜`); 409 with the
/// candidates when a bare name names more than one.
pub async fn resolve(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<ResolveParams>,
) -> Result<Json<Value>, ApiError> {
    let target = state.catalog.resolve(&params.name).await?;
    Ok(Json(json!({
        "name": target.to_string(),
        "key": target.key(),
        "url": object_url(&target),
        "target": to_json(&target)?,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncsParams {
    source: Option<String>,
}

/// `GET /v1/catalog/syncs?source=`: the syncs recorded, newest first, with their errors.
pub async fn syncs(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<SyncsParams>,
) -> Result<Json<Value>, ApiError> {
    let syncs = state.catalog.syncs(params.source.as_deref()).await?;
    Ok(Json(json!({ "syncs": to_json(&syncs)? })))
}

const OBJECTS: &str = "/v1/catalog/objects/";
const DESCRIPTIONS: &str = "/v1/catalog/descriptions/";
const HISTORY: &str = "/v1/catalog/history/";

/// `GET /v1/catalog/objects/{key}`: an object's page — a table's or view's columns,
/// comments, description and schema history; a column's; a schema's tables; a source's
/// schemas; a keyword's description.
pub async fn object(
    State(state): State<AppState>,
    uri: Uri,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let target = target_in(&uri, OBJECTS)?;
    let not_found = || ApiError::from(CatalogError::NotFound(target.to_string()));
    let mut body = match &target {
        Target::Table { .. } => {
            let mut page = state
                .catalog
                .page_of(&target)
                .await?
                .ok_or_else(not_found)?;
            page.kondate = about(&state, &caller, &page).await;
            to_json(&page)?
        }
        Target::Column {
            source,
            schema,
            table,
            column,
        } => {
            let page = state
                .catalog
                .page_of(&target)
                .await?
                .ok_or_else(not_found)?;
            let c = page
                .columns
                .iter()
                .find(|c| &c.name == column)
                .ok_or_else(not_found)?;
            let mut v = to_json(c)?;
            v["table_url"] = json!(object_url(&Target::Table {
                source: source.clone(),
                schema: schema.clone(),
                table: table.clone(),
            }));
            v
        }
        Target::Source { source } => {
            let children = state.catalog.children(source, None).await?;
            if children.is_empty() {
                return Err(not_found());
            }
            json!({ "schemas": children_json(&children)? })
        }
        Target::Schema { source, schema } => {
            let children = state.catalog.children(source, Some(schema)).await?;
            if children.is_empty() {
                return Err(not_found());
            }
            json!({ "tables": children_json(&children)? })
        }
        Target::Keyword { .. } => {
            let doc = state.catalog.doc(&target).await?;
            if doc.version == 0 {
                return Err(not_found());
            }
            json!({ "description": to_json(&doc)? })
        }
    };
    if matches!(target, Target::Source { .. } | Target::Schema { .. }) {
        let doc = state.catalog.doc(&target).await?;
        body["description"] = if doc.version == 0 {
            Value::Null
        } else {
            to_json(&doc)?
        };
    }
    body["name"] = json!(target.to_string());
    body["key"] = json!(target.key());
    body["url"] = json!(object_url(&target));
    Ok(Json(body))
}

/// The project's jobs as the scheduler runs them (those that load).
pub(crate) fn project_jobs(state: &AppState) -> Vec<kondate_jobs::JobDefinition> {
    let p = &state.project;
    kondate_jobs::definition::loading(&p.root, &p.config)
}

pub(crate) fn written_context<'a>(
    state: &'a AppState,
    jobs: &'a [kondate_jobs::JobDefinition],
) -> kondate_catalog::written::Context<'a> {
    kondate_catalog::written::Context::new(
        &state.project,
        &state.labels,
        &state.models,
        &state.results,
        jobs,
        state.results.clock.now(),
    )
}

/// What kondate knows of `page`'s table when it writes it, as far as `caller` may read
/// it; the page is served without it (and a warning logged) when it cannot be read.
pub(crate) async fn about(
    state: &AppState,
    caller: &kondate_access::Principal,
    page: &kondate_catalog::TablePage,
) -> Option<kondate_catalog::Written> {
    let jobs = project_jobs(state);
    match written_context(state, &jobs)
        .about(&page.source, &page.schema, &page.name)
        .await
    {
        Ok(w) => w.and_then(|w| {
            w.readable(
                &|set| caller.allows(ScopeKind::LabelsRead, Some(set)),
                &|m| caller.allows(ScopeKind::ModelsRead, Some(m)),
            )
        }),
        Err(e) => {
            tracing::warn!(error = %e, "could not read what kondate knows of a table");
            None
        }
    }
}

/// `GET /v1/catalog/models/{name}`: a model's versions, each with the label revisions it
/// learned from (those the caller may read) and the result tables it wrote.
pub async fn model(
    State(state): State<AppState>,
    axum::extract::Path(name): axum::extract::Path<String>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let jobs = project_jobs(&state);
    let mut page = written_context(&state, &jobs).model_page(&name).await?;
    page.retain_readable(&|set| caller.allows(ScopeKind::LabelsRead, Some(set)));
    Ok(Json(to_json(&page)?))
}

/// `DELETE /v1/catalog/objects/{key}`: a table, view or column gone from its source, with
/// its history and descriptions (`catalog:edit` on its full name; 400 while the source
/// still has it).
pub async fn delete_object(
    State(state): State<AppState>,
    uri: Uri,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let target = target_in(&uri, OBJECTS)?;
    let name = target.to_string();
    if !caller.allows(ScopeKind::CatalogEdit, Some(&name)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("this token may not delete {name}: it needs catalog:edit on {name}"),
        ));
    }
    let deleted = state.catalog.delete_unlinked(&target).await?;
    let body = json!({"name": name, "deleted": deleted});
    Ok(audited(Json(body.clone()).into_response(), body))
}

fn children_json(children: &[kondate_catalog::Child]) -> Result<Value, ApiError> {
    let mut v = to_json(&children)?;
    if let Some(items) = v.as_array_mut() {
        for (item, c) in items.iter_mut().zip(children) {
            item["url"] = json!(object_url(&c.target));
        }
    }
    Ok(v)
}

/// `GET /v1/catalog/descriptions/{key}`: the description now (version 0: none yet), as
/// Markdown and as sanitised HTML.
pub async fn description(State(state): State<AppState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let target = target_in(&uri, DESCRIPTIONS)?;
    let doc = state.catalog.doc(&target).await?;
    Ok(Json(to_json(&doc)?))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeBody {
    body: String,
    /// The version the edit started from (0 for a first description); omitted, the edit
    /// overwrites whatever is there.
    base_version: Option<i64>,
}

/// `PUT /v1/catalog/descriptions/{key}` with `{"body": MARKDOWN, "base_version": N}`: a
/// new revision; 409 `stale` with the difference when someone edited it since version N.
pub async fn describe(
    State(state): State<AppState>,
    uri: Uri,
    Caller(caller): Caller,
    ApiBytes(bytes): ApiBytes,
) -> Result<Response, ApiError> {
    let target = target_in(&uri, DESCRIPTIONS)?;
    let name = target.to_string();
    if !caller.allows(ScopeKind::CatalogEdit, Some(&name)) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "this token may not edit the description of {name}: it needs catalog:edit on {name}"
            ),
        ));
    }
    let body: DescribeBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid(format!(
            "request body: {e}; send {{\"body\": \"Markdown\", \"base_version\": N}}"
        ))
    })?;
    // Only a target that exists (or a keyword, which describing creates) is described.
    if !state.catalog.exists(&target).await? {
        return Err(CatalogError::NotFound(name).into());
    }
    let params = json!({"name": name, "base_version": body.base_version});
    match state
        .catalog
        .describe(
            &target,
            &body.body,
            body.base_version,
            &caller.actor(),
            None,
        )
        .await
    {
        Ok(d) => {
            let mut params = params;
            params["version"] = json!(d.doc.version);
            Ok(audited(Json(to_json(&d)?).into_response(), params))
        }
        Err(
            ref e @ CatalogError::Stale {
                base,
                current,
                ref by,
                ref diff,
                ..
            },
        ) => {
            let message = e.to_string();
            let mut resp = (
                StatusCode::CONFLICT,
                Json(json!({
                    "status_code": 409,
                    "error_code": "stale",
                    "error": message,
                    "base_version": base,
                    "current_version": current,
                    "edited_by": by,
                    "diff": diff,
                })),
            )
                .into_response();
            resp.extensions_mut().insert(ErrorMessage(message));
            Ok(audited(resp, params))
        }
        Err(e) => Err(e.into()),
    }
}

/// `GET /v1/catalog/history/{key}`: every revision of the description (who, when, the
/// diff), newest first, and for a table its schema changes with the sync that saw each.
pub async fn history(State(state): State<AppState>, uri: Uri) -> Result<Json<Value>, ApiError> {
    let target = target_in(&uri, HISTORY)?;
    let revisions = state.catalog.doc_history(&target).await?;
    let schema = match &target {
        Target::Table { .. } => state
            .catalog
            .page_of(&target)
            .await?
            .map(|p| p.history)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    Ok(Json(json!({
        "name": target.to_string(),
        "key": target.key(),
        "descriptions": to_json(&revisions)?,
        "schema": to_json(&schema)?,
    })))
}

const FAVOURITES: &str = "/v1/catalog/favourites/";

/// `GET /v1/catalog/favourites`: the caller's favourites (a token's are its owner's), most
/// recently marked first.
pub async fn favourites(
    State(state): State<AppState>,
    Caller(caller): Caller,
) -> Result<Json<Value>, ApiError> {
    let list = state.catalog.favourites(&caller.person()).await?;
    let items: Vec<Value> = list
        .iter()
        .map(|t| json!({"name": t.to_string(), "key": t.key(), "url": object_url(t)}))
        .collect();
    Ok(Json(json!({ "favourites": items })))
}

/// `PUT /v1/catalog/favourites/{key}` (mark) and `DELETE` (unmark): `{name, favourite,
/// changed}`.
pub async fn set_favourite(
    State(state): State<AppState>,
    method: axum::http::Method,
    uri: Uri,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let target = target_in(&uri, FAVOURITES)?;
    let keyword_unknown =
        matches!(target, Target::Keyword { .. }) && state.catalog.doc(&target).await?.version == 0;
    if keyword_unknown || !state.catalog.exists(&target).await? {
        return Err(CatalogError::NotFound(target.to_string()).into());
    }
    let on = method == axum::http::Method::PUT;
    let changed = state
        .catalog
        .set_favourite(&caller.person(), &target, on)
        .await?;
    let body = json!({"name": target.to_string(), "favourite": on, "changed": changed});
    Ok(audited(Json(body.clone()).into_response(), body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LineageParams {
    name: Option<String>,
    format: Option<String>,
}

/// `GET /v1/catalog/lineage?name=&format=json|svg`: sheet → label table → model version →
/// result table → warehouse copy, as recorded; all of it, or what is connected to `name`
/// (a table, or a node id such as `model:NAME@V`). Label sets and models the caller may
/// not read are left out.
pub async fn lineage(
    State(state): State<AppState>,
    ApiQuery(params): ApiQuery<LineageParams>,
    Caller(caller): Caller,
) -> Result<Response, ApiError> {
    let svg = match params.format.as_deref().unwrap_or("json") {
        "json" => false,
        "svg" => true,
        other => {
            return Err(ApiError::invalid(format!(
                "`format` must be json or svg, not `{other}`"
            )));
        }
    };
    let graph = lineage_graph(&state, &caller, params.name.as_deref()).await?;
    if svg {
        return Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "image/svg+xml; charset=utf-8",
            )],
            graph.svg(),
        )
            .into_response());
    }
    let mut body = to_json(&graph)?;
    // Each table's catalog page, where the catalog has it.
    if let Some(nodes) = body["nodes"].as_array_mut() {
        for (v, n) in nodes.iter_mut().zip(&graph.nodes) {
            if let Some((source, table)) = &n.table {
                let found = state.catalog.resolve_all(table).await?;
                if let Some(t) = found
                    .iter()
                    .find(|t| matches!(t, Target::Table { source: s, .. } if s == source))
                {
                    v["url"] = json!(object_url(t));
                }
            }
        }
    }
    Ok(Json(body).into_response())
}

/// The lineage graph (around `name` when given) with what `caller` may not read left out,
/// and the edges to it.
pub(crate) async fn lineage_graph(
    state: &AppState,
    caller: &kondate_access::Principal,
    name: Option<&str>,
) -> Result<kondate_catalog::Lineage, ApiError> {
    let mut graph = kondate_catalog::lineage::build(
        &state.project,
        &state.labels,
        &state.models,
        &state.results,
        50,
    )
    .await?;
    if let Some(name) = name {
        let id = state.catalog.lineage_node(&graph, name).await?;
        graph = graph.around(&id);
    }
    // What the caller may not read is not shown, nor the edges to it.
    graph.nodes.retain(|n| {
        let (kind, name) = match n.id.split_once(':') {
            Some(("source" | "labels", set)) => (ScopeKind::LabelsRead, set),
            Some(("model", m)) => (
                ScopeKind::ModelsRead,
                m.rsplit_once('@').map_or(m, |(name, _)| name),
            ),
            _ => return true,
        };
        caller.allows(kind, Some(name))
    });
    let ids: std::collections::BTreeSet<String> =
        graph.nodes.iter().map(|n| n.id.clone()).collect();
    graph
        .edges
        .retain(|e| ids.contains(&e.from) && ids.contains(&e.to));
    Ok(graph)
}
