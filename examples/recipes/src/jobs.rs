//! The two jobs, as the apps run them.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use kondate_client::models::PushOptions;
use kondate_client::{Client, ClientError, Value};
use serde::Serialize;

use crate::features::{Recipe, extract, name_map};
use crate::model::{Model, scores};

/// The model's name in the registry.
pub const MODEL: &str = "recipe-category";
/// The result table inference writes (`results/recipe_categories.toml`).
pub const RESULT_TABLE: &str = "recipe_categories";

/// What training measured and pushed.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub labels_revision: i64,
    pub train_rows: usize,
    pub test_rows: usize,
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Accuracy of always answering the most common training category.
    pub baseline_accuracy: f64,
    pub model_version: i64,
}

/// What inference wrote.
#[derive(Debug, Clone, Serialize)]
pub struct InferReport {
    pub model_version: i64,
    pub rows: u64,
    pub table: String,
}

fn bad(message: String) -> ClientError {
    ClientError::Config(message)
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        Value::Null => String::new(),
        other => format!("{other:?}"),
    }
}

fn int(v: &Value) -> Result<i64, ClientError> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(bad(format!("expected an integer id, got {other:?}"))),
    }
}

/// The normalisation sheet, latest revision: variant → canonical.
async fn ingredient_names(client: &Client) -> Result<(HashMap<String, String>, i64), ClientError> {
    let sheet = client.labels("ingredient_names", None).await?;
    let (v, c) = (sheet.column("variant")?, sheet.column("canonical")?);
    let map = name_map(
        sheet
            .rows
            .iter()
            .filter_map(|r| Some((r[v].clone()?, r[c].clone()?))),
    );
    Ok((map, sheet.revision))
}

/// Recipes with ids in `lo..=hi`, with their ingredient lines, read through the query API.
async fn recipes(client: &Client, lo: i64, hi: i64) -> Result<BTreeMap<i64, Recipe>, ClientError> {
    let (lo_s, hi_s) = (lo.to_string(), hi.to_string());
    let mut out = BTreeMap::new();
    let mut rows = client
        .query(
            "SELECT id, title, description FROM recipes.recipes WHERE id BETWEEN ? AND ?",
            &[&lo_s, &hi_s],
        )
        .await?
        .rows();
    while let Some(r) = rows.next().await {
        let r = r?;
        out.insert(
            int(&r[0])?,
            Recipe {
                title: text(&r[1]),
                description: text(&r[2]),
                ingredients: Vec::new(),
            },
        );
    }
    let mut rows = client
        .query(
            "SELECT recipe_id, name FROM recipes.recipe_ingredients WHERE recipe_id BETWEEN ? AND ?",
            &[&lo_s, &hi_s],
        )
        .await?
        .rows();
    while let Some(r) = rows.next().await {
        let r = r?;
        if let Some(recipe) = out.get_mut(&int(&r[0])?) {
            recipe.ingredients.push(text(&r[1]));
        }
    }
    Ok(out)
}

/// Train on the latest `recipe_category` revision, measure on a held-out fifth, push the
/// model with its metrics and lineage, and alias it `production`.
pub async fn train(client: &Client) -> Result<TrainReport, ClientError> {
    let labels = client.labels("recipe_category", None).await?;
    let (id_col, cat_col) = (labels.column("recipe_id")?, labels.column("category")?);
    let mut labelled: Vec<(i64, String)> = Vec::new();
    for r in &labels.rows {
        if let (Some(id), Some(cat)) = (&r[id_col], &r[cat_col]) {
            let id = id
                .parse()
                .map_err(|_| bad(format!("label row with recipe_id `{id}`")))?;
            labelled.push((id, cat.clone()));
        }
    }
    if labelled.len() < 10 {
        return Err(bad(format!(
            "recipe_category revision {} has {} labelled recipes; label more to train",
            labels.revision,
            labelled.len()
        )));
    }
    let (names, names_rev) = ingredient_names(client).await?;
    let lo = labelled.iter().map(|(i, _)| *i).min().unwrap_or(0);
    let hi = labelled.iter().map(|(i, _)| *i).max().unwrap_or(0);
    let texts = recipes(client, lo, hi).await?;
    let mut classes: Vec<String> = labelled.iter().map(|(_, c)| c.clone()).collect();
    classes.sort();
    classes.dedup();
    let class_of = |c: &str| classes.iter().position(|x| x == c).expect("listed");
    // Every fifth recipe by id is held out: the same split on every run.
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (id, cat) in &labelled {
        let Some(r) = texts.get(id) else { continue };
        let ex = (extract(r, &names), class_of(cat));
        if id % 5 == 0 {
            test.push(ex);
        } else {
            train.push(ex);
        }
    }
    let mut model = Model::new(classes.clone());
    model.train(&train, 6, 0x6b6f6e64);
    let truth: Vec<usize> = test.iter().map(|(_, y)| *y).collect();
    let predicted: Vec<usize> = test.iter().map(|(x, _)| model.classify(x).0).collect();
    let (accuracy, macro_f1) = scores(&truth, &predicted, classes.len());
    let mut counts = vec![0usize; classes.len()];
    for (_, y) in &train {
        counts[*y] += 1;
    }
    let majority = (0..classes.len()).max_by_key(|c| counts[*c]).unwrap_or(0);
    let baseline_accuracy =
        truth.iter().filter(|y| **y == majority).count() as f64 / truth.len().max(1) as f64;

    let dir = tempfile::tempdir().map_err(|e| bad(e.to_string()))?;
    model.save(dir.path()).map_err(|e| bad(e.to_string()))?;
    let opts = PushOptions {
        metrics: BTreeMap::from([
            ("accuracy".to_string(), accuracy),
            ("macro_f1".to_string(), macro_f1),
            ("baseline_accuracy".to_string(), baseline_accuracy),
            ("test_rows".to_string(), test.len() as f64),
        ]),
        params: BTreeMap::from([
            ("features".to_string(), model.meta.features.clone()),
            ("classes".to_string(), classes.join(",")),
            ("epochs".to_string(), "6".to_string()),
        ]),
        labels: vec![
            format!("recipe_category@{}", labels.revision),
            format!("ingredient_names@{names_rev}"),
        ],
        note: std::env::var("KONDATE_RUN_ID")
            .ok()
            .map(|r| format!("trained by run {r}")),
        ..Default::default()
    };
    let v = client.push_model(MODEL, dir.path(), &opts).await?;
    client
        .set_model_alias(MODEL, "production", v.version)
        .await?;
    Ok(TrainReport {
        labels_revision: labels.revision,
        train_rows: train.len(),
        test_rows: test.len(),
        accuracy,
        macro_f1,
        baseline_accuracy,
        model_version: v.version,
    })
}

/// Classify every recipe with the `production` model and write the result table.
pub async fn infer(client: &Client) -> Result<InferReport, ClientError> {
    let dir = tempfile::tempdir().map_err(|e| bad(e.to_string()))?;
    let (v, path) = client
        .pull_model(
            &format!("{MODEL}@production"),
            &dir.path().join("model"),
            false,
        )
        .await?;
    let model = Model::load(&path).map_err(|e| bad(format!("{}: {e}", path.display())))?;
    let (names, _) = ingredient_names(client).await?;
    let all = recipes(client, i64::MIN, i64::MAX).await?;
    let mut w = client
        .results_writer(RESULT_TABLE)?
        .model(&format!("{MODEL}@{}", v.version));
    for (id, r) in &all {
        let (c, p) = model.classify(&extract(r, &names));
        w.push_row(serde_json::json!({
            "recipe_id": id,
            "category": model.meta.classes[c],
            "score": (p as f64 * 1e4).round() / 1e4,
        }))?;
    }
    let report = w.commit().await?;
    Ok(InferReport {
        model_version: v.version,
        rows: report.rows,
        table: report.table,
    })
}
