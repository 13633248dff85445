// Map every ingredient spelling in the recipes to a canonical name (src/jobs.rs: normalise):
// the annotators' sheet where it covers the spelling, a model trained on the sheet
// elsewhere; pushed as ingredient-normaliser@production, written to the
// ingredient_canonical_names result table (swapped in whole). `recipes-normalise`, or in
// `kondate demo` the same job built into kondate — see train.jsonnet.
{
  app: {
    command: ['sh', '-c', 'if [ -n "$DEMO_KONDATE_BIN" ]; then exec "$DEMO_KONDATE_BIN" example-job recipes-normalise; else exec recipes-normalise; fi'],
    memory: 1024,
  },
  timeout: '10m',
  // The run's token may push the normaliser, move its `production` alias, and write the
  // whole of its result table, pruning the spellings no longer in use (kondate's key).
  kondate: {
    models: ['ingredient-normaliser'],
    results: ['ingredient_canonical_names'],
    scopes: ['models:alias=ingredient-normaliser@production', 'results:prune=ingredient_canonical_names'],
  },
}
