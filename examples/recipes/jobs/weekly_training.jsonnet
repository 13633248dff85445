// Every Monday morning in Tokyo, and whenever the annotators' category sheet changes: sync
// both label sets, then train the recipe-category classifier on them (apps/train.jsonnet
// pushes it with its label lineage and moves `production`).
{
  description: 'Sync the label sets and train recipe-category',
  script: |||
    labels_sync: recipe_category
    labels_sync: ingredient_names
    retry: count=1 sleep_time=60
      app: train
  |||,
  schedules: [{ cron: '0 3 * * 1', time_zone: 'Asia/Tokyo' }],
  triggers: ['labels.changed: recipe_category'],
  catchup: 'latest',
  expected_time: '1h',
  tags: ['training'],
}
