//! The console's Models section: models, a model's versions with a chart of each metric
//! over its versions (SVG drawn on the server), its aliases and their moves, one version's
//! files, metrics, parameters and lineage, and moving an alias (confirmed; `models:alias` on
//! `NAME@ALIAS`, as in the API).

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use kondate_access::ScopeKind::{ModelsAlias, ModelsRead};
use kondate_core::artifact::ModelRef;
use kondate_models::VersionInfo;
use minijinja::context;
use minijinja::value::Serde;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{PAGE_ROWS, Viewer, change, forbidden, frame, message, page, read_error, see_other};
use crate::AppState;
use crate::api::ApiError;

/// The chart covers at most this many of the latest versions.
const CHART_VERSIONS: i64 = 200;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route("/models", get(models_page))
        .route("/models/{name}", get(model_page))
        .route("/models/{name}/versions/{version}", get(version_page))
        .route("/models/{name}/aliases", get(alias_form).post(move_alias))
}

fn may_read(state: &AppState, v: &Viewer, name: &str) -> Result<(), Response> {
    if v.principal.allows(ModelsRead, Some(name)) {
        Ok(())
    } else {
        Err(forbidden(
            state,
            &format!(
                "Reading model {name} needs models:read on it; ask an admin for a role that has it."
            ),
        ))
    }
}

#[derive(Deserialize)]
struct ListParams {
    page: Option<usize>,
}

/// `GET /models?page=N`: the models the viewer may read, 50 a page.
async fn models_page(
    State(state): State<AppState>,
    v: Viewer,
    Query(p): Query<ListParams>,
) -> Response {
    let mut models = match state.models.list().await {
        Ok(m) => m,
        Err(e) => return read_error(&state, e.into()),
    };
    models.retain(|m| v.principal.allows(ModelsRead, Some(&m.name)));
    let (shown, prev, next) = super::paged(&models, p.page);
    page(
        "models.html",
        context! {
            models => Serde(shown),
            prev,
            next,
            ..frame(&state, &v, "models")
        },
    )
}

/// One metric drawn over versions: a polyline in a `WIDTH`×`HEIGHT` box, with a dot (and
/// its value on hover) per version.
#[derive(Debug, Serialize)]
struct Chart {
    metric: String,
    min: f64,
    max: f64,
    first: i64,
    last: i64,
    line: String,
    dots: Vec<Dot>,
}

#[derive(Debug, Serialize)]
struct Dot {
    x: f64,
    y: f64,
    version: i64,
    value: f64,
}

const WIDTH: f64 = 560.0;
const HEIGHT: f64 = 160.0;
/// Room for the axis labels: left, right, top, bottom.
const PAD: (f64, f64, f64, f64) = (56.0, 12.0, 12.0, 24.0);

/// A chart per metric, over `versions` (oldest first); a metric a version lacks is a gap
/// in its dots, not a zero.
fn charts(versions: &[VersionInfo]) -> Vec<Chart> {
    let mut names: Vec<&String> = versions.iter().flat_map(|v| v.metrics.keys()).collect();
    names.sort();
    names.dedup();
    let (Some(first), Some(last)) = (versions.first(), versions.last()) else {
        return Vec::new();
    };
    let (first, last) = (first.version, last.version);
    let span_x = (last - first).max(1) as f64;
    names
        .into_iter()
        .map(|metric| {
            let points: Vec<(i64, f64)> = versions
                .iter()
                .filter_map(|v| v.metrics.get(metric).map(|m| (v.version, *m)))
                .filter(|(_, m)| m.is_finite())
                .collect();
            let min = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
            let max = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
            let span_y = if max > min { max - min } else { 1.0 };
            let inner_w = WIDTH - PAD.0 - PAD.1;
            let inner_h = HEIGHT - PAD.2 - PAD.3;
            let dots: Vec<Dot> = points
                .iter()
                .map(|&(version, value)| {
                    let x = if last == first {
                        PAD.0 + inner_w / 2.0
                    } else {
                        PAD.0 + (version - first) as f64 / span_x * inner_w
                    };
                    let y = if max > min {
                        PAD.2 + (max - value) / span_y * inner_h
                    } else {
                        PAD.2 + inner_h / 2.0
                    };
                    Dot {
                        x,
                        y,
                        version,
                        value,
                    }
                })
                .collect();
            let line = dots
                .iter()
                .map(|d| format!("{:.1},{:.1}", d.x, d.y))
                .collect::<Vec<_>>()
                .join(" ");
            Chart {
                metric: metric.clone(),
                min: if min.is_finite() { min } else { 0.0 },
                max: if max.is_finite() { max } else { 0.0 },
                first,
                last,
                line,
                dots,
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct VersionsParams {
    /// Versions below this one (the next page).
    before: Option<i64>,
}

/// `GET /models/{name}?before=N`: a model's versions (50 a page, newest first) with their
/// metrics, the chart of each metric over the latest 200, its aliases and their latest
/// moves.
async fn model_page(
    State(state): State<AppState>,
    Path(name): Path<String>,
    v: Viewer,
    Query(p): Query<VersionsParams>,
) -> Response {
    if let Err(res) = may_read(&state, &v, &name) {
        return res;
    }
    // The chart's latest versions; the first page of the table is their newest rows.
    let mut recent = match state
        .models
        .recent_versions(&name, None, CHART_VERSIONS)
        .await
    {
        Ok(vs) => vs,
        Err(e) => return read_error(&state, e.into()),
    };
    let mut versions = match p.before {
        None => recent
            .iter()
            .take(PAGE_ROWS as usize + 1)
            .cloned()
            .collect(),
        Some(_) => match state
            .models
            .recent_versions(&name, p.before, PAGE_ROWS + 1)
            .await
        {
            Ok(vs) => vs,
            Err(e) => return read_error(&state, e.into()),
        },
    };
    let more = versions.len() as i64 > PAGE_ROWS;
    versions.truncate(PAGE_ROWS as usize);
    recent.reverse();
    let moves = match state.models.recent_alias_moves(&name, PAGE_ROWS).await {
        Ok(m) => m,
        Err(e) => return read_error(&state, e.into()),
    };
    let aliases = match state.models.aliases(&name).await {
        Ok(a) => a,
        Err(e) => return read_error(&state, e.into()),
    };
    let aliases: Vec<_> = aliases
        .into_iter()
        .map(|(alias, version)| {
            let movable = v
                .principal
                .allows(ModelsAlias, Some(&format!("{name}@{alias}")));
            json!({"alias": alias, "version": version, "movable": movable})
        })
        .collect();
    let metric_names: Vec<String> = {
        let mut n: Vec<String> = versions
            .iter()
            .flat_map(|v| v.metrics.keys().cloned())
            .collect();
        n.sort();
        n.dedup();
        n
    };
    page(
        "model.html",
        context! {
            name,
            versions => Serde(&versions),
            metric_names,
            next => more.then(|| versions.last().map(|v| v.version)).flatten(),
            newest => p.before.is_some(),
            charts => Serde(charts(&recent)),
            width => WIDTH,
            height => HEIGHT,
            pad => Serde(json!({"left": PAD.0, "right": PAD.1, "top": PAD.2, "bottom": PAD.3})),
            aliases => Serde(aliases),
            can_alias => v.principal.has_kind(ModelsAlias),
            moves => Serde(moves),
            ..frame(&state, &v, "models")
        },
    )
}

/// `GET /models/{name}/versions/{N|ALIAS|latest}`: one version in full.
async fn version_page(
    State(state): State<AppState>,
    Path((name, version)): Path<(String, String)>,
    v: Viewer,
) -> Response {
    if let Err(res) = may_read(&state, &v, &name) {
        return res;
    }
    let r = match ModelRef::parse(&format!("{name}@{version}")) {
        Ok(r) => r,
        Err(e) => return message(&state, StatusCode::NOT_FOUND, "Not found", &e.to_string()),
    };
    match state.models.show(&r).await {
        Ok(info) => page(
            "model_version.html",
            context! { info => Serde(&info), ..frame(&state, &v, "models") },
        ),
        Err(e) => read_error(&state, e.into()),
    }
}

#[derive(Deserialize)]
struct AliasParams {
    alias: Option<String>,
    version: Option<String>,
}

/// `GET /models/{name}/aliases?alias=A&version=N`: with both, the confirmation of moving
/// (or setting) alias A to version N; otherwise the form that asks for them.
async fn alias_form(
    State(state): State<AppState>,
    Path(name): Path<String>,
    v: Viewer,
    Query(p): Query<AliasParams>,
) -> Response {
    if let Err(res) = may_read(&state, &v, &name) {
        return res;
    }
    let alias = p.alias.unwrap_or_default();
    if !alias.is_empty()
        && !v
            .principal
            .allows(ModelsAlias, Some(&format!("{name}@{alias}")))
    {
        return forbidden(
            &state,
            &format!(
                "Moving {name}@{alias} needs models:alias on it; ask an admin for a role that has it."
            ),
        );
    }
    if !v.principal.has_kind(ModelsAlias) {
        return forbidden(
            &state,
            "Moving aliases needs models:alias; ask an admin for a role that has it.",
        );
    }
    let version = p.version.unwrap_or_default();
    if !alias.is_empty() && !version.is_empty() {
        let to: i64 = match version.parse() {
            Ok(n) => n,
            Err(_) => {
                return message(
                    &state,
                    StatusCode::BAD_REQUEST,
                    "Not accepted",
                    &format!("Version `{version}` is not a version number."),
                );
            }
        };
        let from = state
            .models
            .resolve(&ModelRef {
                name: name.clone(),
                selector: kondate_core::artifact::Selector::Alias(alias.clone()),
            })
            .await
            .ok();
        let text = match from {
            Some(f) if f == to => format!("{alias} points at version {to} already."),
            Some(f) => format!(
                "Whatever reads {name}@{alias} gets version {to} instead of version {f} from now \
                 on (the move is recorded and can be moved back)."
            ),
            None => format!("Whatever reads {name}@{alias} gets version {to} from now on."),
        };
        return page(
            "confirm.html",
            context! {
                heading => format!("Move {name}@{alias} to version {to}?"),
                text,
                action => format!("/models/{name}/aliases"),
                fields => vec![("alias", alias.clone()), ("version", to.to_string())],
                button => "Move the alias",
                back => format!("/models/{name}"),
                ..frame(&state, &v, "models")
            },
        );
    }
    let versions = match state.models.recent_versions(&name, None, PAGE_ROWS).await {
        Ok(vs) => vs,
        Err(e) => return read_error(&state, e.into()),
    };
    page(
        "alias_form.html",
        context! {
            name,
            alias,
            versions => Serde(&versions),
            ..frame(&state, &v, "models")
        },
    )
}

#[derive(Deserialize)]
struct MoveForm {
    csrf: String,
    alias: String,
    version: String,
}

/// `POST /models/{name}/aliases`: move the alias (CSRF-checked, audited as the API's
/// `models.alias.set`), then the model.
async fn move_alias(
    State(state): State<AppState>,
    Path(name): Path<String>,
    v: Viewer,
    Form(form): Form<MoveForm>,
) -> Response {
    let target = format!("{name}@{}", form.alias);
    let params = json!({"version": form.version});
    change(
        &state,
        &v,
        &form.csrf,
        "models.alias.set",
        Some(&target),
        params,
        async {
            v.principal.require(ModelsAlias, Some(&target))?;
            let version: i64 = form.version.trim().parse().map_err(|_| {
                ApiError::invalid(format!(
                    "version `{}` is not a version number",
                    form.version
                ))
            })?;
            state
                .models
                .set_alias(&name, &form.alias, Some(version), &v.principal.actor())
                .await?;
            Ok(see_other(&format!("/models/{name}")))
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(n: i64, metrics: &[(&str, f64)]) -> VersionInfo {
        serde_json::from_value(json!({
            "model": "m", "version": n, "layout": "file",
            "content_digest": format!("sha256:{}", "0".repeat(64)), "size": 1, "files": [],
            "metrics": metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect::<std::collections::BTreeMap<_, _>>(),
            "params": {}, "lineage": {}, "note": null, "created_by": "t",
            "created_at": "2026-12-01T00:00:00Z", "aliases": []
        }))
        .unwrap()
    }

    #[test]
    fn a_chart_spans_its_box_and_leaves_gaps_for_missing_metrics() {
        let vs = [
            version(1, &[("acc", 0.5), ("loss", 2.0)]),
            version(2, &[("acc", 0.7)]),
            version(4, &[("acc", 0.9), ("loss", 1.0)]),
        ];
        let c = charts(&vs);
        assert_eq!(c.len(), 2);
        let acc = &c[0];
        assert_eq!(acc.metric, "acc");
        assert_eq!((acc.min, acc.max, acc.first, acc.last), (0.5, 0.9, 1, 4));
        assert_eq!(acc.dots.len(), 3);
        assert_eq!(acc.dots[0].x, PAD.0);
        assert_eq!(acc.dots[2].x, WIDTH - PAD.1);
        assert_eq!(acc.dots[2].y, PAD.2, "the highest value at the top");
        assert_eq!(acc.dots[0].y, HEIGHT - PAD.3);
        assert_eq!(c[1].dots.len(), 2, "version 2 has no loss");
        // One version, or one value: in the middle, not divided by zero.
        let one = charts(&vs[..1]);
        assert!(one[0].dots[0].x.is_finite() && one[0].dots[0].y.is_finite());
    }
}
