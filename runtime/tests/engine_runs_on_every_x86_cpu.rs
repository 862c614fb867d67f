//! The engine runs on every x86-64 CPU (issue 16): on Intel CPUs with AMX, a build with
//! `-march=native` took ggml's AMX path, whose Q4_1 kernel crashed (`generate --n 1` SIGSEGV,
//! `--n 4 --temperature 1` SIGILL, in `ggml_backend_amx_mul_mat`). The build now compiles
//! ggml's kernels for the CPU without AMX, and refuses to run on a CPU that lacks what it was
//! compiled with.

mod common;

use autodidact_runtime::model::llamacpp::{LlamaCppConfig, LlamaCppModel, cpu};
use autodidact_runtime::model::{LanguageModel, Message, Sampling, smollm2_path};

#[tokio::test]
async fn the_real_model_decodes_a_group_and_a_greedy_sequence_without_amx() {
    // All cores, as the CLI runs it: the crash was on llama.cpp's worker threads.
    let config = LlamaCppConfig { path: smollm2_path(), n_ctx: 2048, threads: None, ..LlamaCppConfig::default() };
    let model = LlamaCppModel::load(config).await.expect("the bootstrapped model (run scripts/bootstrap.sh)");
    let msgs = [Message::user("Say hi")];

    // `generate --n 4 --temperature 1`: four sequences decoded together.
    let group = model.chat_group(&msgs, 4, &Sampling::seeded(1.0, 7, 24)).await.unwrap();
    assert_eq!(group.len(), 4);
    for c in &group {
        assert!(c.usage.completion_tokens >= 1, "{c:?}");
        assert_eq!(c.tokens.len(), c.token_logprobs.len());
        assert!(c.token_logprobs.iter().all(|lp| lp.is_finite() && *lp <= 0.0), "{c:?}");
    }
    // `generate --n 1`: one greedy sequence, a real reply.
    let greedy = model.chat_group(&msgs, 1, &Sampling::greedy(24)).await.unwrap();
    assert!(!greedy[0].text.trim().is_empty(), "{:?}", greedy[0]);

    // The weights live in plain or repacked CPU buffers, never in an AMX buffer.
    let buffers = &model.info().weight_buffers;
    assert!(!buffers.is_empty(), "llama.cpp logged no weight buffer while loading");
    assert!(buffers.iter().all(|b| b.starts_with("CPU") && !b.contains("AMX")), "weight buffers: {buffers:?}");

    // Nor does the engine offer one, or report AMX as compiled in.
    let report = cpu::report();
    assert!(report.missing.is_empty(), "{report:?}");
    assert!(!report.extra_buffer_types.iter().any(|b| b.contains("AMX")), "{report:?}");
    assert!(!report.compiled.iter().any(|c| c.starts_with("AMX")), "{report:?}");
    assert!(!report.system_info.contains("AMX_INT8 = 1"), "{}", report.system_info);
}
