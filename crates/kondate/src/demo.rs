//! `kondate demo`: the whole flow that exists so far, on the embedded defaults, in one
//! command — a project, a deterministic corpus of Japanese recipes (`demo_data`) in the
//! embedded warehouse, the annotators' sheets as label revisions, the query API serving
//! it, the Rust client reading it back, and a training job run as an app.

use std::path::PathBuf;
use std::time::Instant;

use futures::StreamExt;
use kondate_client::Value;
use kondate_core::Project;
use kondate_warehouse::{LoadOptions, TableName};

use crate::output::client_failure;
use crate::tokens_cmd::query_failure;
use crate::{CmdResult, Failure};

#[derive(clap::Args)]
pub struct DemoArgs {
    /// Project folder (created with `kondate init` if it holds no project yet).
    #[arg(default_value = "kondate-demo")]
    dir: PathBuf,
    /// Sample recipes to generate.
    #[arg(long, default_value_t = 200_000)]
    rows: u64,
    /// Keep the server running afterwards on server.listen (Ctrl-C stops it).
    #[arg(long)]
    serve: bool,
}

/// Recipes the demo's annotators have labelled.
const LABELLED: u64 = 5_000;

/// The demo's training job (written by `kondate demo` when missing).
const TRAIN_APP: &str = r#"// A training job as kondate runs it (written by `kondate demo`; docs/apps.md).
// It starts in a clean environment with the run contract: KONDATE_URL, and a token made for
// this run in KONDATE_TOKEN / KONDATE_TOKEN_SECRET. With them it reads its training data
// through the query API, "trains" (here: per-category statistics), and pushes the model
// with its lineage. DEMO_KONDATE_BIN is the kondate binary, passed by the demo with -e.
{
  app: {
    command: ['sh', '-c', |||
      set -e
      "$DEMO_KONDATE_BIN" query "SELECT count(*) AS recipes, avg(rating) AS rating FROM recipes.recipes WHERE is_public" --out .kondate/demo/model.csv
      echo "trained on $(tail -n 1 .kondate/demo/model.csv | cut -d, -f1) public recipes"
      "$DEMO_KONDATE_BIN" models push recipe-category .kondate/demo/model.csv --labels recipe_category --param source=recipes.recipes --note "trained by run $KONDATE_RUN_ID"
    |||],
    memory: 1024,
  },
  timeout: '5m',
}
"#;

const INGREDIENT_DEFINITION: &str = r#"# The normalisation sheet: how recipe writers spell an ingredient → its canonical name
# (written by `kondate demo`; data/ingredient_names.csv stands in for the annotators' sheet).
table = "ingredient_name_labels"
key = ["variant"]
[source]
type = "csv"
path = "data/ingredient_names.csv"
[columns]
variant   = { type = "string", header = "表記" }
canonical = { type = "string", required = true, header = "正規名" }
"#;

const LABEL_DEFINITION: &str = r#"# The annotators' sheet of recipe categories (written by `kondate demo`).
# In production the source is usually their Google Sheet:
#   [source]
#   type = "google_sheets"
#   spreadsheet_id = "…"
#   range = "Labels!A1:D"
#   credentials_file = "service-account.json"
table = "recipe_category_labels"
key = ["recipe_id"]
[source]
type = "csv"
path = "data/recipe_category.csv"
[columns]
recipe_id = { type = "integer", header = "レシピID" }
category  = { type = "enum", values = ["主菜", "副菜", "汁物", "主食", "デザート"], required = true, header = "カテゴリ" }
annotator = { type = "string", role = "annotator", header = "担当" }
note      = { type = "string", role = "comment", header = "メモ" }
"#;

pub async fn run(args: DemoArgs) -> CmdResult {
    let started = Instant::now();
    let mut project = if args.dir.join(kondate_core::project::CONFIG_FILE).is_file() {
        Project::load(&args.dir, std::env::vars()).map_err(|e| Failure::invalid(e.to_string()))?
    } else {
        Project::init(&args.dir).map_err(|e| Failure::invalid(e.to_string()))?
    };
    println!("kondate demo in {}", project.root.display());

    // 1. Data into the embedded warehouse (replacing the tables, so a re-run is idempotent).
    let data_dir = project.state_dir().join("demo");
    std::fs::create_dir_all(&data_dir)?;
    std::fs::create_dir_all(project.root.join("data"))?;
    let t = Instant::now();
    let generated = crate::demo_data::generate(
        &data_dir,
        args.rows,
        LABELLED.min(args.rows),
        &project.root.join("data/recipe_category.csv"),
        &project.root.join("data/ingredient_names.csv"),
    )?;
    let store = kondate_store::Store::open(&project.config.store, &project.config.public_url())?;
    let wh = kondate_warehouse::open(&project.config, &store).await?;
    for (table, file, schema) in [
        (
            "recipes.recipes",
            "recipes.csv",
            "id:bigint,title:text,description:text,cook_minutes:int,rating:double,servings:int,is_public:bool,published_at:timestamp",
        ),
        (
            "recipes.recipe_ingredients",
            "recipe_ingredients.csv",
            "recipe_id:bigint,position:int,name:text,amount:text",
        ),
        (
            "recipes.recipe_steps",
            "recipe_steps.csv",
            "recipe_id:bigint,position:int,text:text",
        ),
    ] {
        let spinner = crate::output::spinner(&format!("loading {table}"));
        let opts = LoadOptions {
            schema: Some(schema.into()),
            ..Default::default()
        };
        let report = wh
            .load(&TableName::parse(table)?, &[data_dir.join(file)], &opts)
            .await;
        spinner.finish_and_clear();
        report?;
    }
    println!(
        "  warehouse  {} recipes, {} ingredient lines, {} steps into recipes.* in {:.1}s",
        generated.recipes,
        generated.ingredient_lines,
        generated.steps,
        t.elapsed().as_secs_f64()
    );

    // 2. The annotators' sheets into the service database, as revisions.
    let labels = kondate_labels::sync::Labels::open(&project.config).await?;
    for (name, definition) in [
        ("recipe_category", LABEL_DEFINITION),
        ("ingredient_names", INGREDIENT_DEFINITION),
    ] {
        let path = project.root.join(format!("labels/{name}.toml"));
        if !path.exists() {
            std::fs::write(&path, definition)?;
        }
        let set = kondate_labels::find(&project, name)?;
        let grid = kondate_labels::read_source(&set).await?;
        let opts = kondate_labels::SyncOptions {
            actor: "demo".into(),
            ..Default::default()
        };
        let r = labels.sync(&set, &grid, &opts).await?;
        println!(
            "  labels     {} rows of {name} in {}, revision {}{}",
            r.rows,
            set.table,
            r.revision,
            match r.outcome {
                kondate_labels::Outcome::Applied => format!(" ({} added)", r.diff.added.len()),
                _ => " (unchanged since the last run)".into(),
            }
        );
    }

    // 3. The query API on loopback.
    let listen = if args.serve {
        project.config.server.listen.clone()
    } else {
        "127.0.0.1:0".into()
    };
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .map_err(|e| format!("cannot listen on {listen}: {e}; is another server running there?"))?;
    let addr = listener.local_addr()?;
    let endpoint = format!("http://{addr}");
    if project.config.server.public_url.is_none() {
        project.config.server.public_url = Some(endpoint.clone());
    }
    let state = crate::serve_cmd::state(&project).await?;
    let token = state
        .tokens
        .create_or_rotate("demo")
        .await
        .map_err(query_failure)?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(kondate_web::serve(listener, state, async {
        let _ = stop_rx.await;
    }));

    // 4. Read it back through the API with the Rust client.
    let client = kondate_client::Client::new(&endpoint, Some((&token.name, &token.secret)))
        .map_err(client_failure)?;
    let summary = client
        .query(
            "SELECT name, count(*) AS lines FROM recipes.recipe_ingredients \
             WHERE name IN ('醤油', 'しょうゆ', 'しょう油', '濃口醤油', '醬油', 'ｼｮｳﾕ', 'soy sauce', 'ショウユ') \
             GROUP BY name ORDER BY lines DESC",
            &[],
        )
        .await
        .map_err(client_failure)?;
    let rows: Vec<_> = summary
        .rows()
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(client_failure)?;
    println!("  query API  {endpoint}  (token `demo`)");
    println!(
        "             soy sauce, as the recipes spell it (labels/ingredient_names.toml maps them):"
    );
    for r in &rows {
        let cell = |v: &Value| match v {
            Value::Text(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            Value::Float(f) => format!("{f:.2}"),
            other => format!("{other:?}"),
        };
        // Count first: the names are of mixed width.
        println!("               {:>8} lines  {}", cell(&r[1]), cell(&r[0]));
    }
    let t = Instant::now();
    let full = client
        .query("SELECT * FROM recipes.recipes", &[])
        .await
        .map_err(client_failure)?;
    let parts = full.record_count;
    let mut n = 0u64;
    let mut stream = full.rows();
    while let Some(r) = stream.next().await {
        r.map_err(client_failure)?;
        n += 1;
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "  full scan  {n} rows (manifest says {}) in {secs:.2}s = {:.0} rows/s, SELECT to last row",
        parts.unwrap_or_default(),
        n as f64 / secs
    );

    // 5. Training as an app: it reads through the API with its own run token and pushes a
    // model to the registry.
    let app = project.root.join("apps/train_demo.jsonnet");
    if !app.exists() {
        std::fs::write(&app, TRAIN_APP)?;
    }
    let runs = crate::apps_cmd::open_runs(&project).await?;
    let exe = std::env::current_exe()?.display().to_string();
    let req = kondate_apps::RunRequest {
        app: "train_demo".into(),
        env: vec![("DEMO_KONDATE_BIN".into(), exe)],
        actor: "demo".into(),
        ..Default::default()
    };
    let (_cancel_tx, cancel_rx) = tokio::sync::watch::channel(None);
    let spinner = crate::output::spinner("running apps/train_demo.jsonnet");
    let run = runs.run(&req, None, cancel_rx).await;
    spinner.finish_and_clear();
    let run = run.map_err(|e| Failure::from(e.to_string()))?;
    if run.status != kondate_apps::RunStatus::Succeeded {
        return Err(Failure::from(format!(
            "the demo's training app failed ({}); see `kondate apps logs {}`",
            run.error.unwrap_or_default(),
            run.id
        )));
    }
    let models = kondate_models::Models::open(&project.config).await?;
    let model = models
        .show(&kondate_core::artifact::ModelRef::parse("recipe-category")?)
        .await?;
    println!(
        "  apps       train_demo ran in {:.1}s (run {}), peak {:.0} MiB",
        run.duration_ms.unwrap_or(0) as f64 / 1000.0,
        run.id,
        run.peak_memory_bytes.unwrap_or(0) as f64 / 1048576.0
    );
    println!(
        "  models     recipe-category@{} pushed by the run, trained on labels {}",
        model.version,
        model
            .lineage
            .labels
            .iter()
            .map(|l| format!(
                "{}@{}",
                l.name,
                l.revision.map_or("?".into(), |r| r.to_string())
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("  store      {}", store.url());
    println!("  done in    {:.1}s", started.elapsed().as_secs_f64());
    println!();
    println!("Try it from Python with the public Queuery client:");
    println!("  pip install queuery-client");
    println!(
        "  QUEUERY_ENDPOINT={endpoint} QUEUERY_TOKEN={} QUEUERY_TOKEN_SECRET={} \\\n    python3 -c \"from queuery_client import QueueryClient; print(QueueryClient(enable_cast=True).run('select * from recipes.recipes limit 3').read())\"",
        token.name, token.secret
    );
    if args.serve {
        println!("\nServing until Ctrl-C.");
        crate::serve_cmd::shutdown_signal().await;
    } else {
        println!("\n(`kondate demo --serve` keeps the server running so that you can try this.)");
    }
    let _ = stop_tx.send(());
    server.await.map_err(|e| e.to_string())??;
    Ok(())
}
