//! Continuous batching: many independent generation requests decoded together.
//!
//! The [`Batcher`] holds every sequence being generated, whatever request it belongs to. Each
//! step is one `llama_decode` holding the next token(s) of every live sequence; a sequence
//! that finishes leaves at once and a waiting request is admitted in its place, so the batch
//! stays full while requests come and go (an agent whose cell is running in the sandbox simply
//! has no sequence for a while).
//!
//! **KV is shared by prefix.** Every sequence id remembers the tokens whose KV cells it holds.
//! A new prompt starts by copying the cells of its longest common prefix with any held
//! sequence, live or finished (the cache is unified, so a copy adds a sequence id to existing
//! cells: nothing is recomputed or duplicated), and evaluates only the rest. A finished
//! sequence is kept, least recently used first out, so the next turn of the same agent (its
//! last prompt and reply, then the REPL output) and the next request with the same system
//! prompt skip their shared prefix. The members of one request admitted together share the
//! whole prompt and its last logits, as a group always has.
//!
//! **Room is reserved, so a step never runs out of cells.** A request is admitted only when
//! the cells held plus every live sequence's remaining `max_new_tokens` leave room for its
//! prompt and its own budgets; finished sequences are dropped to make room. Should llama.cpp
//! still find no slot, the kept sequences go first, then the longest live request ends with
//! [`Error::ContextOverflow`] and the others go on.
//!
//! **One request ends alone.** A stop rule, the token budget, an overflow or a caller that
//! went away (its reply channel closed: a timeout or a cancelled run) ends that request's
//! sequences and frees their cells; the batch goes on.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use llama_cpp_2::model::LlamaModel;
use llama_cpp_2::token::LlamaToken;

use super::super::sampler::{self, Rng, Scratch};
use super::super::{Completion, FinishReason, Sampling, Timings, Usage, block_stop};
use super::{Engine, Reply, Shared, llama_err};
use crate::{Error, Result};

/// A sequence id's KV cells: the tokens at positions `0..tokens.len()`.
#[derive(Debug)]
struct Held {
    /// Unique for the batcher's life (sequence ids are reused).
    uid: u64,
    tokens: Vec<LlamaToken>,
    /// The first `borrowed` cells were copied from `source` and are counted there.
    borrowed: usize,
    source: Option<u64>,
    /// Decoding now; otherwise kept for its prefix.
    live: bool,
    last_used: u64,
}

impl Held {
    /// Cells this sequence alone accounts for (an upper bound on what freeing it returns).
    fn own(&self) -> usize {
        self.tokens.len() - self.borrowed
    }
}

/// A generation request.
struct Request {
    prompt: Vec<LlamaToken>,
    sampling: Sampling,
    seed: u64,
    continuations: Vec<Vec<u32>>,
    reply: Reply<Vec<Completion>>,
    /// Members started so far.
    admitted: usize,
    /// One place per member (`n` of them), filled as each finishes.
    done: Vec<Option<Completion>>,
    prompt_ms: f64,
    started: Option<Instant>,
}

/// One live sequence: a member of a request.
struct Live {
    request: u64,
    member: usize,
    seq: Seq,
}

/// What the KV cache holds, for tests and benches ([`super::LlamaCppModel::kv_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvState {
    /// Sequences decoding now.
    pub live: usize,
    /// Finished sequences kept for their prefixes.
    pub kept: usize,
    /// Tokens of the kept sequences.
    pub kept_tokens: Vec<usize>,
    /// For every sequence id that holds cells in llama.cpp: (id, first position, last position).
    pub cells: Vec<(i32, i32, i32)>,
    /// Prompt tokens whose evaluation was skipped since the model was loaded (shared prefixes).
    pub reused_tokens: u64,
    /// Prompt tokens evaluated since the model was loaded.
    pub evaluated_tokens: u64,
}

/// The scheduler; see the module documentation.
pub(super) struct Batcher {
    held: Vec<Option<Held>>,
    requests: BTreeMap<u64, Request>,
    waiting: VecDeque<u64>,
    live: Vec<Live>,
    next_request: u64,
    next_uid: u64,
    clock: u64,
    kv_cells: usize,
    max_live: usize,
    max_kept: usize,
    reused_tokens: u64,
    evaluated_tokens: u64,
}

impl Batcher {
    pub(super) fn new(shared: &Shared) -> Self {
        let max_live = shared.config.max_group.max(1) as usize;
        Batcher {
            held: (0..shared.n_seq_max()).map(|_| None).collect(),
            requests: BTreeMap::new(),
            waiting: VecDeque::new(),
            live: Vec::new(),
            next_request: 0,
            next_uid: 0,
            clock: 0,
            kv_cells: shared.kv_cells as usize,
            max_live,
            max_kept: if shared.config.reuse_prefixes { shared.n_seq_max() - max_live } else { 0 },
            reused_tokens: 0,
            evaluated_tokens: 0,
        }
    }

    /// No request live or waiting.
    pub(super) fn idle(&self) -> bool {
        self.requests.is_empty()
    }

    /// Adds a request. One that could never fit is answered with the error at once.
    pub(super) fn submit(
        &mut self,
        model: &LlamaModel,
        engine: &Engine<'_>,
        shared: &Shared,
        messages: &[super::Message],
        n: usize,
        sampling: Sampling,
        reply: Reply<Vec<Completion>>,
    ) {
        let prompt = match engine.prompt_tokens(model, shared, messages) {
            Ok(p) => p,
            Err(e) => return drop(reply.send(Err(e))),
        };
        let needed = prompt.len() + sampling.max_new_tokens;
        if needed > shared.n_ctx as usize || needed > self.kv_cells {
            let n_ctx = shared.n_ctx.min(self.kv_cells as u32);
            return drop(reply.send(Err(Error::ContextOverflow { needed, n_ctx })));
        }
        let vocab = model.vocab();
        let continuations = sampling
            .continuations
            .iter()
            .map(|c| vocab.tokenize(c.as_bytes(), false, false).iter().map(|t| t.0 as u32).collect())
            .collect();
        let id = self.next_request;
        self.next_request += 1;
        let seed = sampling.seed_or_clock();
        self.requests.insert(
            id,
            Request {
                prompt,
                sampling,
                seed,
                continuations,
                reply,
                admitted: 0,
                done: (0..n).map(|_| None).collect(),
                prompt_ms: 0.0,
                started: None,
            },
        );
        self.waiting.push_back(id);
    }

    /// Drops every held sequence (their cells too): before a job that uses the context alone.
    pub(super) fn clear(&mut self, engine: &mut Engine<'_>) {
        debug_assert!(self.idle());
        for h in &mut self.held {
            *h = None;
        }
        engine.forget();
    }

    /// What the cache holds now.
    pub(super) fn state(&self, engine: &Engine<'_>) -> KvState {
        let kept: Vec<&Held> = self.held.iter().flatten().filter(|h| !h.live).collect();
        let cells = (0..self.held.len() as i32)
            .filter_map(|id| {
                let max = engine.ctx.kv_cache_seq_pos_max(id);
                (max >= 0).then(|| (id, engine.ctx.kv_cache_seq_pos_min(id), max))
            })
            .collect();
        KvState {
            live: self.live.len(),
            kept: kept.len(),
            kept_tokens: kept.iter().map(|h| h.tokens.len()).collect(),
            cells,
            reused_tokens: self.reused_tokens,
            evaluated_tokens: self.evaluated_tokens,
        }
    }

    /// Ends requests whose callers went away, admits waiting ones while there is room, and
    /// decodes one step of every live sequence.
    pub(super) fn advance(&mut self, model: &LlamaModel, engine: &mut Engine<'_>, shared: &Shared) {
        self.drop_abandoned(engine);
        self.admit(model, engine, shared);
        if !self.live.is_empty() {
            self.step(model, engine, shared);
        }
    }

    fn drop_abandoned(&mut self, engine: &mut Engine<'_>) {
        let gone: Vec<u64> = self.requests.iter().filter(|(_, r)| r.reply.is_closed()).map(|(&id, _)| id).collect();
        for id in gone {
            self.end_request(engine, id, None);
        }
    }

    /// Every live sequence's remaining token budget.
    fn budgets(&self) -> usize {
        self.live.iter().map(|l| self.requests[&l.request].sampling.max_new_tokens.saturating_sub(l.seq.tokens.len())).sum()
    }

    /// Cells held plus every live sequence's remaining token budget.
    fn reserved(&self) -> usize {
        let held: usize = self.held.iter().flatten().map(Held::own).sum();
        held + self.budgets()
    }

    /// Cells reserved by live sequences alone (what is left if every kept one is dropped: a
    /// live sequence that borrowed from a kept one then owns those cells).
    fn reserved_live(&self) -> usize {
        let live_uids: Vec<u64> = self.held.iter().flatten().filter(|h| h.live).map(|h| h.uid).collect();
        let held: usize = self
            .held
            .iter()
            .flatten()
            .filter(|h| h.live)
            .map(|h| if h.source.is_some_and(|s| live_uids.contains(&s)) { h.own() } else { h.tokens.len() })
            .sum();
        held + self.budgets()
    }

    fn admit(&mut self, model: &LlamaModel, engine: &mut Engine<'_>, shared: &Shared) {
        while let Some(&rid) = self.waiting.front() {
            let r = &self.requests[&rid];
            let (len, budget) = (r.prompt.len(), r.sampling.max_new_tokens);
            let left = r.done.len() - r.admitted;
            // Members that fit even if every kept sequence had to go.
            let room = self.kv_cells.saturating_sub(self.reserved_live());
            let by_room = if room >= len + budget { 1 + (room - len - budget) / budget } else { 0 };
            let k = left.min(self.max_live - self.live.len()).min(by_room);
            if k == 0 {
                return;
            }
            if let Err(e) = self.start_members(model, engine, shared, rid, k) {
                self.end_request(engine, rid, Some(e));
                continue;
            }
            if self.requests.get(&rid).is_some_and(|r| r.admitted == r.done.len()) {
                self.waiting.pop_front();
            } else if self.requests.contains_key(&rid) {
                return; // its other members wait for room
            }
        }
    }

    /// A free sequence id, dropping the least recently used kept sequence if need be (but
    /// never `keep`).
    fn free_id(&mut self, engine: &mut Engine<'_>, keep: Option<usize>) -> Option<usize> {
        if let Some(id) = self.held.iter().position(Option::is_none) {
            return Some(id);
        }
        let victim = self.lru_kept(keep)?;
        self.drop_held(engine, victim);
        Some(victim)
    }

    fn lru_kept(&self, keep: Option<usize>) -> Option<usize> {
        self.held
            .iter()
            .enumerate()
            .filter(|(id, h)| Some(*id) != keep && h.as_ref().is_some_and(|h| !h.live))
            .min_by_key(|(_, h)| h.as_ref().map_or(0, |h| h.last_used))
            .map(|(id, _)| id)
    }

    /// Frees a sequence id and its cells; sequences that borrowed from it now own them.
    fn drop_held(&mut self, engine: &mut Engine<'_>, id: usize) {
        if let Some(h) = self.held[id].take() {
            let _ = engine.ctx.clear_kv_cache_seq(Some(id as u32), None, None);
            for other in self.held.iter_mut().flatten() {
                if other.source == Some(h.uid) {
                    other.borrowed = 0;
                    other.source = None;
                }
            }
        }
    }

    /// The held sequence sharing the longest prefix with `prompt`, and that length.
    fn best_prefix(&self, prompt: &[LlamaToken]) -> Option<(usize, usize)> {
        self.held
            .iter()
            .enumerate()
            .filter_map(|(id, h)| {
                let h = h.as_ref()?;
                let n = h.tokens.iter().zip(prompt).take_while(|(a, b)| a == b).count();
                (n > 0).then_some((id, n))
            })
            .max_by_key(|&(_, n)| n)
    }

    /// Starts `k` members of request `rid`: the first evaluates what no held sequence has of
    /// the prompt, the others copy its cells and share its last logits.
    fn start_members(&mut self, model: &LlamaModel, engine: &mut Engine<'_>, shared: &Shared, rid: u64, k: usize) -> Result<()> {
        let prompt = self.requests[&rid].prompt.clone();
        // At least the last prompt token is evaluated: its logits choose the first new token.
        let source = self.best_prefix(&prompt).map(|(id, n)| (id, n.min(prompt.len() - 1)));
        let first = self.free_id(engine, source.map(|(id, _)| id)).ok_or_else(|| Error::Llama("no free sequence id".into()))?;
        let (borrowed, source_uid) = match source {
            Some((src, n)) if n > 0 => {
                engine
                    .ctx
                    .copy_kv_cache_seq(src as i32, first as i32, Some(0), Some(n as u32))
                    .map_err(|e| Error::Llama(format!("sharing a prompt prefix: {e}")))?;
                (n, self.held[src].as_ref().map(|h| h.uid))
            }
            _ => (0, None),
        };
        self.clock += 1;
        let uid = self.next_uid;
        self.next_uid += 1;
        self.held[first] = Some(Held { uid, tokens: prompt[..borrowed].to_vec(), borrowed, source: source_uid, live: true, last_used: self.clock });
        // Make room for the new cells and budgets, dropping kept sequences.
        let budget = self.requests[&rid].sampling.max_new_tokens;
        while self.reserved() + (prompt.len() - borrowed) + k * budget > self.kv_cells {
            match self.lru_kept(None) {
                Some(v) => self.drop_held(engine, v),
                None => break, // admit() checked that the live ones leave room
            }
        }
        let t = Instant::now();
        let logits = match engine.eval_seq(&prompt[borrowed..], borrowed, first as i32) {
            Ok(l) => l,
            Err(e) => {
                self.drop_held(engine, first);
                return Err(e);
            }
        };
        let prompt_ms = t.elapsed().as_secs_f64() * 1e3;
        self.reused_tokens += borrowed as u64;
        self.evaluated_tokens += (prompt.len() - borrowed) as u64;
        if let Some(h) = self.held[first].as_mut() {
            h.tokens = prompt.clone();
        }
        let mut ids = vec![first];
        for _ in 1..k {
            let copied = self.free_id(engine, Some(first)).ok_or_else(|| Error::Llama("no free sequence id".into())).and_then(|id| {
                engine
                    .ctx
                    .copy_kv_cache_seq(first as i32, id as i32, None, None)
                    .map(|_| id)
                    .map_err(|e| Error::Llama(format!("sharing the prompt's KV cache: {e}")))
            });
            let id = match copied {
                Ok(id) => id,
                Err(e) => {
                    for id in ids {
                        self.drop_held(engine, id);
                    }
                    return Err(e);
                }
            };
            let uid = self.next_uid;
            self.next_uid += 1;
            self.held[id] = Some(Held { uid, tokens: prompt.clone(), borrowed: prompt.len(), source: Some(self.held[first].as_ref().map_or(0, |h| h.uid)), live: true, last_used: self.clock });
            ids.push(id);
        }
        let r = self.requests.get_mut(&rid).expect("admitted request");
        r.prompt_ms += prompt_ms;
        r.started.get_or_insert_with(Instant::now);
        let vocab = model.vocab();
        for id in ids {
            let member = r.admitted;
            r.admitted += 1;
            let mut seq = Seq::new(id as i32, Rng::new(r.seed, member as u64), prompt.len() as i32);
            step(&mut seq, &logits, &r.sampling, shared, &r.continuations, &vocab, &mut engine.scratch);
            self.live.push(Live { request: rid, member, seq });
        }
        self.finish_done(engine);
        Ok(())
    }

    /// One decode of every live sequence's pending tokens.
    fn step(&mut self, model: &LlamaModel, engine: &mut Engine<'_>, shared: &Shared) {
        loop {
            engine.batch.clear();
            let mut index: Vec<(usize, usize, usize)> = Vec::with_capacity(self.live.len());
            let mut at = 0usize;
            let mut failed = None;
            for (li, l) in self.live.iter().enumerate() {
                let q = &l.seq;
                for (j, &t) in q.pending.iter().enumerate() {
                    if let Err(e) = engine.batch.add(LlamaToken(t as i32), q.pos + j as i32, &[q.id], true) {
                        failed = Some(Error::Llama(format!("batch: {e}")));
                    }
                }
                index.push((li, at, q.pending.len()));
                at += q.pending.len();
            }
            let result = match failed {
                Some(e) => Err(e),
                None => engine.ctx.decode(&mut engine.batch).map_err(|e| match e {
                    llama_cpp_2::DecodeError::NoKvCacheSlot => Error::ContextOverflow { needed: at, n_ctx: self.kv_cells as u32 },
                    e => llama_err("decoding a batch")(e),
                }),
            };
            match result {
                Ok(()) => {
                    self.after_decode(model, engine, shared, &index);
                    return;
                }
                Err(Error::ContextOverflow { .. }) => {
                    // Free kept sequences first; then the live request holding the most.
                    if let Some(v) = self.lru_kept(None) {
                        self.drop_held(engine, v);
                        continue;
                    }
                    let biggest = self.live.iter().max_by_key(|l| l.seq.pos).map(|l| (l.request, l.seq.pos));
                    match biggest {
                        Some((rid, pos)) => {
                            let e = Error::ContextOverflow { needed: pos as usize + 1, n_ctx: self.kv_cells as u32 };
                            self.end_request(engine, rid, Some(e));
                            if self.live.is_empty() {
                                return;
                            }
                        }
                        None => return,
                    }
                }
                Err(e) => {
                    // A host failure: every live request learns of it; waiting ones go on.
                    let rids: Vec<u64> = self.live.iter().map(|l| l.request).collect();
                    for rid in rids {
                        self.end_request(engine, rid, Some(Error::Llama(e.to_string())));
                    }
                    return;
                }
            }
        }
    }

    fn after_decode(&mut self, model: &LlamaModel, engine: &mut Engine<'_>, shared: &Shared, index: &[(usize, usize, usize)]) {
        let vocab = model.vocab();
        self.clock += 1;
        for &(li, at, count) in index {
            let l = &mut self.live[li];
            let r = &self.requests[&l.request];
            let q = &mut l.seq;
            if let Some(h) = self.held[q.id as usize].as_mut() {
                h.tokens.extend(q.pending.iter().map(|&t| LlamaToken(t as i32)));
                h.last_used = self.clock;
            }
            q.pos += count as i32;
            // Fill the log-probs of forced continuation tokens, now that their logits exist.
            for j in 1..count {
                let logits = engine.ctx.get_logits_ith((at + j - 1) as i32);
                let tok = q.pending[j] as usize;
                q.logprobs[q.pending_at + j] = logits[tok] - sampler::log_z(logits);
            }
            if q.fill_then_stop {
                q.done = Some(FinishReason::Length);
                continue;
            }
            let logits = engine.ctx.get_logits_ith((at + count - 1) as i32);
            step(q, logits, &r.sampling, shared, &r.continuations, &vocab, &mut engine.scratch);
        }
        self.finish_done(engine);
    }

    /// Moves finished sequences out of the batch (kept for their prefix) and answers requests
    /// whose members are all done.
    fn finish_done(&mut self, engine: &mut Engine<'_>) {
        let mut i = 0;
        while i < self.live.len() {
            if self.live[i].seq.done.is_none() {
                i += 1;
                continue;
            }
            let l = self.live.swap_remove(i);
            if let Some(h) = self.held[l.seq.id as usize].as_mut() {
                h.live = false;
            }
            let r = self.requests.get_mut(&l.request).expect("live request");
            let len = r.prompt.len();
            r.done[l.member] = Some(l.seq.into_completion(len));
            if r.admitted == r.done.len() && r.done.iter().all(Option::is_some) {
                let rid = l.request;
                self.end_request(engine, rid, None);
            }
        }
        // Keep at most `max_kept` finished sequences.
        while self.held.iter().flatten().filter(|h| !h.live).count() > self.max_kept {
            match self.lru_kept(None) {
                Some(v) => self.drop_held(engine, v),
                None => break,
            }
        }
    }

    /// Ends a request: answers it (with `error`, or its completions when all are done, or
    /// nothing when its caller is gone) and frees its live sequences' cells.
    fn end_request(&mut self, engine: &mut Engine<'_>, rid: u64, error: Option<Error>) {
        let Some(r) = self.requests.remove(&rid) else { return };
        self.waiting.retain(|&w| w != rid);
        let mut i = 0;
        while i < self.live.len() {
            if self.live[i].request == rid {
                let l = self.live.swap_remove(i);
                self.drop_held(engine, l.seq.id as usize);
            } else {
                i += 1;
            }
        }
        let generation_ms = r.started.map_or(0.0, |t| t.elapsed().as_secs_f64() * 1e3);
        let result = match error {
            Some(e) => Err(e),
            None if r.done.iter().all(Option::is_some) => Ok(r
                .done
                .into_iter()
                .flatten()
                .map(|mut c| {
                    c.timings = Timings { prompt_ms: r.prompt_ms, generation_ms };
                    c
                })
                .collect()),
            None => return, // abandoned: nobody to answer
        };
        let _ = r.reply.send(result);
    }
}

/// One sequence being decoded.
struct Seq {
    id: i32,
    rng: Rng,
    tokens: Vec<u32>,
    logprobs: Vec<f32>,
    text: Vec<u8>,
    /// Where `text` ends if a stop string was found.
    cut: Option<usize>,
    /// The next KV position.
    pos: i32,
    /// Tokens to feed in the next batch; logprobs of all but the first are still to fill.
    pending: Vec<u32>,
    /// Index in `logprobs` of `pending[0]`.
    pending_at: usize,
    next_continuation: usize,
    /// Set when a forced continuation reached `max_new_tokens`: decode once more to fill its
    /// log-probs, then finish.
    fill_then_stop: bool,
    done: Option<FinishReason>,
}

impl Seq {
    fn new(id: i32, rng: Rng, pos: i32) -> Self {
        Seq {
            id,
            rng,
            tokens: Vec::new(),
            logprobs: Vec::new(),
            text: Vec::new(),
            cut: None,
            pos,
            pending: Vec::new(),
            pending_at: 0,
            next_continuation: 0,
            fill_then_stop: false,
            done: None,
        }
    }

    fn into_completion(self, prompt_tokens: usize) -> Completion {
        let end = self.cut.unwrap_or(self.text.len());
        Completion {
            text: String::from_utf8_lossy(&self.text[..end]).into_owned(),
            usage: Usage { prompt_tokens, completion_tokens: self.tokens.len() },
            tokens: self.tokens,
            token_logprobs: self.logprobs,
            finish_reason: self.done.unwrap_or(FinishReason::Length),
            timings: Timings::default(),
        }
    }
}

/// Chooses the next token(s) of `q` from `logits`, applying stop rules and budget forcing.
fn step(
    q: &mut Seq,
    logits: &[f32],
    s: &Sampling,
    shared: &Shared,
    continuations: &[Vec<u32>],
    vocab: &llama_cpp_2::vocab::LlamaVocab<'_>,
    scratch: &mut Scratch,
) {
    q.pending.clear();
    let forcing = q.tokens.len() < s.min_new_tokens;
    let ban_eog = forcing && continuations.is_empty();
    let banned: &[u32] = if ban_eog { &shared.eog } else { &[] };
    let c = sampler::choose(logits, s, &mut q.rng, banned, scratch);
    let is_eog = shared.eog.contains(&c.token);
    if is_eog && forcing {
        // Budget forcing: instead of stopping, append the next continuation ("Wait").
        let cont = &continuations[q.next_continuation % continuations.len()];
        q.next_continuation += 1;
        let room = s.max_new_tokens - q.tokens.len();
        let cont = &cont[..cont.len().min(room)];
        q.pending_at = q.tokens.len();
        for (j, &t) in cont.iter().enumerate() {
            q.tokens.push(t);
            // The first one's log-prob comes from these logits; the rest after decoding.
            q.logprobs.push(if j == 0 { logits[t as usize] - sampler::log_z(logits) } else { f32::NAN });
            q.text.extend(vocab.token_to_piece(LlamaToken(t as i32), false, None));
        }
        q.pending.extend_from_slice(cont);
        if q.tokens.len() >= s.max_new_tokens {
            if cont.len() > 1 {
                q.fill_then_stop = true;
            } else {
                q.done = Some(FinishReason::Length);
            }
        }
        return;
    } else {
        q.tokens.push(c.token);
        q.logprobs.push(c.logprob);
        q.pending_at = q.tokens.len() - 1;
        if is_eog {
            q.done = Some(FinishReason::Stop);
            return;
        }
        let before = q.text.len();
        q.text.extend(vocab.token_to_piece(LlamaToken(c.token as i32), false, None));
        q.pending.push(c.token);
        if q.tokens.len() >= s.min_new_tokens
            && let Some(at) = find_stop(&q.text, before, &s.stop).or_else(|| {
                // A fence line is complete only once a newline follows it.
                q.text[before..].contains(&b'\n').then(|| block_stop(&q.text, before, &s.stop_after_block)).flatten()
            })
        {
            q.cut = Some(at);
            q.done = Some(FinishReason::Stop);
            return;
        }
    }
    if q.tokens.len() >= s.max_new_tokens {
        q.done = Some(FinishReason::Length);
    }
}

/// The start of the first stop string that ends after byte `before` of `text`.
fn find_stop(text: &[u8], before: usize, stops: &[String]) -> Option<usize> {
    stops
        .iter()
        .filter_map(|stop| {
            let stop = stop.as_bytes();
            let from = before.saturating_sub(stop.len() - 1);
            text[from..].windows(stop.len()).position(|w| w == stop).map(|p| from + p)
        })
        .min()
}
