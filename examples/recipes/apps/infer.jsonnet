// Classify every recipe with recipe-category@production and write the `recipe_categories`
// result table through the API (src/jobs.rs: infer; the `recipes-infer` binary, or in
// `kondate demo` the same job built into kondate — see train.jsonnet).
{
  app: {
    command: ['sh', '-c', 'if [ -n "$DEMO_KONDATE_BIN" ]; then exec "$DEMO_KONDATE_BIN" example-job recipes-infer; else exec recipes-infer; fi'],
    memory: 2048,
  },
  timeout: '10m',
  // The run's token may write this one result table (kondate's key; Hako ignores it).
  kondate: {
    results: ['recipe_categories'],
  },
}
