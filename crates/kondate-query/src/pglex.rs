//! PostgreSQL's lexer, as far as the guard needs it: where each token starts and ends, and
//! what each identifier *is* once PostgreSQL has decoded it.
//!
//! The guard parses statements with sqlparser, which does not lex every PostgreSQL form the
//! way PostgreSQL does (Unicode-escaped identifiers such as `U&"pg\005fread_file"`, strings
//! whose backslashes mean something only under `standard_conforming_strings = off`, …).
//! A statement that sqlparser reads one way and PostgreSQL another could carry a refused
//! function past the guard. So the guard also lexes the statement here, following
//! PostgreSQL's own rules (`src/backend/parser/scan.l`), and checks every identifier
//! followed by `(` — every function call, wherever it is — against the refused functions.
//!
//! Hand-written because no crate lexes PostgreSQL's full syntax (sqlparser is the one this
//! checks); it covers: `--` and nested `/* */` comments, unquoted identifiers (folded to
//! lower case), `"quoted"` and `U&"unicode"` identifiers (with `UESCAPE`), `'standard'`,
//! `E'escape'`, `B''`, `X''`, `N''` and `U&''` strings, dollar quotes `$tag$…$tag$`,
//! parameters `$1`, numbers, operators (cut where a comment starts, as PostgreSQL does) and
//! punctuation. Anything it cannot lex is an error, and the guard refuses the statement.

/// What a token is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An identifier or keyword, as PostgreSQL reads it: unquoted ones folded to lower
    /// case, quoted ones decoded.
    Ident {
        name: String,
        quoted: bool,
    },
    /// A string constant (any kind); its value does not matter to the guard.
    Str,
    Number,
    /// `$1`.
    Param,
    /// An operator or a punctuation character: `(`, `)`, `,`, `;`, `::`, `+`, …
    Op(String),
}

/// A statement PostgreSQL would not lex either.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct LexError(pub String);

/// PostgreSQL's whitespace (`space` in scan.l); other Unicode spaces are identifier
/// characters to it, as every non-ASCII character is.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_cont(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit() || c == '$'
}

fn is_dolq_cont(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

const OP_CHARS: &str = "~!@#^&|`?+-*/%<>=";

struct Lexer<'a> {
    s: &'a [char],
    i: usize,
    /// Backslashes in plain `'…'` strings are escapes (`standard_conforming_strings = off`).
    backslash_escapes: bool,
}

impl Lexer<'_> {
    fn peek(&self, off: usize) -> Option<char> {
        self.s.get(self.i + off).copied()
    }

    fn starts_with(&self, p: &str) -> bool {
        p.chars().enumerate().all(|(k, c)| self.peek(k) == Some(c))
    }

    /// Skip whitespace and comments; comments nest as in PostgreSQL.
    fn skip_trivia(&mut self) -> Result<(), LexError> {
        loop {
            match self.peek(0) {
                Some(c) if is_space(c) => self.i += 1,
                Some('-') if self.peek(1) == Some('-') => {
                    while let Some(c) = self.peek(0) {
                        if c == '\n' || c == '\r' {
                            break;
                        }
                        self.i += 1;
                    }
                }
                Some('/') if self.peek(1) == Some('*') => {
                    let mut depth = 0usize;
                    loop {
                        if self.starts_with("/*") {
                            depth += 1;
                            self.i += 2;
                        } else if self.starts_with("*/") {
                            depth -= 1;
                            self.i += 2;
                            if depth == 0 {
                                break;
                            }
                        } else if self.peek(0).is_some() {
                            self.i += 1;
                        } else {
                            return Err(LexError("a /* comment is not closed".into()));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// A quoted body ending at `quote`, where a doubled quote is one quote character;
    /// `escapes`: a backslash takes the next character with it.
    fn quoted(&mut self, quote: char, escapes: bool, what: &str) -> Result<String, LexError> {
        let mut out = String::new();
        loop {
            match self.peek(0) {
                None => return Err(LexError(format!("{what} is not closed"))),
                Some('\\') if escapes => {
                    out.push('\\');
                    match self.peek(1) {
                        Some(c) => {
                            out.push(c);
                            self.i += 2;
                        }
                        None => return Err(LexError(format!("{what} is not closed"))),
                    }
                }
                Some(c) if c == quote => {
                    if self.peek(1) == Some(quote) {
                        out.push(quote);
                        self.i += 2;
                    } else {
                        self.i += 1;
                        return Ok(out);
                    }
                }
                Some(c) => {
                    out.push(c);
                    self.i += 1;
                }
            }
        }
    }

    /// A string constant whose opening quote is at `self.i`; adjacent string constants
    /// separated by whitespace with a newline continue it (as in the SQL standard).
    fn string(&mut self, escapes: bool) -> Result<(), LexError> {
        self.i += 1;
        self.quoted('\'', escapes, "a string constant")?;
        loop {
            let save = self.i;
            let mut newline = false;
            while let Some(c) = self.peek(0) {
                if !is_space(c) {
                    break;
                }
                newline |= c == '\n' || c == '\r';
                self.i += 1;
            }
            if newline && self.peek(0) == Some('\'') {
                self.i += 1;
                self.quoted('\'', escapes, "a string constant")?;
            } else {
                self.i = save;
                return Ok(());
            }
        }
    }

    /// After a `U&"…"` or `U&'…'`: an optional `UESCAPE 'c'`; the escape character.
    fn uescape(&mut self) -> Result<char, LexError> {
        let save = self.i;
        self.skip_trivia()?;
        let word: String = self.s[self.i..]
            .iter()
            .take(7)
            .collect::<String>()
            .to_ascii_lowercase();
        if word == "uescape" && !self.peek(7).is_some_and(is_ident_cont) {
            self.i += 7;
            self.skip_trivia()?;
            if self.peek(0) != Some('\'') {
                return Err(LexError(
                    "UESCAPE must be followed by a one-character string".into(),
                ));
            }
            self.i += 1;
            let esc = self.quoted('\'', false, "the UESCAPE string")?;
            let mut chars = esc.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None)
                    if !c.is_ascii_hexdigit() && !is_space(c) && !matches!(c, '+' | '\'' | '"') =>
                {
                    Ok(c)
                }
                _ => Err(LexError(format!(
                    "invalid Unicode escape character `{esc}`"
                ))),
            }
        } else {
            self.i = save;
            Ok('\\')
        }
    }

    fn next(&mut self) -> Result<Option<Token>, LexError> {
        self.skip_trivia()?;
        let Some(c) = self.peek(0) else {
            return Ok(None);
        };
        let lower = c.to_ascii_lowercase();
        // Prefixed strings and identifiers: U&"…", U&'…', E'…', B'…', X'…', N'…'.
        if lower == 'u' && self.peek(1) == Some('&') && matches!(self.peek(2), Some('"' | '\'')) {
            let quote = self.peek(2).expect("just seen");
            self.i += 3;
            let raw = self.quoted(quote, false, "a U& constant")?;
            let esc = self.uescape()?;
            let decoded = decode_unicode(&raw, esc)?;
            return Ok(Some(if quote == '"' {
                if decoded.is_empty() {
                    return Err(LexError("a quoted identifier is empty".into()));
                }
                Token::Ident {
                    name: decoded,
                    quoted: true,
                }
            } else {
                Token::Str
            }));
        }
        if matches!(lower, 'e' | 'b' | 'x' | 'n') && self.peek(1) == Some('\'') {
            self.i += 1;
            let escapes = lower == 'e' || (lower == 'n' && self.backslash_escapes);
            self.string(escapes)?;
            return Ok(Some(Token::Str));
        }
        if c == '\'' {
            self.string(self.backslash_escapes)?;
            return Ok(Some(Token::Str));
        }
        if c == '"' {
            self.i += 1;
            let name = self.quoted('"', false, "a quoted identifier")?;
            if name.is_empty() {
                return Err(LexError("a quoted identifier is empty".into()));
            }
            return Ok(Some(Token::Ident { name, quoted: true }));
        }
        if c == '$' {
            // `$1` is a parameter; `$tag$` or `$$` opens a dollar-quoted string.
            if self.peek(1).is_some_and(|d| d.is_ascii_digit()) {
                self.i += 1;
                while self.peek(0).is_some_and(|d| d.is_ascii_digit()) {
                    self.i += 1;
                }
                return Ok(Some(Token::Param));
            }
            let mut j = 1;
            if self.peek(1).is_some_and(is_ident_start) {
                while self.peek(j).is_some_and(is_dolq_cont) {
                    j += 1;
                }
            }
            if self.peek(j) != Some('$') {
                return Err(LexError(
                    "a `$` that starts neither a parameter nor a dollar-quoted string".into(),
                ));
            }
            let tag: String = self.s[self.i..=self.i + j].iter().collect();
            self.i += j + 1;
            loop {
                if self.starts_with(&tag) {
                    self.i += tag.chars().count();
                    return Ok(Some(Token::Str));
                }
                if self.peek(0).is_none() {
                    return Err(LexError(format!(
                        "the dollar-quoted string {tag} is not closed"
                    )));
                }
                self.i += 1;
            }
        }
        if is_ident_start(c) {
            let start = self.i;
            while self.peek(0).is_some_and(is_ident_cont) {
                self.i += 1;
            }
            let name: String = self.s[start..self.i].iter().collect();
            return Ok(Some(Token::Ident {
                name: name.to_ascii_lowercase(),
                quoted: false,
            }));
        }
        if c.is_ascii_digit() || (c == '.' && self.peek(1).is_some_and(|d| d.is_ascii_digit())) {
            while self
                .peek(0)
                .is_some_and(|d| d.is_ascii_alphanumeric() || d == '.' || d == '_')
            {
                // An exponent's sign belongs to the number.
                if matches!(self.peek(0), Some('e' | 'E'))
                    && matches!(self.peek(1), Some('+' | '-'))
                {
                    self.i += 1;
                }
                // `1..2` is a number, then `..`: stop before a second dot pair.
                if self.peek(0) == Some('.') && self.peek(1) == Some('.') {
                    break;
                }
                self.i += 1;
            }
            return Ok(Some(Token::Number));
        }
        if OP_CHARS.contains(c) {
            // The longest run of operator characters, cut where a comment starts.
            let start = self.i;
            while self.peek(0).is_some_and(|d| OP_CHARS.contains(d)) {
                if self.i > start && (self.starts_with("--") || self.starts_with("/*")) {
                    break;
                }
                self.i += 1;
            }
            return Ok(Some(Token::Op(self.s[start..self.i].iter().collect())));
        }
        if c == ':' && self.peek(1) == Some(':') {
            self.i += 2;
            return Ok(Some(Token::Op("::".into())));
        }
        if "()[],;:.".contains(c) {
            self.i += 1;
            return Ok(Some(Token::Op(c.to_string())));
        }
        Err(LexError(format!("unexpected character `{c}`")))
    }
}

/// Decode a `U&` body: `ESC` + 4 hex digits, `ESC+` + 6 hex digits, `ESC ESC`.
fn decode_unicode(raw: &str, esc: char) -> Result<String, LexError> {
    let chars: Vec<char> = raw.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let bad = || LexError(format!("invalid Unicode escape in U&\"{raw}\""));
    while i < chars.len() {
        if chars[i] != esc {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        if chars.get(i + 1) == Some(&esc) {
            out.push(esc);
            i += 2;
            continue;
        }
        let (start, len) = if chars.get(i + 1) == Some(&'+') {
            (i + 2, 6)
        } else {
            (i + 1, 4)
        };
        let hex: String = chars
            .get(start..start + len)
            .ok_or_else(bad)?
            .iter()
            .collect();
        if !hex.chars().all(|h| h.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let code = u32::from_str_radix(&hex, 16).map_err(|_| bad())?;
        out.push(
            char::from_u32(code)
                .filter(|&ch| ch != '\0')
                .ok_or_else(bad)?,
        );
        i = start + len;
    }
    Ok(out)
}

/// The tokens of `sql` as PostgreSQL lexes it; `backslash_escapes` is
/// `standard_conforming_strings = off`.
pub fn tokens(sql: &str, backslash_escapes: bool) -> Result<Vec<Token>, LexError> {
    let chars: Vec<char> = sql.chars().collect();
    let mut lx = Lexer {
        s: &chars,
        i: 0,
        backslash_escapes,
    };
    let mut out = Vec::new();
    while let Some(t) = lx.next()? {
        out.push(t);
    }
    Ok(out)
}

/// The names of every function called in `tokens` (an identifier directly followed by
/// `(`), as PostgreSQL reads them, with the schema they are qualified with if any.
pub fn called_functions(tokens: &[Token]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        let Token::Ident { name, .. } = t else {
            continue;
        };
        if tokens.get(i + 1) != Some(&Token::Op("(".into())) {
            continue;
        }
        let qualified = match (
            i.checked_sub(2).map(|k| &tokens[k]),
            tokens.get(i.wrapping_sub(1)),
        ) {
            (Some(Token::Ident { name: schema, .. }), Some(Token::Op(dot))) if dot == "." => {
                format!("{schema}.{name}")
            }
            _ => name.clone(),
        };
        out.push(qualified);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn funcs(sql: &str) -> Vec<String> {
        called_functions(&tokens(sql, false).unwrap())
    }

    #[test]
    fn function_calls_are_found_as_postgresql_reads_them() {
        let cases: &[(&str, &[&str])] = &[
            ("SELECT lower(a) FROM t", &["lower"]),
            ("SELECT PG_READ_FILE ('x')", &["pg_read_file"]),
            ("SELECT \"pg_read_file\"('x')", &["pg_read_file"]),
            (
                "SELECT pg_catalog.pg_read_file('x')",
                &["pg_catalog.pg_read_file"],
            ),
            // Unicode escapes: \005f is `_`, \+000065 is `e`.
            (
                "SELECT U&\"pg\\005fread_fil\\+000065\"('x')",
                &["pg_read_file"],
            ),
            (
                "SELECT u&\"pg!005fread_file\" UESCAPE '!' ('x')",
                &["pg_read_file"],
            ),
            ("SELECT U&\"a\\\\b\"(1)", &["a\\b"]),
            // Inside ARRAY(…), a subquery, a CTE, FROM: wherever it is.
            (
                "SELECT ARRAY(SELECT pg_read_file('x'))",
                &["array", "pg_read_file"],
            ),
            // Keywords before `(` are listed too; they are not refused functions.
            (
                "WITH a AS (SELECT dblink('x','y')) SELECT 1",
                &["as", "dblink"],
            ),
            // Not calls: a table name, a column, a string, a comment.
            ("SELECT lo_size FROM lo_items", &[]),
            ("SELECT 'pg_read_file(1)'", &[]),
            ("SELECT 1 -- pg_read_file('x')", &[]),
            ("SELECT 1 /* pg_read_file('x') */", &[]),
            ("SELECT $$pg_read_file('x')$$", &[]),
            ("SELECT $t$ $$ pg_read_file('x') $$ $t$", &[]),
        ];
        for (sql, want) in cases {
            assert_eq!(funcs(sql), *want, "{sql}");
        }
    }

    #[test]
    fn nested_comments_hide_what_postgresql_hides_and_no_more() {
        // PostgreSQL nests: all of this is one comment.
        assert_eq!(
            funcs("SELECT 1 /* a /* b */ pg_read_file('x') */"),
            Vec::<String>::new()
        );
        // And this closes after the second */: the call is code.
        assert_eq!(
            funcs("SELECT 1 /* a /* b */ c */, pg_read_file('x')"),
            vec!["pg_read_file"]
        );
        assert!(tokens("SELECT 1 /* /* */", false).is_err());
    }

    #[test]
    fn backslashes_in_strings_follow_the_setting() {
        // With standard_conforming_strings = on, 'a\' ends the string: the call is code.
        let sql = "SELECT 'a\\', pg_read_file('x') --'";
        assert_eq!(funcs(sql), vec!["pg_read_file"]);
        // With it off, the backslash escapes the quote and everything is one string.
        assert_eq!(
            called_functions(&tokens(sql, true).unwrap()),
            Vec::<String>::new()
        );
        // E'' strings always take backslash escapes.
        assert_eq!(
            funcs("SELECT E'a\\', pg_read_file(''x'') --'"),
            Vec::<String>::new()
        );
        assert_eq!(
            funcs("SELECT E'a\\\\', pg_read_file('x')"),
            vec!["pg_read_file"]
        );
    }

    #[test]
    fn operators_stop_where_a_comment_starts() {
        assert_eq!(
            tokens("SELECT 1 +-- c\n 2", false).unwrap(),
            vec![
                Token::Ident {
                    name: "select".into(),
                    quoted: false
                },
                Token::Number,
                Token::Op("+".into()),
                Token::Number,
            ]
        );
    }

    #[test]
    fn what_postgresql_would_not_lex_is_an_error() {
        for sql in [
            "SELECT 'open",
            "SELECT \"open",
            "SELECT $a$ open",
            "SELECT U&\"\\zzzz\"(1)",
            "SELECT U&\"x\" UESCAPE 'ab'",
            "SELECT \"\"",
            "SELECT $ 1",
        ] {
            assert!(tokens(sql, false).is_err(), "{sql}");
        }
    }

    #[test]
    fn only_postgresql_whitespace_separates_tokens() {
        // U+3000 is part of an identifier to PostgreSQL, so this calls no `pg_read_file`;
        // reading it as a space would be wrong, and is at least refused, never let through.
        let t = tokens("SELECT pg_read_file\u{3000}('x')", false).unwrap();
        assert_eq!(
            t[1],
            Token::Ident {
                name: "pg_read_file\u{3000}".into(),
                quoted: false
            }
        );
    }

    #[test]
    fn parameters_numbers_and_casts() {
        assert_eq!(
            tokens("SELECT $1::int, 1.5e-3, .5", false).unwrap(),
            vec![
                Token::Ident {
                    name: "select".into(),
                    quoted: false
                },
                Token::Param,
                Token::Op("::".into()),
                Token::Ident {
                    name: "int".into(),
                    quoted: false
                },
                Token::Op(",".into()),
                Token::Number,
                Token::Op(",".into()),
                Token::Number,
            ]
        );
    }
}
