//! The console's Catalog section: search, sources → schemas → tables → columns, a table's
//! page (what kondate knows of it, its description, columns, SQL, plan, schema history and
//! description history), keywords, favourites, and the description editor with a preview.
//! Reading needs `query`, editing `catalog:edit` on the object's name — as in the API.

use axum::Router;
use axum::extract::{Form, Query, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::{get, post};
use kondate_access::ScopeKind::{CatalogEdit, Query as QueryScope};
use kondate_catalog::{SearchQuery, Target};
use minijinja::context;
use minijinja::value::Serde;
use serde::Deserialize;
use serde_json::json;

use super::{Viewer, change, forbidden, frame, message, page, see_other, server_error};
use crate::AppState;
use crate::api::ApiError;

/// At most this many children (schemas of a source, tables of a schema) on one page.
const CHILDREN: usize = 500;
/// At most this many search hits.
const HITS: usize = 50;
/// At most this many description revisions on a page.
const REVISIONS: usize = 20;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/catalog", get(catalog_home))
        .route("/catalog/{*key}", get(object_page))
        .route("/catalog-edit/{*key}", get(edit_page).post(save))
        .route("/catalog-favourite/{*key}", post(favourite))
        .route("/catalog-lineage", get(lineage_page))
}

fn may_read(state: &AppState, v: &Viewer) -> Result<(), Response> {
    if v.principal.has_kind(QueryScope) {
        Ok(())
    } else {
        Err(forbidden(
            state,
            "Reading the catalog needs the query scope; ask an admin for a role that has it.",
        ))
    }
}

/// The console address of `target`'s page.
fn page_url(target: &Target) -> String {
    format!("/catalog/{}", target.key())
}

/// The target in the path after `prefix`, or the page saying there is none.
fn target_of(state: &AppState, uri: &Uri, prefix: &str) -> Result<Target, Response> {
    uri.path()
        .strip_prefix(prefix)
        .and_then(Target::from_key)
        .ok_or_else(|| not_found(state))
}

fn not_found(state: &AppState) -> Response {
    message(
        state,
        StatusCode::NOT_FOUND,
        "Not in the catalog",
        "Nothing in the catalog has this address: search for it on the Catalog page; \
         `kondate catalog sync` imports what the sources hold.",
    )
}

/// The page's crumbs: each level above `target`, as (label, url).
fn crumbs(target: &Target) -> Vec<(String, String)> {
    let mut out = vec![("Catalog".to_string(), "/catalog".to_string())];
    let (source, schema, table) = match target {
        Target::Source { .. } | Target::Keyword { .. } => return out,
        Target::Schema { source, .. } => (source, None, None),
        Target::Table { source, schema, .. } => (source, Some(schema), None),
        Target::Column {
            source,
            schema,
            table,
            ..
        } => (source, Some(schema), Some(table)),
    };
    out.push((
        source.clone(),
        page_url(&Target::Source {
            source: source.clone(),
        }),
    ));
    if let Some(schema) = schema {
        out.push((
            schema.clone(),
            page_url(&Target::Schema {
                source: source.clone(),
                schema: schema.clone(),
            }),
        ));
        if let Some(table) = table {
            out.push((
                table.clone(),
                page_url(&Target::Table {
                    source: source.clone(),
                    schema: schema.clone(),
                    table: table.clone(),
                }),
            ));
        }
    }
    out
}

#[derive(Deserialize)]
struct SearchParams {
    q: Option<String>,
    kind: Option<String>,
}

/// `GET /catalog?q=WORDS&kind=`: search, or the sources, the viewer's favourites and the
/// keywords.
async fn catalog_home(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<SearchParams>,
) -> Response {
    if let Err(res) = may_read(&state, &v) {
        return res;
    }
    let q = p.q.unwrap_or_default();
    let kind = p.kind.filter(|k| !k.is_empty());
    let results = if q.trim().is_empty() {
        None
    } else {
        let found = state
            .catalog_search
            .search(
                &state.catalog,
                &SearchQuery {
                    text: q.clone(),
                    source: None,
                    kind: kind.clone(),
                    limit: HITS,
                },
            )
            .await;
        match found {
            Ok(r) => Some(json!({
                "total": r.total,
                "hits": r.hits.iter().map(|h| json!({
                    "url": page_url(&h.target), "path": h.path, "kind": h.kind,
                    "snippet": h.snippet, "described": h.described,
                })).collect::<Vec<_>>(),
            })),
            Err(kondate_catalog::CatalogError::Invalid(m)) => {
                return message(&state, StatusCode::BAD_REQUEST, "Not accepted", &m);
            }
            Err(e) => return server_error(&state, "a catalog search failed", e),
        }
    };
    let mut sources = vec!["warehouse".to_string(), "service".to_string()];
    sources.extend(state.project.config.catalog.sources.keys().cloned());
    let sources: Vec<_> = sources
        .into_iter()
        .map(|s| (s.clone(), page_url(&Target::Source { source: s })))
        .collect();
    let favourites = match state.catalog.favourites(&v.principal.person()).await {
        Ok(f) => f
            .iter()
            .take(CHILDREN)
            .map(|t| (t.to_string(), page_url(t)))
            .collect(),
        Err(_) => Vec::new(),
    };
    let keywords: Vec<_> = state
        .catalog
        .keywords()
        .await
        .unwrap_or_default()
        .into_iter()
        .take(CHILDREN)
        .map(|k| (k.clone(), page_url(&Target::Keyword { name: k })))
        .collect();
    page(
        "catalog.html",
        context! {
            q, kind, results => Serde(results), sources, favourites, keywords,
            ..frame(&state, &v, "catalog")
        },
    )
}

/// What the page of any object shows about its description: the text, its latest
/// revisions, and whether the viewer may edit it and has it among their favourites.
async fn doc_parts(state: &AppState, v: &Viewer, target: &Target) -> serde_json::Value {
    let history = state.catalog.doc_history(target).await.unwrap_or_default();
    let revisions: Vec<_> = history
        .iter()
        .rev()
        .take(REVISIONS)
        .map(|r| {
            json!({
                "version": r.version, "principal": r.principal, "diff": r.diff,
                "at": kondate_core::clock::ms_to_rfc3339(r.at_ms), "from_file": r.from_file,
            })
        })
        .collect();
    let favourite = state
        .catalog
        .favourites(&v.principal.person())
        .await
        .is_ok_and(|f| f.contains(target));
    json!({
        "revisions": revisions,
        "can_edit": v.principal.allows(CatalogEdit, Some(&target.to_string())),
        "edit_url": format!("/catalog-edit/{}", target.key()),
        "favourite_url": format!("/catalog-favourite/{}", target.key()),
        "favourite": favourite,
    })
}

/// `GET /catalog/{key}`: an object's page — a source's schemas, a schema's tables, a
/// table's page, a column's or a keyword's description.
async fn object_page(State(state): State<AppState>, uri: Uri, v: Viewer) -> Response {
    if let Err(res) = may_read(&state, &v) {
        return res;
    }
    let target = match target_of(&state, &uri, "/catalog/") {
        Ok(t) => t,
        Err(res) => return res,
    };
    let doc = doc_parts(&state, &v, &target).await;
    match &target {
        Target::Table { .. } => {
            let mut table = match state.catalog.page_of(&target).await {
                Ok(Some(p)) => p,
                Ok(None) => return not_found(&state),
                Err(e) => return server_error(&state, "a catalog page could not be read", e),
            };
            table.kondate = crate::catalog::about(&state, &v.principal, &table).await;
            let columns: Vec<_> = table
                .columns
                .iter()
                .map(|c| {
                    page_url(&Target::Column {
                        source: table.source.clone(),
                        schema: table.schema.clone(),
                        table: table.name.clone(),
                        column: c.name.clone(),
                    })
                })
                .collect();
            page(
                "catalog_table.html",
                context! {
                    page => Serde(&table),
                    column_urls => columns,
                    doc => Serde(doc),
                    crumbs => crumbs(&target),
                    ..frame(&state, &v, "catalog")
                },
            )
        }
        Target::Source { source } | Target::Schema { source, .. } => {
            let schema = match &target {
                Target::Schema { schema, .. } => Some(schema.as_str()),
                _ => None,
            };
            let children = match state.catalog.children(source, schema).await {
                Ok(c) => c,
                Err(e) => return server_error(&state, "a catalog page could not be read", e),
            };
            if children.is_empty() {
                return not_found(&state);
            }
            let rows: Vec<_> = children
                .iter()
                .take(CHILDREN)
                .map(|c| {
                    json!({
                        "name": c.name, "kind": c.kind, "linked": c.linked, "rows": c.row_count,
                        "comment": c.comment, "url": page_url(&c.target),
                    })
                })
                .collect();
            let described = state.catalog.doc(&target).await.ok();
            page(
                "catalog_list.html",
                context! {
                    title => target.to_string(),
                    children => Serde(rows),
                    more => children.len() > CHILDREN,
                    total => children.len(),
                    described => Serde(described),
                    doc => Serde(doc),
                    crumbs => crumbs(&target),
                    ..frame(&state, &v, "catalog")
                },
            )
        }
        Target::Column { .. } | Target::Keyword { .. } => {
            match state.catalog.exists(&target).await {
                Ok(true) => {}
                Ok(false) => return not_found(&state),
                Err(e) => return server_error(&state, "a catalog page could not be read", e),
            }
            let described = match state.catalog.doc(&target).await {
                Ok(d) => d,
                Err(e) => return server_error(&state, "a catalog page could not be read", e),
            };
            page(
                "catalog_doc.html",
                context! {
                    title => target.to_string(),
                    described => Serde(described),
                    doc => Serde(doc),
                    crumbs => crumbs(&target),
                    ..frame(&state, &v, "catalog")
                },
            )
        }
    }
}

/// `GET /catalog-edit/{key}`: the description editor (`catalog:edit` on the object).
async fn edit_page(State(state): State<AppState>, uri: Uri, v: Viewer) -> Response {
    let target = match target_of(&state, &uri, "/catalog-edit/") {
        Ok(t) => t,
        Err(res) => return res,
    };
    let name = target.to_string();
    if !v.principal.allows(CatalogEdit, Some(&name)) {
        return forbidden(
            &state,
            &format!(
                "Editing the description of {name} needs catalog:edit on it; ask an admin for a role that has it."
            ),
        );
    }
    match state.catalog.exists(&target).await {
        Ok(true) => {}
        Ok(false) => return not_found(&state),
        Err(e) => return server_error(&state, "a catalog page could not be read", e),
    }
    let doc = match state.catalog.doc(&target).await {
        Ok(d) => d,
        Err(e) => return server_error(&state, "a catalog page could not be read", e),
    };
    editor(&state, &v, &target, &doc.body, doc.version, None)
}

fn editor(
    state: &AppState,
    v: &Viewer,
    target: &Target,
    body: &str,
    base: i64,
    preview: Option<String>,
) -> Response {
    page(
        "catalog_edit.html",
        context! {
            title => target.to_string(),
            body,
            base,
            preview,
            action => format!("/catalog-edit/{}", target.key()),
            back => page_url(target),
            crumbs => crumbs(target),
            ..frame(state, v, "catalog")
        },
    )
}

#[derive(Deserialize)]
struct EditForm {
    csrf: String,
    body: String,
    /// The version the edit started from.
    base: i64,
    /// `preview` shows the text rendered without saving; anything else saves.
    #[serde(default)]
    intent: String,
}

/// `POST /catalog-edit/{key}`: preview, or save as a new revision (CSRF-checked, audited as
/// the API's `catalog.describe`); an edit started from an older version is refused with
/// what changed since.
async fn save(
    State(state): State<AppState>,
    uri: Uri,
    v: Viewer,
    Form(form): Form<EditForm>,
) -> Response {
    let target = match target_of(&state, &uri, "/catalog-edit/") {
        Ok(t) => t,
        Err(res) => return res,
    };
    let name = target.to_string();
    // Browsers send text areas with CRLF line ends; descriptions keep LF.
    let body = form.body.replace("\r\n", "\n");
    if form.intent == "preview" {
        if !v.principal.allows(CatalogEdit, Some(&name)) {
            return forbidden(
                &state,
                &format!("Editing the description of {name} needs catalog:edit on it."),
            );
        }
        let keywords = state.catalog.keywords().await.unwrap_or_default();
        let html = kondate_catalog::render_markdown(&body, &keywords);
        return editor(&state, &v, &target, &body, form.base, Some(html));
    }
    let params = json!({"name": name, "base_version": form.base});
    change(
        &state,
        &v,
        &form.csrf,
        "catalog.describe",
        Some(&name),
        params,
        async {
            if !v.principal.allows(CatalogEdit, Some(&name)) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    format!("editing the description of {name} needs catalog:edit on it"),
                ));
            }
            if !state.catalog.exists(&target).await? {
                return Err(kondate_catalog::CatalogError::NotFound(name.clone()).into());
            }
            state
                .catalog
                .describe(&target, &body, Some(form.base), &v.principal.actor(), None)
                .await?;
            Ok(see_other(&page_url(&target)))
        },
    )
    .await
}

#[derive(Deserialize)]
struct FavouriteForm {
    csrf: String,
    /// `on` or `off`.
    set: String,
}

/// `POST /catalog-favourite/{key}`: add to or remove from the viewer's favourites.
async fn favourite(
    State(state): State<AppState>,
    uri: Uri,
    v: Viewer,
    Form(form): Form<FavouriteForm>,
) -> Response {
    let target = match target_of(&state, &uri, "/catalog-favourite/") {
        Ok(t) => t,
        Err(res) => return res,
    };
    let on = form.set == "on";
    let action = if on {
        "catalog.favourite.add"
    } else {
        "catalog.favourite.remove"
    };
    let name = target.to_string();
    change(
        &state,
        &v,
        &form.csrf,
        action,
        Some(&name),
        json!({}),
        async {
            if !v.principal.has_kind(QueryScope) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "favourites need the query scope",
                ));
            }
            state
                .catalog
                .set_favourite(&v.principal.person(), &target, on)
                .await?;
            Ok(see_other(&page_url(&target)))
        },
    )
    .await
}

#[derive(Deserialize)]
struct LineageParams {
    /// Around this object (`service.main.recipe_categories`, `model:recipe-category`); the
    /// whole flow when absent.
    name: Option<String>,
}

/// `GET /catalog-lineage?name=`: the lineage picture — sheets → label tables → model
/// versions → result tables → warehouse copies — drawn on the server (what the viewer may
/// not read left out, as in the API), with the catalog pages of its tables.
async fn lineage_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<LineageParams>,
) -> Response {
    if let Err(res) = may_read(&state, &v) {
        return res;
    }
    let name = p.name.filter(|n| !n.trim().is_empty());
    let graph = match crate::catalog::lineage_graph(&state, &v.principal, name.as_deref()).await {
        Ok(g) => g,
        Err(e) if e.status() == StatusCode::NOT_FOUND || e.status() == StatusCode::BAD_REQUEST => {
            return message(&state, e.status(), "Not in the lineage", e.message());
        }
        Err(e) => return server_error(&state, "drawing the lineage failed", e.message()),
    };
    let mut tables = Vec::new();
    for n in &graph.nodes {
        if let Some((source, table)) = &n.table
            && let Ok(found) = state.catalog.resolve_all(table).await
            && let Some(t) = found
                .iter()
                .find(|t| matches!(t, Target::Table { source: s, .. } if s == source))
        {
            tables.push((n.label.clone(), page_url(t)));
        }
    }
    page(
        "catalog_lineage.html",
        context! {
            name,
            // Drawn by kondate-catalog, every text in it escaped; presentation attributes
            // only (no style, no script): the CSP allows it inline.
            svg => graph.svg(),
            tables,
            ..frame(&state, &v, "catalog")
        },
    )
}
