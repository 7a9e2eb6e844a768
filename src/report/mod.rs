//! How a step is shown to people and tools: the job log (collapsible sections and a summary
//! line), a JUnit XML report for GitLab's test widget, the merge-request note's text, and the
//! failure excerpts they carry. Pure text: nothing here talks to GitLab.

pub mod excerpt;
pub mod joblog;
pub mod junit;
pub mod markdown;
pub mod note;
pub mod summary;
pub mod terraform;

/// The entity for a character that markup (HTML, XML) would read as its own: one table for the
/// note and the JUnit report alike.
pub fn entity(c: char) -> Option<&'static str> {
    match c {
        '&' => Some("&amp;"),
        '<' => Some("&lt;"),
        '>' => Some("&gt;"),
        '"' => Some("&quot;"),
        _ => None,
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
pub fn cut_to_bytes(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}
