// Every morning in Tokyo, and after a training succeeds: classify every recipe with
// recipe-category@production and map every ingredient spelling to its canonical name,
// upserting both result tables in the service database.
{
  description: 'Classify recipes and normalise ingredient names into the result tables',
  script: |||
    app: infer
    app: normalise
  |||,
  schedules: [{ cron: '0 5 * * *', time_zone: 'Asia/Tokyo' }],
  triggers: ['job.succeeded: weekly_training'],
  expected_time: '30m',
  tags: ['inference'],
}
