//! Property tests of how model replies are read: `code_blocks` on any text (backtick runs,
//! unicode, CRLF, unterminated fences) returns only runs of the reply's own lines, and returns
//! exactly the code that was wrapped in ` ```repl ` / ` ```python ` fences; `truncate` and
//! `describe_context` take any input. `PROPTEST_CASES` scales the run (`make fuzz`).

#[path = "../../tests/fuzz_common/mod.rs"]
mod fuzz_common;

use autodidact_runtime::rlm::{code_blocks, describe_context, truncate};
use proptest::prelude::*;
use serde_json::Value;

/// Whether `block` is some run of consecutive lines of `reply`, joined by `\n`.
fn is_run_of_lines(reply: &str, block: &str) -> bool {
    let lines: Vec<&str> = reply.lines().collect();
    let want = block.split('\n').count();
    (0..lines.len()).any(|i| i + want <= lines.len() && lines[i..i + want].join("\n") == block)
}

/// Text a model might write: fences with and without tags, backtick runs, unicode, CR and LF.
fn reply() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("```".to_owned()),
        Just("````".to_owned()),
        Just("`".to_owned()),
        prop_oneof![Just("repl"), Just("python"), Just("py"), Just("python3"), Just("PYTHON"), Just(" Repl "), Just("bash"), Just("")]
            .prop_map(|t| format!("```{t}")),
        Just("\n".to_owned()),
        Just("\r\n".to_owned()),
        Just("\r".to_owned()),
        Just("  ".to_owned()),
        Just("\t".to_owned()),
        "[a-z =()+0-9]{1,10}",
        any::<String>(),
        "\\PC{1,4}",
    ];
    prop_oneof![prop::collection::vec(piece, 0..40).prop_map(|p| p.concat()), any::<String>()]
}

#[test]
fn blocks_are_runs_of_the_replys_own_lines() {
    fuzz_common::check("code_blocks_arbitrary_text", 1000, reply(), |r| {
        let blocks = code_blocks(&r);
        let fences = r.lines().filter(|l| l.trim().starts_with("```")).count();
        prop_assert!(blocks.len() <= fences, "{} blocks from {} fence lines", blocks.len(), fences);
        for b in &blocks {
            prop_assert!(!b.trim().is_empty(), "a blank block was returned");
            prop_assert!(is_run_of_lines(&r, b), "block {:?} is not a run of lines of {:?}", b, r);
        }
        Ok(())
    });
}

/// A line of code or prose: never a fence line, no line breaks.
fn code_line() -> impl Strategy<Value = String> {
    prop_oneof!["[a-z_ =()+0-9:#\"'.]{0,20}", "\\PC{0,12}", "[ \t]{0,3}[a-z]{1,5}`{0,2}[a-z]{0,3}"]
        .prop_map(|l| l.replace(['\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{2028}', '\u{2029}'], ""))
        .prop_filter("not a fence line", |l| !l.trim().starts_with("```"))
}

/// A reply made of prose, code wrapped in a python fence (tag in some spelling), other fences
/// (```bash), and line ends of one kind; and the code blocks it holds, in order.
fn wrapped() -> impl Strategy<Value = (String, Vec<String>)> {
    let tag = prop_oneof![Just("repl"), Just("python"), Just("py"), Just("python3"), Just("REPL"), Just(" Python ")];
    let section = prop_oneof![
        prop::collection::vec(code_line(), 0..3).prop_map(|prose| (prose, None, false)),
        (prop::collection::vec(code_line(), 0..3), tag, prop::collection::vec(code_line(), 1..5))
            .prop_map(|(prose, tag, code)| (prose, Some((format!("```{tag}"), code)), true)),
        (prop::collection::vec(code_line(), 0..3), prop::collection::vec(code_line(), 0..3))
            .prop_map(|(prose, other)| (prose, Some(("```bash".to_owned(), other)), false)),
    ];
    (prop::collection::vec(section, 0..5), any::<bool>(), any::<bool>()).prop_map(|(sections, crlf, unterminated)| {
        let mut lines: Vec<String> = Vec::new();
        let mut expected = Vec::new();
        let last = sections.len().saturating_sub(1);
        for (i, (prose, fenced, is_code)) in sections.into_iter().enumerate() {
            lines.extend(prose);
            let Some((open, body)) = fenced else { continue };
            lines.push(open);
            // Only the last block may be left open (small models stop before the fence); the
            // reply then ends with its last line, and an empty last line is a final line end.
            let open_end = unterminated && i == last;
            let mut code = body.clone();
            if open_end && code.last().is_some_and(String::is_empty) {
                code.pop();
            }
            let code = code.join("\n");
            lines.extend(body);
            if is_code && !code.trim().is_empty() {
                expected.push(code);
            }
            if !open_end {
                lines.push(" ``` ".to_owned());
            }
        }
        (lines.join(if crlf { "\r\n" } else { "\n" }), expected)
    })
}

#[test]
fn wrapped_code_comes_back_exactly() {
    fuzz_common::check("code_blocks_wrapped", 1000, wrapped(), |(reply, expected)| {
        prop_assert_eq!(code_blocks(&reply), expected, "reply {:?}", reply);
        Ok(())
    });
}

#[test]
fn truncate_keeps_a_prefix_of_limit_characters() {
    fuzz_common::check("truncate", 1000, (any::<String>(), 0usize..64), |(text, limit)| {
        let (cut, was_cut) = truncate(&text, limit);
        let n = text.chars().count();
        prop_assert!(text.starts_with(&cut));
        prop_assert_eq!(cut.chars().count(), n.min(limit));
        prop_assert_eq!(was_cut, n > limit);
        Ok(())
    });
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<String>().prop_map(Value::String),
        "\\PC{190,210}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::hash_map("[a-z]{1,4}", inner, 0..3).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

#[test]
fn any_context_is_described() {
    fuzz_common::check("describe_context", 1000, json(), |v| {
        prop_assert!(!describe_context(&v).is_empty());
        Ok(())
    });
}
