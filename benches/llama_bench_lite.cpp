// llama-bench-lite: llama.cpp's own speed on a model, measured the way llama-bench does it,
// against the same vendored libllama that autodidact links (built by `make bench-native`).
//
//   llama-bench-lite MODEL.gguf THREADS RUNS [FLASH_ATTENTION]
//
// FLASH_ATTENTION is 1 (the default, as autodidact's own default) or 0, so that both sides of
// the comparison run the same attention kernel.
// pp512: 512 random tokens decoded as one prompt (batch 2048, ubatch 512).
// tg128: 128 tokens decoded one at a time, each a random token (no sampling).
// One warm-up of each, then RUNS repetitions with the KV cache cleared before each. Prints one
// JSON object with the median tokens per second of each test.
#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

static void quiet(ggml_log_level, const char *, void *) {}

static double now_s() {
    using namespace std::chrono;
    return duration<double>(steady_clock::now().time_since_epoch()).count();
}

static double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 6) {
        fprintf(stderr, "usage: %s MODEL.gguf THREADS RUNS [FLASH_ATTENTION [KV_TYPE]]\n", argv[0]);
        return 2;
    }
    const int threads = atoi(argv[2]);
    const int runs = std::max(1, atoi(argv[3]));
    const bool flash = argc < 5 || atoi(argv[4]) != 0;
    // The KV cache's element type: f16 (the default), f32 or q8_0.
    const std::string kv = argc == 6 ? argv[5] : "f16";
    const int n_prompt = 512, n_gen = 128;

    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        fprintf(stderr, "cannot load %s\n", argv[1]);
        return 1;
    }
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_prompt + n_gen;
    cp.n_batch = 2048;
    cp.n_ubatch = 512;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.flash_attn_type = flash ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.type_k = kv == "f32" ? GGML_TYPE_F32 : kv == "q8_0" ? GGML_TYPE_Q8_0 : GGML_TYPE_F16;
    cp.type_v = cp.type_k;
    llama_context *ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        fprintf(stderr, "cannot create a context\n");
        return 1;
    }
    const llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    std::mt19937 rng(42);

    auto pp = [&]() {
        std::vector<llama_token> tokens(n_prompt);
        for (auto &t : tokens) t = rng() % n_vocab;
        if (llama_vocab_get_add_bos(vocab)) tokens[0] = llama_vocab_bos(vocab);
        if (llama_decode(ctx, llama_batch_get_one(tokens.data(), n_prompt))) {
            fprintf(stderr, "decode failed\n");
            exit(1);
        }
        llama_synchronize(ctx);
    };
    auto tg = [&](int n) {
        llama_token t = llama_vocab_get_add_bos(vocab) ? llama_vocab_bos(vocab) : rng() % n_vocab;
        for (int i = 0; i < n; i++) {
            if (llama_decode(ctx, llama_batch_get_one(&t, 1))) {
                fprintf(stderr, "decode failed\n");
                exit(1);
            }
            llama_synchronize(ctx);
            t = rng() % n_vocab;
        }
    };

    std::vector<double> pp_tps, tg_tps;
    llama_memory_t mem = llama_get_memory(ctx);
    pp();  // warm-up
    for (int r = 0; r < runs; r++) {
        llama_memory_clear(mem, true);
        double t0 = now_s();
        pp();
        pp_tps.push_back(n_prompt / (now_s() - t0));
    }
    llama_memory_clear(mem, true);
    tg(1);  // warm-up
    for (int r = 0; r < runs; r++) {
        llama_memory_clear(mem, true);
        double t0 = now_s();
        tg(n_gen);
        tg_tps.push_back(n_gen / (now_s() - t0));
    }
    printf("{\"pp512_tok_s\":%.1f,\"tg128_tok_s\":%.1f,\"threads\":%d,\"runs\":%d,\"flash_attention\":%s,\"kv_type\":\"%s\"}\n",
           median(pp_tps), median(tg_tps), threads, runs, flash ? "true" : "false", kv.c_str());
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
