//! The demo's data: a deterministic, seeded corpus of Japanese recipes as a recipe service
//! holds them — titles, descriptions, ingredient lines written the hundred ways users write
//! them (醤油 / しょうゆ / しょう油 / 濃口醤油 / soy sauce, full- and half-width, 大さじ1,
//! 小1/2, 適量), steps — and the two sheets annotators keep: recipe categories (with the
//! mistakes annotators make) and ingredient-name normalisation (variant → canonical name).
//!
//! Nothing is downloaded and nothing is random between runs or machines: the same `rows`
//! gives byte-identical files.

use std::path::Path;

/// A small deterministic generator (xorshift64*): the corpus must be identical on every
/// machine and every run, which a seeded `rand` generator does not promise across versions.
pub struct Gen(u64);

impl Gen {
    pub fn new(seed: u64) -> Gen {
        Gen(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[(self.next() % xs.len() as u64) as usize]
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// The categories annotators choose from, in the sheet's order.
pub const CATEGORIES: &[&str] = &["主菜", "副菜", "汁物", "主食", "デザート"];

/// Canonical ingredient names and the ways recipe writers spell them (the first is the
/// canonical one). Half-width katakana and full-width letters are as users type them.
pub const INGREDIENTS: &[&[&str]] = &[
    &[
        "醤油",
        "しょうゆ",
        "しょう油",
        "濃口醤油",
        "醬油",
        "ｼｮｳﾕ",
        "soy sauce",
        "ショウユ",
    ],
    &["砂糖", "さとう", "上白糖", "ｻﾄｳ", "きび砂糖"],
    &["みりん", "味醂", "本みりん", "ﾐﾘﾝ"],
    &["酒", "料理酒", "日本酒", "お酒"],
    &["味噌", "みそ", "合わせ味噌", "ミソ", "白味噌"],
    &["塩", "しお", "食塩", "天然塩"],
    &["こしょう", "胡椒", "コショウ", "ｺｼｮｳ", "黒こしょう"],
    &["サラダ油", "ｻﾗﾀﾞ油", "油", "サラダオイル"],
    &["ごま油", "胡麻油", "ゴマ油", "ごまあぶら"],
    &["鶏もも肉", "鶏モモ肉", "とりもも肉", "鶏もも", "若鶏もも肉"],
    &["豚バラ肉", "豚ばら肉", "豚バラ", "豚バラ薄切り"],
    &["豚こま肉", "豚こま切れ肉", "豚小間"],
    &["合いびき肉", "合挽き肉", "合い挽きミンチ", "あいびき肉"],
    &["鮭", "さけ", "サーモン", "生鮭"],
    &["鯖", "さば", "サバ"],
    &["玉ねぎ", "たまねぎ", "玉葱", "タマネギ", "ﾀﾏﾈｷﾞ"],
    &["にんじん", "人参", "ニンジン", "ﾆﾝｼﾞﾝ"],
    &["じゃがいも", "じゃが芋", "ジャガイモ", "馬鈴薯"],
    &["キャベツ", "きゃべつ", "ｷｬﾍﾞﾂ"],
    &["ほうれん草", "ほうれんそう", "法蓮草"],
    &["ごぼう", "牛蒡", "ゴボウ"],
    &["大根", "だいこん", "ダイコン"],
    &["なす", "茄子", "ナス"],
    &["豆腐", "とうふ", "絹ごし豆腐", "木綿豆腐"],
    &["わかめ", "ワカメ", "乾燥わかめ", "若布"],
    &["卵", "たまご", "玉子", "タマゴ", "鶏卵"],
    &["生姜", "しょうが", "ショウガ", "おろし生姜", "ｼｮｳｶﾞ"],
    &["にんにく", "ニンニク", "大蒜", "おろしにんにく"],
    &["長ねぎ", "ねぎ", "長ネギ", "葱", "白ねぎ"],
    &["だし", "出汁", "だし汁", "ダシ", "和風だし"],
    &["ご飯", "ごはん", "白米", "温かいご飯"],
    &["うどん", "ゆでうどん", "冷凍うどん"],
    &["スパゲッティ", "パスタ", "スパゲティ", "ｽﾊﾟｹﾞｯﾃｨ"],
    &["トマト缶", "カットトマト缶", "ホールトマト缶"],
    &["カレールウ", "カレールー", "カレーのルー"],
    &["牛乳", "ミルク", "低脂肪乳"],
    &["生クリーム", "ホイップクリーム", "純生クリーム"],
    &["薄力粉", "小麦粉", "はくりき粉"],
    &["バター", "ﾊﾞﾀｰ", "無塩バター", "有塩バター"],
    &["抹茶", "抹茶パウダー", "まっちゃ"],
    &["白玉粉", "しらたま粉"],
    &["あんこ", "粒あん", "こしあん", "餡子"],
    &["チョコレート", "板チョコ", "ﾁｮｺﾚｰﾄ"],
    &["クリームチーズ", "ｸﾘｰﾑﾁｰｽﾞ"],
    &["ゼラチン", "粉ゼラチン"],
    &["ベーコン", "ﾍﾞｰｺﾝ", "ハーフベーコン"],
    &["コーン", "とうもろこし", "コーン缶"],
    &["水", "お水"],
];

/// The true canonical name of a spelling the generator writes (what the demo checks the
/// normaliser's guesses against).
pub fn canonical_of(spelling: &str) -> Option<&'static str> {
    INGREDIENTS
        .iter()
        .find(|v| v.contains(&spelling))
        .map(|v| v[0])
}

/// The canonical name at `i` of [`INGREDIENTS`].
fn canon(i: usize) -> &'static str {
    INGREDIENTS[i][0]
}

fn ingredient(name: &str) -> usize {
    INGREDIENTS
        .iter()
        .position(|v| v[0] == name)
        .unwrap_or_else(|| panic!("{name} is not a canonical ingredient"))
}

/// A dish: its name, category, main ingredients (canonical) and seasonings.
struct Dish {
    name: &'static str,
    category: usize,
    main: &'static [&'static str],
    seasoning: &'static [&'static str],
}

const fn dish(
    name: &'static str,
    category: usize,
    main: &'static [&'static str],
    seasoning: &'static [&'static str],
) -> Dish {
    Dish {
        name,
        category,
        main,
        seasoning,
    }
}

const WASHOKU: &[&str] = &["醤油", "砂糖", "みりん", "酒"];
/// Dishes; several share ingredients across categories (豆腐, 卵, 鮭) so that the words alone
/// do not give the answer away.
const DISHES: &[Dish] = &[
    dish("鶏の照り焼き", 0, &["鶏もも肉"], WASHOKU),
    dish(
        "肉じゃが",
        0,
        &["豚こま肉", "じゃがいも", "玉ねぎ", "にんじん"],
        WASHOKU,
    ),
    dish("豚の生姜焼き", 0, &["豚バラ肉", "玉ねぎ", "生姜"], WASHOKU),
    dish(
        "鯖の味噌煮",
        0,
        &["鯖", "生姜"],
        &["味噌", "砂糖", "酒", "水"],
    ),
    dish(
        "麻婆豆腐",
        0,
        &["豆腐", "合いびき肉", "長ねぎ", "にんにく"],
        &["味噌", "醤油", "ごま油"],
    ),
    dish(
        "ハンバーグ",
        0,
        &["合いびき肉", "玉ねぎ", "卵"],
        &["塩", "こしょう", "サラダ油"],
    ),
    dish(
        "鶏の唐揚げ",
        0,
        &["鶏もも肉", "生姜", "にんにく"],
        &["醤油", "酒", "薄力粉", "サラダ油"],
    ),
    dish(
        "鮭のムニエル",
        0,
        &["鮭", "バター"],
        &["塩", "こしょう", "薄力粉"],
    ),
    dish(
        "豆腐ハンバーグ",
        0,
        &["豆腐", "合いびき肉", "卵"],
        &["醤油", "塩", "サラダ油"],
    ),
    dish(
        "回鍋肉",
        0,
        &["豚バラ肉", "キャベツ", "にんにく"],
        &["味噌", "醤油", "砂糖", "ごま油"],
    ),
    dish(
        "ほうれん草のおひたし",
        1,
        &["ほうれん草"],
        &["醤油", "だし"],
    ),
    dish(
        "きんぴらごぼう",
        1,
        &["ごぼう", "にんじん"],
        &["醤油", "砂糖", "みりん", "ごま油"],
    ),
    dish(
        "ポテトサラダ",
        1,
        &["じゃがいも", "にんじん", "卵"],
        &["塩", "こしょう"],
    ),
    dish("冷奴", 1, &["豆腐", "長ねぎ", "生姜"], &["醤油"]),
    dish(
        "なすの揚げ浸し",
        1,
        &["なす"],
        &["醤油", "だし", "みりん", "サラダ油"],
    ),
    dish(
        "だし巻き卵",
        1,
        &["卵"],
        &["だし", "醤油", "砂糖", "サラダ油"],
    ),
    dish("大根サラダ", 1, &["大根", "わかめ"], &["醤油", "ごま油"]),
    dish(
        "コールスロー",
        1,
        &["キャベツ", "にんじん", "コーン"],
        &["塩", "砂糖", "こしょう"],
    ),
    dish(
        "豆腐とわかめの味噌汁",
        2,
        &["豆腐", "わかめ", "長ねぎ"],
        &["味噌", "だし"],
    ),
    dish(
        "豚汁",
        2,
        &["豚バラ肉", "大根", "にんじん", "ごぼう"],
        &["味噌", "だし"],
    ),
    dish(
        "けんちん汁",
        2,
        &["豆腐", "大根", "にんじん", "ごぼう"],
        &["醤油", "だし", "ごま油"],
    ),
    dish(
        "コーンスープ",
        2,
        &["コーン", "牛乳", "玉ねぎ"],
        &["バター", "塩", "こしょう"],
    ),
    dish("かき玉汁", 2, &["卵", "長ねぎ"], &["だし", "醤油", "塩"]),
    dish(
        "ミネストローネ",
        2,
        &["トマト缶", "玉ねぎ", "にんじん", "ベーコン"],
        &["塩", "こしょう", "水"],
    ),
    dish(
        "鮭の粕汁",
        2,
        &["鮭", "大根", "にんじん"],
        &["味噌", "だし", "酒"],
    ),
    dish("親子丼", 3, &["鶏もも肉", "卵", "玉ねぎ", "ご飯"], WASHOKU),
    dish(
        "炊き込みご飯",
        3,
        &["ご飯", "にんじん", "ごぼう", "鶏もも肉"],
        &["醤油", "酒", "だし"],
    ),
    dish(
        "焼きうどん",
        3,
        &["うどん", "豚こま肉", "キャベツ"],
        &["醤油", "サラダ油"],
    ),
    dish(
        "チャーハン",
        3,
        &["ご飯", "卵", "長ねぎ", "ベーコン"],
        &["醤油", "塩", "こしょう", "ごま油"],
    ),
    dish(
        "ナポリタン",
        3,
        &["スパゲッティ", "玉ねぎ", "ベーコン"],
        &["塩", "こしょう", "バター"],
    ),
    dish(
        "カレーライス",
        3,
        &["ご飯", "カレールウ", "じゃがいも", "にんじん", "玉ねぎ"],
        &["サラダ油", "水"],
    ),
    dish("鮭おにぎり", 3, &["ご飯", "鮭"], &["塩"]),
    dish("プリン", 4, &["卵", "牛乳"], &["砂糖"]),
    dish("抹茶アイス", 4, &["抹茶", "生クリーム", "牛乳"], &["砂糖"]),
    dish(
        "どら焼き",
        4,
        &["あんこ", "卵", "薄力粉"],
        &["砂糖", "みりん"],
    ),
    dish(
        "チーズケーキ",
        4,
        &["クリームチーズ", "卵", "生クリーム"],
        &["砂糖", "薄力粉"],
    ),
    dish("フルーツ白玉", 4, &["白玉粉"], &["砂糖", "水"]),
    dish(
        "ガトーショコラ",
        4,
        &["チョコレート", "卵", "バター"],
        &["砂糖", "薄力粉"],
    ),
    dish("牛乳寒天", 4, &["牛乳", "ゼラチン"], &["砂糖"]),
];

const PREFIXES: &[&str] = &[
    "",
    "",
    "",
    "簡単！",
    "絶品",
    "時短 ",
    "ご飯が進む",
    "やみつき",
    "基本の",
    "おばあちゃんの",
    "レンジで",
    "材料3つで",
    "【殿堂入り】",
    "ふわふわ",
    "節約",
];
const SUFFIXES: &[&str] = &["", "", "", "♪", "（作り置き）", " 〜簡単〜", "☆", "！"];

/// Phrases a writer uses for each category (the hints a classifier can learn), and ones
/// any recipe may use.
const HINTS: &[&[&str]] = &[
    &[
        "メインのおかずに。",
        "ボリューム満点です。",
        "がっつり食べたい日に。",
        "お弁当のおかずにも。",
    ],
    &[
        "もう一品ほしいときに。",
        "箸休めにどうぞ。",
        "作り置きしておくと便利です。",
        "野菜がたっぷりとれます。",
    ],
    &[
        "体が温まります。",
        "具だくさんで満足感があります。",
        "朝ごはんにほっとする一杯。",
    ],
    &[
        "ランチにぴったり。",
        "お腹いっぱいになります。",
        "一皿で満足です。",
    ],
    &[
        "おやつにどうぞ。",
        "甘さ控えめです。",
        "おもてなしにも。",
        "冷やして召し上がれ。",
    ],
];
const GENERIC: &[&str] = &[
    "家族に好評です。",
    "簡単に作れます。",
    "子どもも大好きな味。",
    "忙しい日でもすぐできます。",
    "母から教わった味です。",
    "",
];

const AMOUNTS: &[&str] = &[
    "大さじ1",
    "大さじ２",
    "大1",
    "小さじ1/2",
    "小1/2",
    "小さじ1",
    "適量",
    "少々",
    "100g",
    "１００ｇ",
    "200g",
    "1/2個",
    "1個",
    "2本",
    "1カップ",
    "200ml",
    "２００ｃｃ",
    "ひとつまみ",
    "1片",
    "1/4本",
];

/// What [`generate`] wrote.
pub struct Generated {
    pub recipes: u64,
    pub ingredient_lines: u64,
    pub steps: u64,
    pub labelled: u64,
    pub variants: u64,
}

fn csv_writer(path: &Path) -> std::io::Result<csv::Writer<std::io::BufWriter<std::fs::File>>> {
    Ok(csv::Writer::from_writer(std::io::BufWriter::with_capacity(
        1 << 20,
        std::fs::File::create(path)?,
    )))
}

fn io(e: csv::Error) -> std::io::Error {
    std::io::Error::other(e)
}

/// Write `rows` recipes into `dir` (`recipes.csv`, `recipe_ingredients.csv`,
/// `recipe_steps.csv`), the annotators' category sheet for the first `labelled` of them to
/// `category_sheet`, and the ingredient-name sheet to `ingredient_sheet`.
pub fn generate(
    dir: &Path,
    rows: u64,
    labelled: u64,
    category_sheet: &Path,
    ingredient_sheet: &Path,
) -> std::io::Result<Generated> {
    let mut g = Gen::new(0x006b_6f6e_6461_7465);
    let mut recipes = csv_writer(&dir.join("recipes.csv"))?;
    let mut lines = csv_writer(&dir.join("recipe_ingredients.csv"))?;
    let mut steps = csv_writer(&dir.join("recipe_steps.csv"))?;
    let mut sheet = csv_writer(category_sheet)?;
    recipes
        .write_record([
            "id",
            "title",
            "description",
            "cook_minutes",
            "rating",
            "servings",
            "is_public",
            "published_at",
        ])
        .map_err(io)?;
    lines
        .write_record(["recipe_id", "position", "name", "amount"])
        .map_err(io)?;
    steps
        .write_record(["recipe_id", "position", "text"])
        .map_err(io)?;
    sheet
        .write_record(["レシピID", "カテゴリ", "担当", "メモ"])
        .map_err(io)?;
    let mut out = Generated {
        recipes: rows,
        ingredient_lines: 0,
        steps: 0,
        labelled: 0,
        variants: 0,
    };
    for id in 1..=rows {
        let d = g.pick(DISHES);
        let title = format!("{}{}{}", g.pick(PREFIXES), d.name, g.pick(SUFFIXES));
        // Most writers give a hint of what the dish is for; some do not.
        let mut description = String::new();
        if g.chance(70) {
            description.push_str(g.pick::<&str>(HINTS[d.category]));
        }
        description.push_str(g.pick::<&str>(GENERIC));
        if g.chance(30) {
            let m = canon(ingredient(g.pick::<&str>(d.main)));
            description.push_str(&format!("{m}がポイントです。"));
        }
        let minutes = match d.category {
            1 => g.range(5, 30),
            2 => g.range(10, 40),
            4 => g.range(20, 120),
            _ => g.range(15, 60),
        };
        let rating = g.range(20, 50) as f64 / 10.0;
        let ts = 1_600_000_000 + g.range(0, 150_000_000) as i64;
        let published = chrono::DateTime::from_timestamp(ts, 0)
            .unwrap_or_default()
            .format("%Y-%m-%d %H:%M:%S")
            .to_string();
        recipes
            .write_record([
                id.to_string(),
                title,
                description,
                minutes.to_string(),
                rating.to_string(),
                g.range(1, 6).to_string(),
                (!g.next().is_multiple_of(10)).to_string(),
                published,
            ])
            .map_err(io)?;
        // Ingredient lines: the main ingredients, the seasonings, sometimes one more, each
        // written as this writer writes it.
        let mut position = 0;
        let extra = *g.pick(INGREDIENTS);
        let names = d
            .main
            .iter()
            .chain(d.seasoning.iter())
            .copied()
            .chain(g.chance(25).then_some(extra[0]));
        for name in names {
            let variants = INGREDIENTS[ingredient(name)];
            // Writers mostly use the usual spelling.
            let written = if g.chance(60) {
                variants[0]
            } else {
                *g.pick(variants)
            };
            position += 1;
            lines
                .write_record([
                    id.to_string(),
                    position.to_string(),
                    written.to_string(),
                    g.pick(AMOUNTS).to_string(),
                ])
                .map_err(io)?;
        }
        out.ingredient_lines += position as u64;
        let main = canon(ingredient(d.main[0]));
        let texts: &[String] = &[
            format!("{main}を食べやすい大きさに切る。"),
            match d.category {
                0 => "フライパンで焼き色がつくまで焼き、調味料を加えて絡める。".to_string(),
                1 => "さっと和えて味をなじませる。".to_string(),
                2 => "鍋にだしを入れて火にかけ、具材を煮る。".to_string(),
                3 => "ご飯や麺と具材を合わせて仕上げる。".to_string(),
                _ => "型に流して冷蔵庫で冷やし固める。".to_string(),
            },
            "器に盛り付けて完成。".to_string(),
        ];
        for (i, t) in texts.iter().enumerate() {
            steps
                .write_record([id.to_string(), (i + 1).to_string(), t.clone()])
                .map_err(io)?;
        }
        out.steps += texts.len() as u64;
        if id <= labelled {
            // Three annotators; one of them mixes up main and side dishes now and then,
            // and everyone slips occasionally.
            let who = ["sato", "suzuki", "tanaka"][(id % 3) as usize];
            let mut category = d.category;
            let confuse = if who == "tanaka" { 12 } else { 3 };
            if g.chance(confuse) {
                category = match category {
                    0 => 1,
                    1 => 0,
                    2 => 1,
                    3 => 0,
                    _ => g.range(0, 3) as usize,
                };
            }
            let note = if id % 97 == 0 { "要確認" } else { "" };
            sheet
                .write_record([&id.to_string(), CATEGORIES[category], who, note])
                .map_err(io)?;
            out.labelled += 1;
        }
    }
    let mut names = csv_writer(ingredient_sheet)?;
    names.write_record(["表記", "正規名"]).map_err(io)?;
    // The sheet is never complete: about a quarter of the spellings in use are missing
    // from it (the normaliser's model has to place those).
    for (i, variants) in INGREDIENTS.iter().enumerate() {
        for (j, v) in variants.iter().enumerate() {
            if j > 0 && (i * 7 + j) % 4 == 3 {
                continue;
            }
            names.write_record([*v, variants[0]]).map_err(io)?;
            out.variants += 1;
        }
    }
    // csv's flush flushes the file's buffer too.
    for mut w in [recipes, lines, steps, sheet, names] {
        w.flush()?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dish_ingredient_is_known_and_variants_are_unique() {
        for d in DISHES {
            for i in d.main.iter().chain(d.seasoning) {
                ingredient(i);
            }
        }
        let mut seen = std::collections::HashSet::new();
        for v in INGREDIENTS.iter().flat_map(|v| v.iter()) {
            assert!(seen.insert(*v), "{v} is listed twice");
        }
    }

    #[test]
    fn the_corpus_is_identical_on_every_run() {
        let read = |dir: &Path| {
            [
                "recipes.csv",
                "recipe_ingredients.csv",
                "recipe_steps.csv",
                "c.csv",
                "i.csv",
            ]
            .map(|f| std::fs::read(dir.join(f)).unwrap())
        };
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [&a, &b] {
            let p = d.path();
            let r = generate(p, 2_000, 500, &p.join("c.csv"), &p.join("i.csv")).unwrap();
            assert_eq!((r.recipes, r.labelled), (2_000, 500));
            assert!(r.ingredient_lines > 2_000 * 3, "{}", r.ingredient_lines);
        }
        assert_eq!(read(a.path()), read(b.path()));
        let lines = std::fs::read_to_string(a.path().join("recipe_ingredients.csv")).unwrap();
        for variant in ["しょうゆ", "ｼｮｳﾕ", "soy sauce", "１００ｇ", "小1/2", "適量"]
        {
            assert!(
                lines.contains(variant),
                "no `{variant}` in the ingredient lines"
            );
        }
        let sheet = std::fs::read_to_string(a.path().join("c.csv")).unwrap();
        assert_eq!(sheet.lines().count(), 501);
    }
}
