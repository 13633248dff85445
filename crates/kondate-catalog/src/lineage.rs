//! Lineage: where the tables kondate writes come from, as a graph — the annotators' sheet →
//! the label table → the model versions trained on it → the result tables they wrote →
//! the warehouse copies — built from what kondate recorded (label revisions, the models'
//! lineage, the result tables' write log, their declarations), readable as JSON and drawn
//! as SVG with no outside service.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use serde::Serialize;

use crate::CatalogError;

/// The graph.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Lineage {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

/// A step of the flow.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Node {
    /// Stable within the graph: `source:SET`, `labels:SET`, `model:NAME@V`, `result:NAME`,
    /// `warehouse:TABLE`.
    pub id: String,
    /// `source`, `label_table`, `model_version`, `result_table`, `warehouse_table`.
    pub kind: &'static str,
    pub label: String,
    /// A second line: revision, freshness, rows.
    pub detail: Option<String>,
    /// The catalog object it is, when a table: (source, table name).
    pub table: Option<(String, String)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub label: Option<String>,
}

/// The columns of the drawing, left to right.
const KINDS: [&str; 5] = [
    "source",
    "label_table",
    "model_version",
    "result_table",
    "warehouse_table",
];

fn ms_to_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// The lineage of everything the project declares, from what is recorded: label sets and
/// their current revisions, the model versions whose lineage names a label set or that
/// wrote a result table (the last `writes` writes of each), and the result tables with
/// their warehouse copies.
pub async fn build(
    project: &kondate_core::Project,
    labels: &kondate_labels::Labels,
    models: &kondate_models::Models,
    results: &kondate_results::Results,
    writes: usize,
) -> Result<Lineage, CatalogError> {
    let err = |what: &str, e: String| CatalogError::Invalid(format!("lineage: {what}: {e}"));
    let mut g = Lineage::default();
    let mut label_sets = BTreeSet::new();
    for set in labels
        .list(project)
        .await
        .map_err(|e| err("label sets", e.to_string()))?
    {
        let src = format!("source:{}", set.name);
        let tbl = format!("labels:{}", set.name);
        g.nodes.push(Node {
            id: src.clone(),
            kind: "source",
            label: set.source.clone(),
            detail: Some(format!("labels/{}", set.name)),
            table: None,
        });
        g.nodes.push(Node {
            id: tbl.clone(),
            kind: "label_table",
            label: format!("service: {}", set.table),
            detail: Some(match set.revision {
                Some(r) => format!("label set {} @ revision {r}", set.name),
                None => format!("label set {}, never synced", set.name),
            }),
            table: Some(("service".into(), set.table.clone())),
        });
        g.edges.push(Edge {
            from: src,
            to: tbl,
            label: Some("labels sync".into()),
        });
        label_sets.insert(set.name);
    }

    // Result tables and which model versions wrote them.
    // (model, version) → (result node, rows, when) of each of its writes.
    type Writes = Vec<(String, i64, i64)>;
    let mut wrote: BTreeMap<(String, i64), Writes> = BTreeMap::new();
    for decl in results
        .declarations()
        .map_err(|e| err("result tables", e.to_string()))?
    {
        let id = format!("result:{}", decl.name);
        let log = results
            .writes(&decl.name, writes)
            .await
            .map_err(|e| err("result writes", e.to_string()))?;
        g.nodes.push(Node {
            id: id.clone(),
            kind: "result_table",
            label: format!("service: {}", decl.table),
            detail: Some(match log.first() {
                Some(w) => format!(
                    "last written {} ({} rows)",
                    ms_to_time(w.written_at_ms),
                    w.rows
                ),
                None => "never written".into(),
            }),
            table: Some(("service".into(), decl.table.clone())),
        });
        for w in &log {
            if let (Some(m), Some(v)) = (&w.model_name, w.model_version) {
                wrote.entry((m.clone(), v)).or_default().push((
                    id.clone(),
                    w.rows,
                    w.written_at_ms,
                ));
            }
        }
        let wh = format!("warehouse:{}", decl.warehouse_table);
        g.nodes.push(Node {
            id: wh.clone(),
            kind: "warehouse_table",
            label: format!("warehouse: {}", decl.warehouse_table),
            detail: None,
            table: Some(("warehouse".into(), decl.warehouse_table.clone())),
        });
        g.edges.push(Edge {
            from: id,
            to: wh,
            label: Some("results export".into()),
        });
    }

    for m in models
        .list()
        .await
        .map_err(|e| err("models", e.to_string()))?
    {
        for v in models
            .versions(&m.name)
            .await
            .map_err(|e| err("model versions", e.to_string()))?
        {
            let trained: Vec<&kondate_models::LabelRef> = v
                .lineage
                .labels
                .iter()
                .filter(|l| label_sets.contains(&l.name))
                .collect();
            let written = wrote.remove(&(m.name.clone(), v.version));
            if trained.is_empty() && written.is_none() {
                continue;
            }
            let id = format!("model:{}@{}", m.name, v.version);
            g.nodes.push(Node {
                id: id.clone(),
                kind: "model_version",
                label: format!("{}@{}", m.name, v.version),
                detail: Some(if v.aliases.is_empty() {
                    format!("pushed {}", v.created_at)
                } else {
                    format!("{} — pushed {}", v.aliases.join(", "), v.created_at)
                }),
                table: None,
            });
            for l in trained {
                g.edges.push(Edge {
                    from: format!("labels:{}", l.name),
                    to: id.clone(),
                    label: l.revision.map(|r| format!("trained on revision {r}")),
                });
            }
            // One edge per table, labelled with the latest of its writes.
            let mut seen = BTreeSet::new();
            for (table, rows, at) in written.unwrap_or_default() {
                if seen.insert(table.clone()) {
                    g.edges.push(Edge {
                        from: id.clone(),
                        to: table,
                        label: Some(format!("{rows} rows, {}", ms_to_time(at))),
                    });
                }
            }
        }
    }
    Ok(g)
}

impl crate::Catalog {
    /// The node of `graph` that `name` names: a node id (`labels:SET`, `model:NAME@V`, …)
    /// or a table as the catalog knows it (bare, qualified); an error when it names
    /// nothing, more than one table, or a table kondate does not write.
    pub async fn lineage_node(&self, graph: &Lineage, name: &str) -> Result<String, CatalogError> {
        if graph.nodes.iter().any(|n| n.id == name) {
            return Ok(name.to_string());
        }
        let target = self.resolve(name).await?;
        let found = match &target {
            crate::Target::Table {
                source,
                schema,
                table,
            } => graph.node_of_table(source, schema, table),
            _ => None,
        };
        found
            .map(|n| n.id.clone())
            .ok_or_else(|| CatalogError::NoLineage(target.to_string()))
    }
}

impl Lineage {
    /// What is connected to the node `id`: everything upstream and downstream of it.
    pub fn around(&self, id: &str) -> Lineage {
        let mut keep: BTreeSet<String> = BTreeSet::from([id.to_string()]);
        for downstream in [true, false] {
            let mut frontier = vec![id.to_string()];
            while let Some(n) = frontier.pop() {
                for e in &self.edges {
                    let (a, b) = if downstream {
                        (&e.from, &e.to)
                    } else {
                        (&e.to, &e.from)
                    };
                    if *a == n && keep.insert(b.clone()) {
                        frontier.push(b.clone());
                    }
                }
            }
        }
        Lineage {
            nodes: self
                .nodes
                .iter()
                .filter(|n| keep.contains(&n.id))
                .cloned()
                .collect(),
            edges: self
                .edges
                .iter()
                .filter(|e| keep.contains(&e.from) && keep.contains(&e.to))
                .cloned()
                .collect(),
        }
    }

    /// The node that is the table `table` of `source` (a label, result or warehouse table).
    pub fn node_of_table(&self, source: &str, schema: &str, table: &str) -> Option<&Node> {
        let qualified = format!("{schema}.{table}");
        self.nodes.iter().find(|n| {
            n.table
                .as_ref()
                .is_some_and(|(s, t)| s == source && (*t == table || *t == qualified))
        })
    }

    /// The graph drawn left to right, one column per step of the flow (sheet, label table,
    /// model version, result table, warehouse copy). Every text is escaped.
    pub fn svg(&self) -> String {
        const W: f64 = 250.0;
        const H: f64 = 48.0;
        const GAP_X: f64 = 70.0;
        const GAP_Y: f64 = 22.0;
        const PAD: f64 = 20.0;
        let mut pos: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        let mut rows = 0usize;
        let columns: Vec<(usize, Vec<&Node>)> = KINDS
            .iter()
            .map(|k| {
                self.nodes
                    .iter()
                    .filter(|n| n.kind == *k)
                    .collect::<Vec<_>>()
            })
            .filter(|c| !c.is_empty())
            .enumerate()
            .collect();
        for (col, nodes) in &columns {
            rows = rows.max(nodes.len());
            for (row, n) in nodes.iter().enumerate() {
                pos.insert(
                    &n.id,
                    (
                        PAD + *col as f64 * (W + GAP_X),
                        PAD + row as f64 * (H + GAP_Y),
                    ),
                );
            }
        }
        let width = PAD * 2.0 + columns.len().max(1) as f64 * (W + GAP_X) - GAP_X;
        let height = PAD * 2.0 + rows.max(1) as f64 * (H + GAP_Y) - GAP_Y;
        let mut out = String::new();
        let _ = write!(
            out,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
             viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\
             <defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" \
             markerWidth=\"8\" markerHeight=\"8\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" \
             fill=\"#667\"/></marker></defs>"
        );
        for e in &self.edges {
            let (Some(a), Some(b)) = (pos.get(e.from.as_str()), pos.get(e.to.as_str())) else {
                continue;
            };
            let (x1, y1) = (a.0 + W, a.1 + H / 2.0);
            let (x2, y2) = (b.0, b.1 + H / 2.0);
            let mid = (x1 + x2) / 2.0;
            let _ = write!(
                out,
                "<path d=\"M{x1},{y1} C{mid},{y1} {mid},{y2} {x2},{y2}\" fill=\"none\" \
                 stroke=\"#667\" marker-end=\"url(#arrow)\"><title>{}</title></path>",
                escape(e.label.as_deref().unwrap_or(""))
            );
        }
        for n in &self.nodes {
            let Some((x, y)) = pos.get(n.id.as_str()) else {
                continue;
            };
            let fill = match n.kind {
                "source" => "#fff7e0",
                "label_table" => "#e8f4ff",
                "model_version" => "#efe8ff",
                "result_table" => "#e6f7ea",
                _ => "#f0f0f0",
            };
            let _ = write!(
                out,
                "<g><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{W}\" height=\"{H}\" rx=\"6\" \
                 fill=\"{fill}\" stroke=\"#889\"/><text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>",
                escape(&n.id),
                x + 8.0,
                y + 19.0,
                escape(&truncate(&n.label, 34))
            );
            if let Some(d) = &n.detail {
                let _ = write!(
                    out,
                    "<text x=\"{}\" y=\"{}\" fill=\"#445\">{}</text>",
                    x + 8.0,
                    y + 37.0,
                    escape(&truncate(d, 40))
                );
            }
            out.push_str("</g>");
        }
        out.push_str("</svg>\n");
        out
    }
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max - 1).collect();
        t.push('…');
        t
    }
}

/// `s` safe as XML text or an attribute value.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => {}
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph() -> Lineage {
        let node = |id: &str, kind: &'static str, label: &str| Node {
            id: id.into(),
            kind,
            label: label.into(),
            detail: Some("<b>&detail".into()),
            table: None,
        };
        let edge = |a: &str, b: &str| Edge {
            from: a.into(),
            to: b.into(),
            label: None,
        };
        Lineage {
            nodes: vec![
                node("source:a", "source", "sheet <script>alert(1)</script>"),
                node("labels:a", "label_table", "service: a"),
                node("model:m@1", "model_version", "m@1"),
                node("result:r", "result_table", "service: r"),
                node("warehouse:r", "warehouse_table", "warehouse: r"),
                node("result:other", "result_table", "service: other"),
            ],
            edges: vec![
                edge("source:a", "labels:a"),
                edge("labels:a", "model:m@1"),
                edge("model:m@1", "result:r"),
                edge("result:r", "warehouse:r"),
            ],
        }
    }

    #[test]
    fn around_keeps_what_is_upstream_and_downstream() {
        let g = graph().around("model:m@1");
        let ids: Vec<&str> = g.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "source:a",
                "labels:a",
                "model:m@1",
                "result:r",
                "warehouse:r"
            ]
        );
        assert_eq!(g.edges.len(), 4);
        let g = graph().around("result:other");
        assert_eq!(g.nodes.len(), 1);
        assert!(g.edges.is_empty());
    }

    #[test]
    fn svg_escapes_every_text_and_draws_every_edge() {
        let svg = graph().svg();
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(!svg.contains("<script"), "{svg}");
        assert!(svg.contains("&lt;script&gt;"), "{svg}");
        assert!(svg.contains("&lt;b&gt;&amp;detail"), "{svg}");
        assert_eq!(svg.matches("marker-end=").count(), 4);
        assert_eq!(svg.matches("<rect").count(), 6);
    }
}
