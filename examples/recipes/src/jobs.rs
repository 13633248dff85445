//! The two jobs, as the apps run them.

use std::collections::{BTreeMap, HashMap};

use futures::StreamExt;
use kondate_client::models::PushOptions;
use kondate_client::{Client, ClientError, Value};
use serde::Serialize;

use crate::features::{Recipe, extract, fold, name_features, name_map};
use crate::model::{Model, scores};

/// The model's name in the registry.
pub const MODEL: &str = "recipe-category";
/// The result table inference writes (`results/recipe_categories.toml`).
pub const RESULT_TABLE: &str = "recipe_categories";

/// The ingredient normaliser in the registry.
pub const NORMALISER: &str = "ingredient-normaliser";
/// The result table the normaliser writes (`results/ingredient_canonical_names.toml`).
pub const NAMES_TABLE: &str = "ingredient_canonical_names";

/// What the normaliser measured and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct NormaliseReport {
    pub sheet_revision: i64,
    /// Spellings on the sheet, and how many were held out to measure the model.
    pub sheet_rows: usize,
    pub test_rows: usize,
    /// Held-out spellings mapped to the sheet's canonical name.
    pub accuracy: f64,
    pub model_version: i64,
    /// Distinct spellings in the recipes, and how many the sheet did not cover (the model
    /// mapped those).
    pub spellings: u64,
    pub by_model: u64,
    pub canonical_names: usize,
}

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

/// Map every ingredient spelling in the recipes to a canonical name: the annotators' sheet
/// where it covers the spelling, else a classifier trained on the sheet (character n-grams
/// of the kana-folded spelling). Measured on a held-out fifth of the sheet, pushed as
/// `ingredient-normaliser` (alias `production`), written to `ingredient_canonical_names`.
pub async fn normalise(client: &Client) -> Result<NormaliseReport, ClientError> {
    let sheet = client.labels("ingredient_names", None).await?;
    let (v_col, c_col) = (sheet.column("variant")?, sheet.column("canonical")?);
    let rows: Vec<(String, String)> = sheet
        .rows
        .iter()
        .filter_map(|r| Some((r[v_col].clone()?, r[c_col].clone()?)))
        .collect();
    if rows.len() < 10 {
        return Err(bad(format!(
            "ingredient_names revision {} has {} rows; the normaliser needs more",
            sheet.revision,
            rows.len()
        )));
    }
    let mut classes: Vec<String> = rows.iter().map(|(_, c)| c.clone()).collect();
    classes.sort();
    classes.dedup();
    let class_of = |c: &str| classes.iter().position(|x| x == c).expect("listed");
    let examples: Vec<(Vec<(u32, f32)>, usize)> = rows
        .iter()
        .map(|(v, c)| (name_features(v), class_of(c)))
        .collect();
    // Every fifth spelling that is not the canonical name itself is held out: the model
    // must place spellings it has not seen.
    let (mut train, mut test) = (Vec::new(), Vec::new());
    for (i, ((v, c), ex)) in rows.iter().zip(&examples).enumerate() {
        if v != c && i % 5 == 0 {
            test.push(ex.clone());
        } else {
            train.push(ex.clone());
        }
    }
    let mut measured = Model::new(classes.clone());
    measured.train(&train, 30, 0x6e616d65);
    let correct = test
        .iter()
        .filter(|(x, y)| measured.classify(x).0 == *y)
        .count();
    let accuracy = correct as f64 / test.len().max(1) as f64;
    // The model that is used learns from the whole sheet.
    let mut model = Model::new(classes.clone());
    model.meta.features =
        "char 1-3-grams of the kana-folded spelling, and the whole spelling; hashed".into();
    model.train(&examples, 30, 0x6e616d65);

    let dir = tempfile::tempdir().map_err(|e| bad(e.to_string()))?;
    model.save(dir.path()).map_err(|e| bad(e.to_string()))?;
    let opts = PushOptions {
        metrics: BTreeMap::from([
            ("heldout_accuracy".to_string(), accuracy),
            ("test_rows".to_string(), test.len() as f64),
        ]),
        params: BTreeMap::from([("classes".to_string(), classes.len().to_string())]),
        labels: vec![format!("ingredient_names@{}", sheet.revision)],
        ..Default::default()
    };
    let v = client.push_model(NORMALISER, dir.path(), &opts).await?;
    client
        .set_model_alias(NORMALISER, "production", v.version)
        .await?;

    let known: HashMap<String, String> = rows
        .iter()
        .map(|(v, c)| (fold(v.trim()), c.clone()))
        .collect();
    let mut spellings = client
        .query("SELECT DISTINCT name FROM recipes.recipe_ingredients", &[])
        .await?
        .rows();
    let mut w = client
        .results_writer(NAMES_TABLE)?
        .model(&format!("{NORMALISER}@{}", v.version))
        .prune();
    let (mut n, mut by_model) = (0u64, 0u64);
    let mut used = std::collections::BTreeSet::new();
    while let Some(r) = spellings.next().await {
        let name = text(&r?[0]);
        if name.is_empty() {
            continue;
        }
        let (canonical, score, method) = match known.get(&fold(name.trim())) {
            Some(c) => (c.clone(), 1.0, "sheet"),
            None => {
                by_model += 1;
                let (c, p) = model.classify(&name_features(&name));
                (classes[c].clone(), (p as f64 * 1e4).round() / 1e4, "model")
            }
        };
        used.insert(canonical.clone());
        w.push_row(serde_json::json!({
            "name": name, "canonical": canonical, "score": score, "method": method,
        }))?;
        n += 1;
    }
    w.commit().await?;
    Ok(NormaliseReport {
        sheet_revision: sheet.revision,
        sheet_rows: rows.len(),
        test_rows: test.len(),
        accuracy,
        model_version: v.version,
        spellings: n,
        by_model,
        canonical_names: used.len(),
    })
}
