//! The OpenAI-compatible backend against a real server: llama-cpp-python's, installed by
//! scripts/bootstrap.sh into $AUTODIDACT_HOME/venv and started here on a free loopback port,
//! serving the same SmolLM2 file.

mod common;

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use autodidact_runtime::Error;
use autodidact_runtime::model::openai::{OpenAiConfig, OpenAiModel};
use autodidact_runtime::model::{
    LanguageModel, Message, ModelSpec, OpenOptions, Sampling, autodidact_home, open, smollm2_path,
};

/// The server process; killed when dropped, even if the test fails.
struct Server {
    child: Child,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn start_server() -> Server {
    let python = autodidact_home().join("venv/bin/python");
    assert!(python.exists(), "{} is missing: run scripts/bootstrap.sh", python.display());
    let port = free_port();
    let log = std::fs::File::create(std::env::temp_dir().join(format!("llama-server-{port}.log"))).unwrap();
    let child = Command::new(python)
        .args(["-m", "llama_cpp.server", "--model"])
        .arg(smollm2_path())
        .args(["--model_alias", "smollm2", "--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--n_ctx", "2048", "--n_threads", "2", "--logits_all", "true"])
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let mut server = Server { child, port };
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.child.try_wait().unwrap() {
            panic!("the server exited with {status}; see {}/llama-server-{port}.log", std::env::temp_dir().display());
        }
        assert!(start.elapsed() < Duration::from_secs(90), "the server did not start in 90 s");
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

#[tokio::test]
async fn openai_backend_real_server() {
    let server = start_server();
    let url = format!("http://127.0.0.1:{}", server.port);
    let spec = ModelSpec::parse(&format!("openai:{url}/v1#smollm2")).unwrap();
    assert_eq!(spec, ModelSpec::OpenAi { url: url.clone(), model: "smollm2".into() });
    let model = open(&spec, &OpenOptions::default()).await.unwrap();
    let msgs = [Message::user("Name three colours.")];

    let c = model.chat(&msgs, &Sampling::greedy(12)).await.unwrap();
    println!("server greedy: {:?} ({} log-probs)", c.text, c.token_logprobs.len());
    assert!(!c.text.is_empty());
    assert!(!c.token_logprobs.is_empty(), "the server offers log-probs and they were not read");
    assert!(c.token_logprobs.len() <= 12);
    assert!(c.token_logprobs.iter().all(|lp| lp.is_finite() && *lp <= 1e-4));

    // The in-process backend renders the same prompt from the GGUF's template: the first
    // tokens' log-probs agree. (The server's llama.cpp is another build, so greedy replies
    // can part ways at a near-tie later on.)
    let local = common::smollm2().await;
    let l = local.chat(&msgs, &Sampling::greedy(12)).await.unwrap();
    println!("in-process greedy: {:?}", l.text);
    println!("log-probs: server {:?}\n      in-process {:?}", &c.token_logprobs[..3], &l.token_logprobs[..3]);
    // Another build's quantized kernels move log-probs by a few hundredths; another prompt
    // (say, without SmolLM2's default system message) moves them far more.
    for (a, b) in c.token_logprobs.iter().zip(&l.token_logprobs).take(3) {
        assert!((a - b).abs() < 0.25, "server {a} vs in-process {b}: different prompts?");
    }
    let head = |t: &str| t.chars().take(4).collect::<String>();
    assert_eq!(head(&c.text), head(&l.text));
    drop(local);

    let group = model.chat_group(&msgs, 3, &Sampling::seeded(1.0, 5, 8)).await.unwrap();
    assert_eq!(group.len(), 3);
    assert!(group.iter().all(|c| !c.text.is_empty()));

    let stopped = model
        .chat(&[Message::user("Count from 1 to 10, separated by commas.")], &Sampling {
            stop: vec!["5".into()],
            ..Sampling::greedy(40)
        })
        .await
        .unwrap();
    assert!(!stopped.text.contains('5') && !stopped.text.contains('6'), "{:?}", stopped.text);

    // A path the server does not serve: a clear error naming the status, not retried.
    let fast = OpenAiConfig { initial_backoff: Duration::from_millis(10), ..OpenAiConfig::default() };
    let wrong = OpenAiModel::new(&format!("{url}/nothing"), "smollm2", fast.clone()).unwrap();
    let e = wrong.chat(&msgs, &Sampling::greedy(4)).await.unwrap_err();
    assert!(matches!(&e, Error::Http { reason, .. } if reason.contains("404")), "{e}");

    drop(server);
    // Nobody listening: retried with backoff, then a clear error.
    let gone = OpenAiModel::new(&url, "smollm2", OpenAiConfig { max_retries: 2, ..fast }).unwrap();
    let t = Instant::now();
    let e = gone.chat(&msgs, &Sampling::greedy(4)).await.unwrap_err().to_string();
    println!("closed port: {e}");
    assert!(e.contains("cannot connect") && e.contains("after 3 attempts"), "{e}");
    assert!(t.elapsed() >= Duration::from_millis(30), "no backoff between retries");
}
