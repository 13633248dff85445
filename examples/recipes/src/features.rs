//! Features of a recipe: hashed character n-grams (1 to 3) of its title and description, and
//! its ingredients by canonical name — the spelling variants a writer uses (しょうゆ, ｼｮｳﾕ,
//! soy sauce) mapped through the annotators' normalisation sheet, so that they count as one.

use std::collections::HashMap;

/// Hash buckets (a power of two).
pub const DIMS: usize = 1 << 17;

/// A recipe's text as the features see it.
#[derive(Debug, Clone, Default)]
pub struct Recipe {
    pub title: String,
    pub description: String,
    pub ingredients: Vec<String>,
}

/// Full-width ASCII to ASCII and lower case: ＡＢＣ１２３ and abc123 are one spelling.
pub fn fold(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '\u{FF01}'..='\u{FF5E}' => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
            '\u{3000}' => ' ',
            c => c,
        })
        .flat_map(char::to_lowercase)
        .collect()
}

const HALF_WIDTH: &str = "ｦｧｨｩｪｫｬｭｮｯｰｱｲｳｴｵｶｷｸｹｺｻｼｽｾｿﾀﾁﾂﾃﾄﾅﾆﾇﾈﾉﾊﾋﾌﾍﾎﾏﾐﾑﾒﾓﾔﾕﾖﾗﾘﾙﾚﾛﾜﾝ";
const FULL_WIDTH: &str = "ヲァィゥェォャュョッーアイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン";

/// [`fold`], then half-width katakana to full width (ｼｮｳﾕ → ショウユ, with ﾞ and ﾟ joined
/// to the kana before them) and katakana to hiragana (ショウユ → しょうゆ): the ways one
/// word is typed become one string. Hand-written: the JIS X 0201 table is 56 characters,
/// not worth a Unicode-normalisation crate.
pub fn fold_kana(text: &str) -> String {
    let half: Vec<char> = HALF_WIDTH.chars().collect();
    let full: Vec<char> = FULL_WIDTH.chars().collect();
    let mut out: Vec<char> = Vec::with_capacity(text.len());
    for c in fold(text).chars() {
        match c {
            'ﾞ' | 'ﾟ' => {
                // Voiced (+1) and semi-voiced (+2) forms follow their kana in Unicode.
                if let Some(prev) = out.last_mut() {
                    let step = if c == 'ﾞ' { 1 } else { 2 };
                    let voiced = match *prev {
                        'ウ' if step == 1 => Some('ヴ'),
                        'カ'..='ト' if step == 1 => char::from_u32(*prev as u32 + 1),
                        'ハ'..='ホ' => char::from_u32(*prev as u32 + step),
                        _ => None,
                    };
                    if let Some(v) = voiced {
                        *prev = v;
                    }
                }
            }
            c => out.push(half.iter().position(|h| *h == c).map_or(c, |i| full[i])),
        }
    }
    out.into_iter()
        .map(|c| match c {
            'ァ'..='ヶ' => char::from_u32(c as u32 - 0x60).unwrap_or(c),
            c => c,
        })
        .collect()
}

/// Features of an ingredient's written name: hashed character 1–3-grams of its kana-folded
/// form, and the whole folded name.
pub fn name_features(name: &str) -> Vec<(u32, f32)> {
    let folded = fold_kana(name.trim());
    let mut counts = Counts::default();
    counts.add(fnv1a(b'w', folded.as_bytes()));
    counts.ngrams(b'n', &folded);
    counts.normalised()
}

fn fnv1a(prefix: u8, bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ prefix as u64;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The feature vector: (bucket, weight) pairs, L2-normalised.
pub fn extract(r: &Recipe, names: &HashMap<String, String>) -> Vec<(u32, f32)> {
    let mut counts = Counts::default();
    for (prefix, text) in [(b't', &r.title), (b'd', &r.description)] {
        counts.ngrams(prefix, &fold(text));
    }
    for name in &r.ingredients {
        let folded = fold(name.trim());
        let canonical = names.get(&folded).cloned().unwrap_or(folded);
        counts.add(fnv1a(b'i', canonical.as_bytes()));
    }
    counts.normalised()
}

/// Hashed feature counts.
#[derive(Default)]
struct Counts(HashMap<u32, f32>);

impl Counts {
    fn add(&mut self, h: u64) {
        *self.0.entry((h as usize & (DIMS - 1)) as u32).or_default() += 1.0;
    }

    /// The character 1–3-grams of `text` (whitespace left out), hashed with `prefix`.
    fn ngrams(&mut self, prefix: u8, text: &str) {
        let chars: Vec<char> = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut buf = [0u8; 16];
        for n in 1..=3 {
            for w in chars.windows(n) {
                let mut len = 0;
                for c in w {
                    len += c.encode_utf8(&mut buf[len..]).len();
                }
                self.add(fnv1a(prefix + n as u8, &buf[..len]));
            }
        }
    }

    /// (bucket, weight) pairs, L2-normalised, by bucket.
    fn normalised(self) -> Vec<(u32, f32)> {
        let norm = self.0.values().map(|v| v * v).sum::<f32>().sqrt().max(1e-6);
        let mut out: Vec<(u32, f32)> = self.0.into_iter().map(|(k, v)| (k, v / norm)).collect();
        out.sort_unstable_by_key(|(k, _)| *k);
        out
    }
}

/// The normalisation sheet's rows (variant, canonical) as a lookup by folded variant.
pub fn name_map(rows: impl IntoIterator<Item = (String, String)>) -> HashMap<String, String> {
    rows.into_iter()
        .map(|(v, c)| (fold(&v), fold(&c)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spelling_variants_share_the_ingredient_feature() {
        let names = name_map([
            ("しょうゆ".to_string(), "醤油".to_string()),
            ("ｼｮｳﾕ".to_string(), "醤油".to_string()),
            ("soy sauce".to_string(), "醤油".to_string()),
        ]);
        let with = |i: &str| {
            extract(
                &Recipe {
                    ingredients: vec![i.to_string()],
                    ..Default::default()
                },
                &names,
            )
        };
        assert_eq!(with("しょうゆ"), with("醤油"));
        assert_eq!(with("ｼｮｳﾕ"), with("醤油"));
        assert_eq!(with("SOY SAUCE"), with("醤油"));
        assert_ne!(with("みりん"), with("醤油"));
        assert_eq!(fold("ＡＢＣ１２３"), "abc123");
        assert_eq!(fold_kana("ｼｮｳﾕ"), "しょうゆ");
        assert_eq!(fold_kana("ショウユ"), "しょうゆ");
        assert_eq!(fold_kana("ｺﾞﾎﾞｳ"), "ごぼう");
        assert_eq!(fold_kana("ﾊﾟｽﾀ"), "ぱすた");
        assert_eq!(fold_kana("ｽﾊﾟｹﾞｯﾃｨ"), "すぱげってぃ");
        assert_eq!(name_features("ｻﾗﾀﾞ油"), name_features("サラダ油"));
    }
}
