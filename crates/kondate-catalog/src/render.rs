//! Descriptions are Markdown, rendered to HTML with pulldown-cmark (CommonMark, with tables
//! and strikethrough) and made safe on the way: raw HTML in the text is shown as text, never
//! passed through, and a link or image may only point to `http:`, `https:`, `mailto:` or a
//! relative address — so no description can run a script in a reader's browser.
//!
//! Sanitising the parser's events, rather than cleaning its HTML afterwards with an HTML
//! sanitiser (ammonia and its HTML parser), is deliberate: nothing but pulldown-cmark's own
//! escaped output reaches the page, which is the whole of what a sanitiser would allow, at a
//! fraction of the build.
//!
//! Glossary keywords become links to their pages wherever they appear in text (not inside
//! code or an existing link).

use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};

/// Whether `url` may be a link's or an image's address: a relative address (no scheme), or
/// one of the schemes that cannot run code.
pub fn safe_url(url: &str) -> bool {
    let trimmed = url.trim_start();
    // A scheme is what comes before the first ':' when no '/', '?' or '#' comes earlier.
    let scheme_end = trimmed.find([':', '/', '?', '#']);
    match scheme_end {
        Some(i) if trimmed[i..].starts_with(':') => {
            let scheme = trimmed[..i].to_ascii_lowercase();
            matches!(scheme.as_str(), "http" | "https" | "mailto")
        }
        _ => !trimmed.chars().any(|c| c.is_control()),
    }
}

/// A keyword's page, relative to the catalog's pages.
pub fn keyword_href(keyword: &str) -> String {
    format!("/catalog/keywords/{}", crate::docs::encode_part(keyword))
}

/// `markdown` as safe HTML, with each of `keywords` linked to its page.
pub fn render_markdown(markdown: &str, keywords: &[String]) -> String {
    let options =
        Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH | Options::ENABLE_TASKLISTS;
    // Longest first, so that `recipe category` wins over `recipe`.
    let mut keywords: Vec<&String> = keywords.iter().filter(|k| !k.is_empty()).collect();
    keywords.sort_by_key(|k| std::cmp::Reverse(k.chars().count()));
    let mut in_link = 0usize;
    let mut in_code = 0usize;
    let mut events: Vec<Event> = Vec::new();
    for event in Parser::new_ext(markdown, options) {
        match event {
            // Raw HTML is shown as the text it is.
            Event::Html(html) | Event::InlineHtml(html) => events.push(Event::Text(html)),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                in_link += 1;
                let dest_url = if safe_url(&dest_url) {
                    dest_url
                } else {
                    CowStr::Borrowed("#")
                };
                events.push(Event::Start(Tag::Link {
                    link_type,
                    dest_url,
                    title,
                    id,
                }));
            }
            Event::End(TagEnd::Link) => {
                in_link = in_link.saturating_sub(1);
                events.push(event);
            }
            Event::Start(Tag::Image {
                link_type,
                dest_url,
                title,
                id,
            }) => {
                let dest_url = if safe_url(&dest_url) {
                    dest_url
                } else {
                    CowStr::Borrowed("")
                };
                events.push(Event::Start(Tag::Image {
                    link_type,
                    dest_url,
                    title,
                    id,
                }));
            }
            Event::Start(Tag::CodeBlock(_)) => {
                in_code += 1;
                events.push(event);
            }
            Event::End(TagEnd::CodeBlock) => {
                in_code = in_code.saturating_sub(1);
                events.push(event);
            }
            Event::Text(text) if in_link == 0 && in_code == 0 && !keywords.is_empty() => {
                link_keywords(&text, &keywords, &mut events);
            }
            other => events.push(other),
        }
    }
    let mut html = String::with_capacity(markdown.len() * 3 / 2);
    pulldown_cmark::html::push_html(&mut html, events.into_iter());
    html
}

/// Whether `c` continues a word written in ASCII (so `id` is not found inside `recipe_id`).
fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `text` as events, each keyword occurrence a link to the keyword's page.
fn link_keywords<'a>(text: &str, keywords: &[&String], out: &mut Vec<Event<'a>>) {
    let mut plain = String::new();
    let mut rest = text;
    let mut before: Option<char> = None;
    'outer: while !rest.is_empty() {
        for k in keywords {
            if rest.starts_with(k.as_str()) {
                let after = rest[k.len()..].chars().next();
                let first = k.chars().next().unwrap_or(' ');
                let last = k.chars().last().unwrap_or(' ');
                let glued = (word_char(first) && before.is_some_and(word_char))
                    || (word_char(last) && after.is_some_and(word_char));
                if !glued {
                    if !plain.is_empty() {
                        out.push(Event::Text(CowStr::from(std::mem::take(&mut plain))));
                    }
                    out.push(Event::Start(Tag::Link {
                        link_type: pulldown_cmark::LinkType::Inline,
                        dest_url: CowStr::from(keyword_href(k)),
                        title: CowStr::Borrowed(""),
                        id: CowStr::Borrowed(""),
                    }));
                    out.push(Event::Text(CowStr::from(k.to_string())));
                    out.push(Event::End(TagEnd::Link));
                    before = k.chars().last();
                    rest = &rest[k.len()..];
                    continue 'outer;
                }
            }
        }
        let c = rest.chars().next().unwrap_or_default();
        plain.push(c);
        before = Some(c);
        rest = &rest[c.len_utf8()..];
    }
    if !plain.is_empty() {
        out.push(Event::Text(CowStr::from(plain)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_renders_as_commonmark() {
        let html = render_markdown(
            "# Title\n\n**bold** and `code`\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
            &[],
        );
        assert!(html.contains("<h1>Title</h1>"), "{html}");
        assert!(html.contains("<strong>bold</strong>"), "{html}");
        assert!(html.contains("<code>code</code>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }

    /// Hostile input: nothing that could run reaches the HTML.
    #[test]
    fn hostile_markdown_is_sanitised() {
        let cases = [
            "<script>alert(1)</script>",
            "hello <img src=x onerror=alert(1)>",
            "<div onclick=\"alert(1)\">block</div>\n",
            "[click](javascript:alert(1))",
            "[click](JaVaScRiPt:alert(1))",
            "[click]( javascript:alert(1))",
            "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
            "![x](javascript:alert(1))",
            "[ref]\n\n[ref]: vbscript:msgbox(1)",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<svg><script>alert(1)</script></svg>",
            "<style>body{display:none}</style>",
            "[x](\"onmouseover=alert(1))",
            "<<script>script>alert(1)<</script>/script>",
        ];
        for md in cases {
            let html = render_markdown(md, &["alert".to_string()]);
            // Every tag is one CommonMark makes, and none carries an event handler or a
            // script address.
            for tag in html.split('<').skip(1) {
                let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
                let name = tag
                    .trim_start_matches('/')
                    .split([' ', '/'])
                    .next()
                    .unwrap_or("");
                assert!(
                    [
                        "p",
                        "a",
                        "code",
                        "pre",
                        "em",
                        "strong",
                        "img",
                        "del",
                        "table",
                        "thead",
                        "tbody",
                        "tr",
                        "th",
                        "td",
                        "ul",
                        "ol",
                        "li",
                        "h1",
                        "h2",
                        "blockquote"
                    ]
                    .contains(&name),
                    "{md:?} rendered tag <{tag}> in {html:?}"
                );
                let lower = tag.to_ascii_lowercase();
                for bad in [" on", "javascript:", "vbscript:", "data:"] {
                    assert!(!lower.contains(bad), "{md:?} rendered <{tag}> in {html:?}");
                }
            }
        }
        // The text is still there, shown as text.
        let html = render_markdown("<script>alert(1)</script>", &[]);
        assert!(html.contains("&lt;script&gt;"), "{html}");
    }

    #[test]
    fn safe_urls() {
        for ok in [
            "https://x.example/a",
            "http://x",
            "mailto:a@b",
            "/catalog/t",
            "t#c",
            "../x?y=z:1",
        ] {
            assert!(safe_url(ok), "{ok}");
        }
        for bad in [
            "javascript:x",
            "JAVASCRIPT:x",
            "data:text/html,x",
            "vbscript:x",
            "file:///etc/passwd",
        ] {
            assert!(!safe_url(bad), "{bad}");
        }
    }

    #[test]
    fn keywords_become_links_at_word_boundaries() {
        let kw = vec![
            "主菜".to_string(),
            "recipe".to_string(),
            "recipe category".to_string(),
        ];
        let html = render_markdown(
            "A recipe category is 主菜 or not; recipe_id is not a recipe. `recipe` in code, [recipe](https://x.example).",
            &kw,
        );
        assert!(
            html.contains("<a href=\"/catalog/keywords/recipe%20category\">recipe category</a>"),
            "{html}"
        );
        assert!(
            html.contains("<a href=\"/catalog/keywords/%E4%B8%BB%E8%8F%9C\">主菜</a>"),
            "{html}"
        );
        assert!(
            html.contains("recipe_id is not a <a href=\"/catalog/keywords/recipe\">recipe</a>."),
            "{html}"
        );
        assert!(html.contains("<code>recipe</code>"), "{html}");
        assert!(
            html.contains("<a href=\"https://x.example\">recipe</a>"),
            "{html}"
        );
    }
}
