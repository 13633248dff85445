// Train the recipe-category classifier on the latest labels, push it with its metrics and
// label lineage, and alias it `production` (src/jobs.rs: train).
//
// The job is the `recipes-train` binary of this folder's Cargo package
// (`cargo install --path examples/recipes`). `kondate demo` runs the same job built into
// kondate, and says so with DEMO_KONDATE_BIN. Either way it starts in a clean environment
// with the run contract — KONDATE_ENDPOINT and a token made for this run — and reaches
// labels, data and the registry only through the API.
{
  app: {
    command: ['sh', '-c', 'if [ -n "$DEMO_KONDATE_BIN" ]; then exec "$DEMO_KONDATE_BIN" example-job recipes-train; else exec recipes-train; fi'],
    memory: 2048,
  },
  timeout: '10m',
  // What the run's token may do beyond querying and reading labels and models: push
  // recipe-category and move its `production` alias (kondate's key; Hako ignores it).
  kondate: {
    models: ['recipe-category'],
    scopes: ['models:alias=recipe-category@production'],
  },
}
