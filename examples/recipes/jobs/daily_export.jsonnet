// Every morning in Tokyo, after the inference: copy the rows of both result tables changed
// since the last export into the warehouse (the seed system's daily copy to Redshift).
{
  description: 'Export both result tables to the warehouse',
  script: |||
    results_export: recipe_categories
    results_export: ingredient_canonical_names
  |||,
  schedules: [{ cron: '0 6 * * *', time_zone: 'Asia/Tokyo' }],
  tags: ['export'],
}
