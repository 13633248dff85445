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
use crate::services::Services;
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

/// The user that owns the demo's token.
const DEMO_USER: &str = "demo@localhost";
/// Recipes the demo's annotators have labelled.
const LABELLED: u64 = 5_000;

/// The reference project's jobs, in the order the demo runs them once.
const DEMO_JOBS: [&str; 3] = ["weekly_training", "daily_inference", "daily_export"];

/// Launch `job` and take its steps here until it ends; its id and how it ended.
async fn run_job(
    scheduler: &kondate_jobs::Scheduler,
    executor: &kondate_jobs::Executor,
    worker: &kondate_jobs::WorkerConfig,
    services: &Services,
    job: &str,
) -> Result<(i64, kondate_jobs::scheduler::Instance), Failure> {
    let fail = |e: kondate_jobs::JobsError| Failure::from(e.to_string());
    let now = services.clock.now();
    let id = scheduler
        .launch(job, &[], "demo", None, Some("demo"), now)
        .await
        .map_err(fail)?;
    executor.advance(id, now).await.map_err(fail)?;
    loop {
        let ran = executor
            .work_once(worker, &*services.clock)
            .await
            .map_err(fail)?;
        let instance = scheduler.instance(id).await.map_err(fail)?;
        if instance.status != kondate_jobs::scheduler::WORKING {
            return Ok((id, instance));
        }
        if !ran {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
}

/// The reference project's files (examples/recipes), written into the demo's project when
/// missing (a file the user edited is kept).
const PROJECT_FILES: &[(&str, &str)] = &[
    (
        "docs/recipe_categories.md",
        include_str!("../../../examples/recipes/docs/recipe_categories.md"),
    ),
    (
        "docs/ingredient_canonical_names.md",
        include_str!("../../../examples/recipes/docs/ingredient_canonical_names.md"),
    ),
    (
        "jobs/weekly_training.jsonnet",
        include_str!("../../../examples/recipes/jobs/weekly_training.jsonnet"),
    ),
    (
        "jobs/daily_inference.jsonnet",
        include_str!("../../../examples/recipes/jobs/daily_inference.jsonnet"),
    ),
    (
        "jobs/daily_export.jsonnet",
        include_str!("../../../examples/recipes/jobs/daily_export.jsonnet"),
    ),
    (
        "labels/recipe_category.toml",
        include_str!("../../../examples/recipes/labels/recipe_category.toml"),
    ),
    (
        "labels/ingredient_names.toml",
        include_str!("../../../examples/recipes/labels/ingredient_names.toml"),
    ),
    (
        "apps/train.jsonnet",
        include_str!("../../../examples/recipes/apps/train.jsonnet"),
    ),
    (
        "apps/infer.jsonnet",
        include_str!("../../../examples/recipes/apps/infer.jsonnet"),
    ),
    (
        "apps/normalise.jsonnet",
        include_str!("../../../examples/recipes/apps/normalise.jsonnet"),
    ),
    (
        "results/ingredient_canonical_names.toml",
        include_str!("../../../examples/recipes/results/ingredient_canonical_names.toml"),
    ),
    (
        "docs/ingredient_canonical_names.md",
        include_str!("../../../examples/recipes/docs/ingredient_canonical_names.md"),
    ),
    (
        "results/recipe_categories.toml",
        include_str!("../../../examples/recipes/results/recipe_categories.toml"),
    ),
    (
        "docs/recipe_categories.md",
        include_str!("../../../examples/recipes/docs/recipe_categories.md"),
    ),
];

pub async fn run(args: DemoArgs) -> CmdResult {
    let started = Instant::now();
    let mut project = if args.dir.join(kondate_core::project::CONFIG_FILE).is_file() {
        Project::load(&args.dir, std::env::vars()).map_err(|e| Failure::invalid(e.to_string()))?
    } else {
        Project::init(&args.dir).map_err(|e| Failure::invalid(e.to_string()))?
    };
    println!("kondate demo in {}", project.root.display());
    for (name, text) in PROJECT_FILES {
        let path = project.root.join(name);
        if !path.exists() {
            std::fs::create_dir_all(path.parent().expect("in a folder"))?;
            std::fs::write(&path, text)?;
        }
    }

    // The query API's address first: the store signs URLs for it and the apps' runs are
    // told it, so everything is opened once, knowing it.
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
    let services = std::sync::Arc::new(Services::new(project.clone()));

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
    let wh = services.warehouse().await?;
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
    let labels = services.labels().await?;
    for name in ["recipe_category", "ingredient_names"] {
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
    let state = services.app_state().await?;
    // The demo's token is owned by a demo user and may only query: what the Python
    // example at the end needs. The apps get tokens of their own, made for each run.
    let access = &state.access;
    access
        .users
        .ensure(DEMO_USER, &["viewer".to_string()], &crate::actor())
        .await
        .map_err(crate::cli_access::access_failure)?;
    let token = access
        .tokens
        .create_or_rotate(kondate_access::NewTokenRequest {
            name: "demo".into(),
            owner: DEMO_USER.into(),
            scopes: kondate_access::Scopes::new(vec![kondate_access::Scope::all(
                kondate_access::ScopeKind::Query,
            )]),
            expires_in: None,
            created_by: crate::actor(),
        })
        .await
        .map_err(crate::cli_access::access_failure)?;
    let signin = state.local_signin.clone();
    let oidc = state.oidc.as_ref().map(|o| o.config.name.clone());
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

    // 5. Training, inference and the daily export as the reference project's jobs
    // (jobs/*.jsonnet), run once through the scheduler: each launched as an instance whose
    // steps a worker here takes — the apps run with their own run tokens, through the API.
    let exe = std::env::current_exe()?.display().to_string();
    let (scheduler, executor) = services
        .working_jobs_with(vec![("DEMO_KONDATE_BIN".to_string(), exe)])
        .await?;
    crate::jobs_loop::reload(&scheduler, &project.root, &project.config, &*services.clock)
        .await
        .map_err(|e| Failure::from(e.to_string()))?;
    let worker = services
        .worker_config(vec![kondate_jobs::engine::DEFAULT_QUEUE.to_string()])
        .await?;
    let mut ran_jobs = Vec::new();
    for job in DEMO_JOBS {
        let t = Instant::now();
        let spinner = crate::output::spinner(&format!("running jobs/{job}.jsonnet"));
        let ended = run_job(&scheduler, &executor, &worker, &services, job).await;
        spinner.finish_and_clear();
        let (id, instance) = ended?;
        if instance.status != kondate_jobs::scheduler::SUCCESS {
            return Err(Failure::from(format!(
                "the demo's {job} job ended {}{}; see `kondate jobs logs {id}`",
                instance.status,
                instance.error.map(|e| format!(": {e}")).unwrap_or_default()
            )));
        }
        ran_jobs.push((job, id, t.elapsed().as_secs_f64()));
    }
    let runs = services.runs(crate::cli_access::principal_now()).await?;
    let mut finished = Vec::new();
    for app in ["train", "infer", "normalise"] {
        let latest = runs
            .list(Some(app), 1)
            .await
            .map_err(|e| Failure::from(e.to_string()))?;
        finished.push(
            latest
                .into_iter()
                .next()
                .ok_or_else(|| Failure::from(format!("the demo's jobs ran no `{app}` app")))?,
        );
    }
    println!(
        "  jobs       {} through the scheduler",
        ran_jobs
            .iter()
            .map(|(job, id, secs)| format!("{job} (instance {id}, {secs:.1}s)"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let models = services.models().await?;
    let model = models
        .show(&kondate_core::artifact::ModelRef::parse(
            "recipe-category@production",
        )?)
        .await?;
    let metric = |k: &str| model.metrics.get(k).copied().unwrap_or(f64::NAN);
    println!(
        "  train      apps/train.jsonnet in {:.1}s (run {}): recipe-category@{} on labels {}",
        finished[0].duration_ms.unwrap_or(0) as f64 / 1000.0,
        finished[0].id,
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
    println!(
        "             held-out {} recipes: accuracy {:.3}, macro-F1 {:.3} (majority-class baseline {:.3}); alias production",
        metric("test_rows"),
        metric("accuracy"),
        metric("macro_f1"),
        metric("baseline_accuracy")
    );
    let service = services.service_db().await?.clone();
    let results = services.results().await?;
    let table_of = |name: &str| {
        results
            .declaration(name)
            .map(|d| d.table)
            .map_err(|e| Failure::invalid(e.to_string()))
    };
    let (categories_table, names_table) = (
        table_of("recipe_categories")?,
        table_of("ingredient_canonical_names")?,
    );
    println!(
        "  infer      apps/infer.jsonnet in {:.1}s (run {}): {} recipes classified into {} (service database)",
        finished[1].duration_ms.unwrap_or(0) as f64 / 1000.0,
        finished[1].id,
        args.rows,
        categories_table
    );
    let normaliser = models
        .show(&kondate_core::artifact::ModelRef::parse(
            "ingredient-normaliser@production",
        )?)
        .await?;
    let by = |method: &str| {
        let sql = "SELECT COUNT(*) AS n FROM ingredient_canonical_names WHERE method = ?";
        let service = service.clone();
        let method = method.to_string();
        async move {
            service
                .fetch_optional(sql, &[kondate_db::Value::from(method)])
                .await
                .ok()
                .flatten()
                .and_then(|r| kondate_db::get_i64(&r, "n").ok())
                .unwrap_or(0)
        }
    };
    let (sheet, model_mapped) = (by("sheet").await, by("model").await);
    // The generator knows every spelling's true name: check the model's guesses.
    let guessed = service
        .fetch_all(
            "SELECT name, canonical FROM ingredient_canonical_names WHERE method = 'model'",
            &[],
        )
        .await?;
    let right = guessed
        .iter()
        .filter(|r| {
            let (n, c) = (
                kondate_db::get_string(r, "name").unwrap_or_default(),
                kondate_db::get_string(r, "canonical").unwrap_or_default(),
            );
            crate::demo_data::canonical_of(&n) == Some(c.as_str())
        })
        .count();
    println!(
        "  normalise  apps/normalise.jsonnet in {:.1}s (run {}): {} ingredient spellings → {} (sheet {}, model {}, of which {} right)\n             ingredient-normaliser@{} held-out accuracy {:.3} on spellings it did not see",
        finished[2].duration_ms.unwrap_or(0) as f64 / 1000.0,
        finished[2].id,
        sheet + model_mapped,
        names_table,
        sheet,
        model_mapped,
        right,
        normaliser.version,
        normaliser
            .metrics
            .get("heldout_accuracy")
            .copied()
            .unwrap_or(f64::NAN)
    );
    // The export job's steps say what they copied.
    let export_id = ran_jobs.last().map(|(_, id, _)| *id).unwrap_or_default();
    for step in executor
        .steps(export_id)
        .await
        .map_err(|e| Failure::from(e.to_string()))?
    {
        let log = executor
            .step_log(&step)
            .await
            .map_err(|e| Failure::from(e.to_string()))?
            .unwrap_or_default();
        for line in log.split(|b| *b == b'\n') {
            if let Some(l) = kondate_apps::parse_line(line)
                && l.text.starts_with("exported ")
            {
                println!("  export     {}", l.text);
            }
        }
    }
    let now = services.clock.now();
    for job in DEMO_JOBS {
        let def = scheduler
            .job_row(job)
            .await
            .ok()
            .flatten()
            .and_then(|j| j.revision)
            .map(|r| scheduler.definition(job, r));
        if let Some(def) = def
            && let Ok(def) = def.await
            && let Some(next) = kondate_jobs::plan::next_slots(&def, now, 1).first()
        {
            println!(
                "  scheduled  {job} next at {} ({})",
                kondate_jobs::plan::local_time(&def, *next).format("%Y-%m-%d %H:%M %:z"),
                def.schedules
                    .iter()
                    .map(|s| format!("{} {}", s.expression, s.zone.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }
    // Last, the catalog: what the warehouse and the service database now hold, described
    // from the project's docs/.
    let catalog = kondate_catalog::Catalog::new(services.state_db().await?.clone());
    let t = Instant::now();
    let synced = crate::catalog_cmd::sync_sources(
        &services,
        &catalog,
        &crate::catalog_cmd::sources(&project.config),
    )
    .await?;
    if let Some(f) = synced.failures.first() {
        return Err(Failure::from(f.clone()));
    }
    println!(
        "  catalog    {} in {:.1}s; {} descriptions from docs/",
        synced
            .reports
            .iter()
            .map(|r| format!("{} {} tables", r.source, r.tables))
            .collect::<Vec<_>>()
            .join(", "),
        t.elapsed().as_secs_f64(),
        synced.docs.applied.len()
    );
    for target in catalog
        .resolve_all("recipe_categories")
        .await
        .map_err(|e| Failure::from(e.to_string()))?
    {
        println!(
            "             {target}: kondate catalog show {target}\n                 {endpoint}/v1/catalog/objects/{}",
            target.key()
        );
    }
    println!("  store      {}", services.store().await?.url());
    println!("  done in    {:.1}s", started.elapsed().as_secs_f64());
    println!();
    println!("Try it from Python with the public Queuery client:");
    println!("  pip install queuery-client");
    println!(
        "  QUEUERY_ENDPOINT={endpoint} QUEUERY_TOKEN={} QUEUERY_TOKEN_SECRET={} \\\n    python3 -c \"from queuery_client import QueueryClient; print(QueueryClient(enable_cast=True).run('select * from recipes.recipes limit 3').read())\"",
        token.name, token.secret
    );
    if args.serve {
        // The jobs stay scheduled: the scheduler and a worker run until Ctrl-C.
        let (stop_jobs, stopped) = tokio::sync::watch::channel(false);
        let cfg = &project.config;
        let wake = std::sync::Arc::new(tokio::sync::Notify::new());
        let looping = crate::jobs_loop::SchedulerLoop {
            scheduler,
            executor: executor.clone(),
            root: project.root.clone(),
            config: project.config.clone(),
            clock: services.clock.clone(),
            slot_clock: crate::jobs_loop::slot_clock(services.clock.clone()),
            jobs: cfg.jobs.clone(),
            lost_after: cfg.state.lost_after,
            notifier: Some(services.notifier().await?),
            wake: wake.clone(),
        };
        let jobs = [
            tokio::spawn(looping.run(stopped.clone())),
            tokio::spawn({
                let working = crate::jobs_loop::WorkerLoop {
                    executor,
                    cfg: worker,
                    clock: services.clock.clone(),
                    poll: cfg.jobs.poll,
                    lost_after: cfg.state.lost_after,
                    until_idle: false,
                    wake: Some(wake),
                };
                async move {
                    working.run(stopped).await;
                }
            }),
        ];
        println!(
            "\n{}",
            crate::serve_cmd::console_banner(&listen, signin.as_deref(), oidc.as_deref())
        );
        println!("Serving, with the jobs scheduled, until Ctrl-C.");
        crate::cli::shutdown_signal().await;
        let _ = stop_jobs.send(true);
        for j in jobs {
            let _ = j.await;
        }
    } else {
        println!("\n(`kondate demo --serve` keeps the server running so that you can try this.)");
    }
    let _ = stop_tx.send(());
    server.await.map_err(|e| e.to_string())??;
    Ok(())
}
