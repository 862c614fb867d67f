//! `autodidact generate`: the JSON shape other checks rely on, the scripted backend, and the
//! errors for a missing default model and an empty prompt.

use std::process::Command;

fn autodidact() -> Command {
    Command::new(env!("CARGO_BIN_EXE_autodidact"))
}

#[test]
fn generate_prints_one_json_object() {
    let out = autodidact()
        .args(["generate", "--max-tokens", "4", "--n", "2", "--json", "Say hi."])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let completions = v["completions"].as_array().unwrap();
    assert_eq!(completions.len(), 2);
    for c in completions {
        let tokens = c["tokens"].as_array().unwrap();
        assert!(!tokens.is_empty() && tokens.len() <= 4);
        assert_eq!(c["token_logprobs"].as_array().unwrap().len(), tokens.len());
        assert!(c["text"].is_string());
        assert!(["stop", "length"].contains(&c["finish_reason"].as_str().unwrap()));
    }
    assert!(v["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
}

#[test]
fn scripted_model_replays_its_file() {
    let dir = std::env::temp_dir().join(format!("autodidact-generate-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("replies.txt");
    std::fs::write(&script, "first reply\n---\nsecond reply\n").unwrap();
    let model = format!("scripted:{}", script.display());
    let out = autodidact().args(["generate", "--model", &model, "--n", "3", "--json", "hi"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let texts: Vec<&str> =
        v["completions"].as_array().unwrap().iter().map(|c| c["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["first reply", "second reply", ""]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_default_model_names_the_bootstrap() {
    let out = autodidact()
        .env("AUTODIDACT_HOME", "/nonexistent/autodidact-home")
        .args(["generate", "hello"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("scripts/bootstrap.sh") && err.contains("/nonexistent/autodidact-home"), "{err}");
}

#[test]
fn empty_prompt_is_a_clear_error() {
    let out = autodidact().args(["generate", ""]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("empty prompt"), "{err}");
}
