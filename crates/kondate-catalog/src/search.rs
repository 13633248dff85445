//! Search over the catalog: names, database comments, descriptions and glossary keywords at
//! every level, ranked — the exact name first, then names that start with the query, then
//! described objects, then the rest.
//!
//! Text is folded (Unicode NFKC, then lower case: `ｼｮｳﾕ` finds `ショウユ`, `ＩＤ` finds `id`)
//! and indexed by character unigrams and bigrams, so Japanese, written without spaces
//! between words, is found from any part of a word as English is; a candidate the index
//! finds is then checked against the text itself. The index is built in memory from the
//! state database and rebuilt when the catalog changes ([`Catalog::search_version`]): a
//! server keeps one and answers from it.

use std::collections::HashMap;

use kondate_db::{opt_i64_at, opt_string_at};
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;

use crate::docs::Target;
use crate::{Catalog, CatalogError};

/// What to search for.
#[derive(Debug, Clone, Default)]
pub struct SearchQuery {
    /// Words, each of which must appear (in a name, a comment or a description).
    pub text: String,
    /// Only this source's objects.
    pub source: Option<String>,
    /// Only objects of this kind: `schema`, `table`, `view`, `column` or `keyword`.
    pub kind: Option<String>,
    /// At most this many hits (the total is counted anyway).
    pub limit: usize,
}

/// One object found.
#[derive(Debug, Clone, Serialize)]
pub struct SearchHit {
    pub target: Target,
    /// `source.schema.table[.column]`, `keyword:NAME`, …
    pub path: String,
    pub kind: String,
    pub name: String,
    /// `exact`, `prefix`, `described` or `other`.
    pub rank: &'static str,
    pub described: bool,
    /// The line of the description or comment that matched, if one did.
    pub snippet: Option<String>,
}

/// The answer to a search.
#[derive(Debug, Clone, Serialize)]
pub struct SearchResults {
    pub query: String,
    /// How many objects matched (more than `hits` when the limit cut them).
    pub total: usize,
    pub hits: Vec<SearchHit>,
}

const KINDS: [&str; 5] = ["schema", "table", "view", "column", "keyword"];

struct Entry {
    target: Target,
    path: String,
    kind: String,
    source: String,
    name: String,
    /// Folded name and path.
    name_f: String,
    path_f: String,
    /// The comment and description, as written and folded.
    text: String,
    text_f: String,
    described: bool,
}

/// The catalog's search index (see the module).
pub struct SearchIndex {
    entries: Vec<Entry>,
    /// Entry numbers (ascending) by the unigram or bigram they contain.
    grams: HashMap<u64, Vec<u32>>,
    /// What the index was built from ([`Catalog::search_version`]).
    pub version: (i64, i64),
}

/// `text` folded for matching: NFKC, lower case.
pub fn fold(text: &str) -> String {
    text.nfkc().flat_map(char::to_lowercase).collect()
}

fn gram1(a: char) -> u64 {
    a as u64
}

fn gram2(a: char, b: char) -> u64 {
    ((a as u64) << 32) | (b as u64) | (1 << 63)
}

/// The grams of `text` (folded), each once.
fn grams_of(text: &str, out: &mut Vec<u64>) {
    let mut prev: Option<char> = None;
    for c in text.chars() {
        if c.is_whitespace() {
            prev = None;
            continue;
        }
        out.push(gram1(c));
        if let Some(p) = prev {
            out.push(gram2(p, c));
        }
        prev = Some(c);
    }
}

/// The grams a term needs: its bigrams (its one character when it has one). A term with
/// dots (`results.recipe`) is looked up by its last part and checked against the paths.
fn term_grams(term: &str) -> Vec<u64> {
    let last = term.rsplit('.').find(|p| !p.is_empty()).unwrap_or(term);
    let chars: Vec<char> = last.chars().collect();
    match chars.len() {
        0 => Vec::new(),
        1 => vec![gram1(chars[0])],
        _ => chars.windows(2).map(|w| gram2(w[0], w[1])).collect(),
    }
}

fn kind_order(kind: &str) -> u8 {
    match kind {
        "table" | "view" => 0,
        "keyword" => 1,
        "column" => 2,
        _ => 3,
    }
}

impl SearchIndex {
    fn build(entries: Vec<Entry>, version: (i64, i64)) -> SearchIndex {
        let mut grams: HashMap<u64, Vec<u32>> = HashMap::new();
        let mut mine = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            mine.clear();
            grams_of(&e.name_f, &mut mine);
            grams_of(&e.text_f, &mut mine);
            mine.sort_unstable();
            mine.dedup();
            for g in &mine {
                grams.entry(*g).or_default().push(i as u32);
            }
        }
        SearchIndex {
            entries,
            grams,
            version,
        }
    }

    /// How many objects the index holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The objects matching `q`, ranked.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchResults, CatalogError> {
        let folded = fold(q.text.trim());
        let terms: Vec<&str> = folded.split_whitespace().collect();
        if terms.is_empty() {
            return Err(CatalogError::Invalid(
                "an empty search: give words to look for, e.g. `kondate catalog search レシピ`"
                    .into(),
            ));
        }
        if let Some(k) = &q.kind
            && !KINDS.contains(&k.as_str())
        {
            return Err(CatalogError::Invalid(format!(
                "no kind {k:?}: search by kind `schema`, `table`, `view`, `column` or `keyword`"
            )));
        }
        // Candidates: the entries holding every gram of every term (shortest list first).
        let mut lists: Vec<&[u32]> = Vec::new();
        for t in &terms {
            for g in term_grams(t) {
                match self.grams.get(&g) {
                    Some(l) => lists.push(l),
                    None => {
                        return Ok(SearchResults {
                            query: q.text.clone(),
                            total: 0,
                            hits: Vec::new(),
                        });
                    }
                }
            }
        }
        lists.sort_by_key(|l| l.len());
        lists.dedup_by(|a, b| std::ptr::eq(*a, *b));
        let candidates: Vec<u32> = match lists.split_first() {
            None => (0..self.entries.len() as u32).collect(),
            Some((first, rest)) => first
                .iter()
                .copied()
                .filter(|i| rest.iter().all(|l| l.binary_search(i).is_ok()))
                .collect(),
        };
        let whole = terms.join(" ");
        let mut found: Vec<(u8, &Entry)> = Vec::new();
        for i in candidates {
            let e = &self.entries[i as usize];
            if q.source.as_deref().is_some_and(|s| s != e.source)
                || q.kind.as_deref().is_some_and(|k| k != e.kind)
            {
                continue;
            }
            // A word is found in the object's own name or text (a column is not found by
            // its table's name); a dotted one in its path (`recipes.title`).
            let all = terms.iter().all(|t| {
                if t.contains('.') {
                    e.path_f.contains(t)
                } else {
                    e.name_f.contains(t) || e.text_f.contains(t)
                }
            });
            if !all {
                continue;
            }
            let tier = if e.name_f == whole || e.path_f == whole {
                0
            } else if e.name_f.starts_with(&whole) {
                1
            } else if e.described {
                2
            } else {
                3
            };
            found.push((tier, e));
        }
        found.sort_by(|(ta, a), (tb, b)| {
            (ta, kind_order(&a.kind), a.name.chars().count(), &a.path).cmp(&(
                tb,
                kind_order(&b.kind),
                b.name.chars().count(),
                &b.path,
            ))
        });
        let total = found.len();
        let limit = if q.limit == 0 { 50 } else { q.limit };
        let hits = found
            .into_iter()
            .take(limit)
            .map(|(tier, e)| SearchHit {
                target: e.target.clone(),
                path: e.path.clone(),
                kind: e.kind.clone(),
                name: e.name.clone(),
                rank: ["exact", "prefix", "described", "other"][tier as usize],
                described: e.described,
                snippet: snippet(&e.text, &terms),
            })
            .collect();
        Ok(SearchResults {
            query: q.text.clone(),
            total,
            hits,
        })
    }
}

/// The first line of `text` holding one of `terms`, cut to 160 characters.
fn snippet(text: &str, terms: &[&str]) -> Option<String> {
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && terms.iter().any(|t| fold(l).contains(t)))?;
    let mut s: String = line.chars().take(160).collect();
    if line.chars().count() > 160 {
        s.push('…');
    }
    Some(s)
}

impl Catalog {
    /// What the catalog's content is at: (newest sync, newest description revision). A
    /// search index built at another version is stale.
    pub async fn search_version(&self) -> Result<(i64, i64), CatalogError> {
        let rows = self
            .db
            .fetch_all(
                "SELECT (SELECT MAX(id) FROM kondate_catalog_syncs) AS s, \
                 (SELECT MAX(id) FROM kondate_catalog_doc_revisions) AS d",
                &[],
            )
            .await?;
        let r = &rows[0];
        Ok((
            opt_i64_at(r, 0)?.unwrap_or(0),
            opt_i64_at(r, 1)?.unwrap_or(0),
        ))
    }

    /// A search index of everything linked in the catalog now.
    pub async fn search_index(&self) -> Result<SearchIndex, CatalogError> {
        let version = self.search_version().await?;
        let mut docs: HashMap<String, String> = HashMap::new();
        for r in self
            .db
            .fetch_all(
                "SELECT target, body FROM kondate_catalog_docs WHERE body <> ''",
                &[],
            )
            .await?
        {
            docs.insert(
                opt_string_at(&r, 0)?.unwrap_or_default(),
                opt_string_at(&r, 1)?.unwrap_or_default(),
            );
        }
        let mut entries = Vec::new();
        let mut add = |target: Target,
                       kind: String,
                       source: String,
                       name: String,
                       comment: Option<String>| {
            let key = target.key();
            let description = docs.get(&key);
            let mut text = comment.unwrap_or_default();
            if let Some(d) = description {
                if !text.is_empty() {
                    text.push('\n');
                }
                text.push_str(d);
            }
            let path = target.to_string();
            entries.push(Entry {
                name_f: fold(&name),
                path_f: fold(&path),
                text_f: fold(&text),
                target,
                path,
                kind,
                source,
                name,
                text,
                described: description.is_some(),
            });
        };
        for r in self
            .db
            .fetch_all(
                "SELECT source, schema_name, table_name, column_name, kind, db_comment \
                 FROM kondate_catalog_objects WHERE linked = 1",
                &[],
            )
            .await?
        {
            let text = |i| opt_string_at(&r, i).map(Option::unwrap_or_default);
            let (source, schema, table, column, kind) =
                (text(0)?, text(1)?, text(2)?, text(3)?, text(4)?);
            let comment = opt_string_at(&r, 5)?;
            let (target, name) = if !column.is_empty() {
                (
                    Target::Column {
                        source: source.clone(),
                        schema,
                        table,
                        column: column.clone(),
                    },
                    column,
                )
            } else if !table.is_empty() {
                (
                    Target::Table {
                        source: source.clone(),
                        schema,
                        table: table.clone(),
                    },
                    table,
                )
            } else {
                (
                    Target::Schema {
                        source: source.clone(),
                        schema: schema.clone(),
                    },
                    schema,
                )
            };
            add(target, kind, source, name, comment);
        }
        for key in docs
            .keys()
            .filter(|k| k.starts_with("keyword/"))
            .cloned()
            .collect::<Vec<_>>()
        {
            if let Some(t @ Target::Keyword { .. }) = Target::from_key(&key) {
                let Target::Keyword { name } = &t else {
                    continue;
                };
                let name = name.clone();
                add(t, "keyword".into(), String::new(), name, None);
            }
        }
        Ok(SearchIndex::build(entries, version))
    }

    /// Search the catalog (building the index for this one search; a server keeps one).
    pub async fn search(&self, q: &SearchQuery) -> Result<SearchResults, CatalogError> {
        self.search_index().await?.search(q)
    }
}

/// A search index kept between searches and rebuilt only when the catalog has changed
/// since ([`Catalog::search_version`], one small query a search): what a server keeps.
#[derive(Default)]
pub struct SearchCache(tokio::sync::Mutex<Option<std::sync::Arc<SearchIndex>>>);

impl SearchCache {
    pub async fn search(
        &self,
        catalog: &Catalog,
        q: &SearchQuery,
    ) -> Result<SearchResults, CatalogError> {
        let version = catalog.search_version().await?;
        // Held while building, so that concurrent searches wait for one build.
        let index = {
            let mut slot = self.0.lock().await;
            match slot.as_ref() {
                Some(i) if i.version == version => i.clone(),
                _ => {
                    let i = std::sync::Arc::new(catalog.search_index().await?);
                    *slot = Some(i.clone());
                    i
                }
            }
        };
        index.search(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str, kind: &str, name: &str, text: &str, described: bool) -> Entry {
        Entry {
            target: Target::Keyword { name: path.into() },
            path: path.into(),
            kind: kind.into(),
            source: "w".into(),
            name: name.into(),
            name_f: fold(name),
            path_f: fold(path),
            text: text.into(),
            text_f: fold(text),
            described,
        }
    }

    fn index() -> SearchIndex {
        SearchIndex::build(
            vec![
                entry(
                    "w.s.recipe_categories",
                    "table",
                    "recipe_categories",
                    "料理の種類（主菜・副菜）",
                    true,
                ),
                entry("w.s.recipes", "table", "recipes", "", false),
                entry(
                    "w.s.recipes.title",
                    "column",
                    "title",
                    "レシピのタイトル",
                    false,
                ),
                entry(
                    "w.s.ingredients",
                    "table",
                    "ingredients",
                    "材料。しょうゆ、ｼｮｳﾕ",
                    false,
                ),
                entry(
                    "w.s.notes",
                    "table",
                    "notes",
                    "about recipes in general",
                    false,
                ),
                entry("w.s.orders", "table", "orders", "注文", true),
            ],
            (0, 0),
        )
    }

    fn paths(q: &str) -> Vec<String> {
        index()
            .search(&SearchQuery {
                text: q.into(),
                ..SearchQuery::default()
            })
            .unwrap()
            .hits
            .into_iter()
            .map(|h| h.path)
            .collect()
    }

    #[test]
    fn ranked_exact_then_prefix_then_described_then_rest() {
        assert_eq!(paths("recipes"), ["w.s.recipes", "w.s.notes"]);
        assert_eq!(
            paths("recipe"),
            ["w.s.recipes", "w.s.recipe_categories", "w.s.notes"]
        );
    }

    #[test]
    fn japanese_is_found_inside_words() {
        assert_eq!(paths("主菜"), ["w.s.recipe_categories"]);
        assert_eq!(paths("種類"), ["w.s.recipe_categories"]);
        assert_eq!(paths("タイトル"), ["w.s.recipes.title"]);
        assert_eq!(paths("菜"), ["w.s.recipe_categories"]);
        // Half-width katakana is folded to full-width, and the other way round.
        assert_eq!(paths("ショウユ"), ["w.s.ingredients"]);
        assert_eq!(paths("ｼｮｳﾕ"), ["w.s.ingredients"]);
        assert!(paths("天ぷら").is_empty());
    }

    #[test]
    fn every_word_must_match_and_filters_apply() {
        assert_eq!(paths("レシピ タイトル"), ["w.s.recipes.title"]);
        assert!(paths("レシピ 主菜").is_empty());
        assert_eq!(paths("recipes.title"), ["w.s.recipes.title"]);
        assert_eq!(paths("s.recipes.title"), ["w.s.recipes.title"]);
        let r = index()
            .search(&SearchQuery {
                text: "タイトル".into(),
                kind: Some("table".into()),
                ..SearchQuery::default()
            })
            .unwrap();
        assert_eq!(r.total, 0);
        assert!(
            index()
                .search(&SearchQuery {
                    text: " ".into(),
                    ..SearchQuery::default()
                })
                .is_err()
        );
        assert!(
            index()
                .search(&SearchQuery {
                    text: "x".into(),
                    kind: Some("tables".into()),
                    ..SearchQuery::default()
                })
                .is_err()
        );
    }

    #[test]
    fn snippets_show_the_matching_line() {
        let r = index()
            .search(&SearchQuery {
                text: "主菜".into(),
                ..SearchQuery::default()
            })
            .unwrap();
        assert_eq!(
            r.hits[0].snippet.as_deref(),
            Some("料理の種類（主菜・副菜）")
        );
        assert_eq!(r.hits[0].rank, "described");
    }
}
