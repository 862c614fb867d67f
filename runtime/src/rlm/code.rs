//! Reading model replies: the fenced code blocks to run.

/// The bodies of the ` ```repl ` (or ` ```python `) blocks in `reply`, in order.
///
/// An unterminated last block is taken to the end of the reply: small models often stop
/// before the closing fence.
pub fn code_blocks(reply: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in reply.lines() {
        let trimmed = line.trim();
        match &mut current {
            None => {
                if let Some(tag) = trimmed.strip_prefix("```") {
                    let tag = tag.trim().to_ascii_lowercase();
                    if matches!(tag.as_str(), "repl" | "python" | "py" | "python3") {
                        current = Some(Vec::new());
                    }
                }
            }
            Some(lines) => {
                if trimmed.starts_with("```") {
                    blocks.push(lines.join("\n"));
                    current = None;
                } else {
                    lines.push(line);
                }
            }
        }
    }
    if let Some(lines) = current {
        if lines.iter().any(|l| !l.trim().is_empty()) {
            blocks.push(lines.join("\n"));
        }
    }
    blocks.retain(|b| !b.trim().is_empty());
    blocks
}

/// Cuts `text` to `limit` characters; returns it and whether it was cut.
pub fn truncate(text: &str, limit: usize) -> (String, bool) {
    match text.char_indices().nth(limit) {
        Some((i, _)) => (text[..i].to_owned(), true),
        None => (text.to_owned(), false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_in_order_with_both_tags() {
        let r = "think\n```repl\nx = 1\n```\nthen\n```python\nprint(x)\n```\n```bash\nls\n```";
        assert_eq!(code_blocks(r), vec!["x = 1", "print(x)"]);
    }

    #[test]
    fn unterminated_last_block_is_kept_and_empty_ones_dropped() {
        assert_eq!(code_blocks("```repl\n\n```\n```repl\n1 + 1"), vec!["1 + 1"]);
        assert!(code_blocks("no code here").is_empty());
    }

    #[test]
    fn truncation_counts_characters() {
        assert_eq!(truncate("héllo", 2), ("hé".to_owned(), true));
        assert_eq!(truncate("hi", 5), ("hi".to_owned(), false));
    }
}
