//! The app's pages read as a browser reads them: parsed into elements by a real HTML parser
//! (scraper, on html5ever), so a test looks at elements, attributes and decoded text, and not at
//! how the markup happens to be spelled (attribute order, quoting, `&#39;` or `'`).

use std::collections::BTreeMap;

use scraper::{ElementRef, Html, Selector};

/// A parsed HTML page.
pub struct Document {
    html: Html,
}

impl Document {
    pub fn parse(body: &str) -> Document {
        Document {
            html: Html::parse_document(body),
        }
    }

    /// Every element matching the CSS selector `css`, in document order.
    pub fn select(&self, css: &str) -> Vec<ElementRef<'_>> {
        self.html.select(&selector(css)).collect()
    }

    /// The text of every element matching `css`, in document order (see [`text_of`]).
    pub fn texts(&self, css: &str) -> Vec<String> {
        self.select(css).into_iter().map(text_of).collect()
    }

    /// The elements with `data-testid="<testid>"`, in document order.
    pub fn testids(&self, testid: &str) -> Vec<ElementRef<'_>> {
        self.select(&format!(r#"[data-testid="{testid}"]"#))
    }

    pub fn count_testid(&self, testid: &str) -> usize {
        self.testids(testid).len()
    }

    /// The text of the first `data-testid` element, whitespace collapsed (see [`text_of`]).
    pub fn testid_text(&self, testid: &str) -> Option<String> {
        self.testids(testid)
            .first()
            .map(|element| text_of(*element))
    }

    /// The text of every `data-testid` element, in document order.
    pub fn testid_texts(&self, testid: &str) -> Vec<String> {
        self.testids(testid).into_iter().map(text_of).collect()
    }

    /// The value of the first form field named `name` (hidden ones included), decoded.
    pub fn field(&self, name: &str) -> Option<String> {
        self.select(&format!(r#"[name="{name}"]"#))
            .first()
            .and_then(|field| field.value().attr("value"))
            .map(str::to_owned)
    }

    /// The hidden CSRF field of the (first) form on the page; panics, with the page, without one.
    pub fn csrf_token(&self) -> String {
        self.field("csrf_token")
            .unwrap_or_else(|| panic!("no csrf_token field in the page: {}", self.html.html()))
    }

    /// Everything the page's body says, whitespace collapsed: what a person reads.
    pub fn text(&self) -> String {
        self.select("body")
            .first()
            .map_or_else(String::new, |body| text_of(*body))
    }

    /// Whether the page says `words` (whitespace in either collapses, so line breaks in a
    /// template do not matter).
    pub fn shows(&self, words: &str) -> bool {
        self.text().contains(&collapse_whitespace(words))
    }
}

/// An element's text as the DOM's `textContent` has it (entities decoded, its descendants'
/// texts in order), with runs of whitespace made one space.
pub fn text_of(element: ElementRef<'_>) -> String {
    collapse_whitespace(&element.text().collect::<String>())
}

/// The elements inside `element` matching the CSS selector `css`, in document order.
pub fn select_in<'a>(element: ElementRef<'a>, css: &str) -> Vec<ElementRef<'a>> {
    element.select(&selector(css)).collect()
}

fn selector(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("bad CSS selector {css:?}: {e}"))
}

/// An element's attributes, by name: to check a tag's whole set of attributes at once.
pub fn attributes_of(element: ElementRef<'_>) -> BTreeMap<String, String> {
    element
        .value()
        .attrs()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn collapse_whitespace(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
