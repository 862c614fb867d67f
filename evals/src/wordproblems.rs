//! GSM8K-style grade-school word problems, generated from seeds, with integer answers.
//!
//! A problem of level `n` needs `n` arithmetic steps (level 4: four or five). Twelve story
//! templates (shopping and change, sharing packs, travel rates, percent discounts, ages,
//! recipes, savings, workers and tasks, harvests packed in boxes, reading, a bake sale and
//! practice time) each come in two shapes per level, with names, items and units drawn from
//! lists. Every template picks its numbers so that every division is exact, every percentage
//! comes out whole and no intermediate quantity is negative; the answer is a non-negative
//! integer below 100000, numbers are written plainly (no thousands separators), and the
//! question ends with a question sentence without giving the answer.
//!
//! Each generated problem also carries the arithmetic that solves it as a small formula over
//! the numbers in the text (internal; the tests recompute the answer from it).

use crate::builtin::Rng;

/// The difficulty levels: 1 = one step ... 4 = four or more steps.
pub const LEVELS: u32 = 4;

/// A word problem of `level` (1..=LEVELS, clamped): (question text, integer answer).
pub fn wordproblem(r: &mut Rng, level: u32) -> (String, i64) {
    let p = generate(r, level);
    (p.text, p.answer)
}

/// [`wordproblem`] with the arithmetic that solves it as a Python expression over the numbers
/// of the text, when it has no percentage step (`None` then).
pub fn wordproblem_solved(r: &mut Rng, level: u32) -> (String, i64, Option<String>) {
    let p = generate(r, level);
    // Every division is exact, so floor division gives the same whole number.
    let python = (!p.formula.contains('%')).then(|| p.formula.replace('/', " // "));
    (p.text, p.answer, python)
}

/// A generated problem with the formula that solves it.
struct Problem {
    text: String,
    answer: i64,
    /// The solution over the numbers of the text: integers, `+ - * /`, parentheses and
    /// `a%b` for "a percent of b". One operator per step.
    formula: String,
}

type Template = fn(&mut Rng, u32) -> Problem;

const TEMPLATES: &[Template] =
    &[shopping, sharing, travel, discount, ages, recipe, savings, workers, harvest, reading, bake_sale, practice];

fn generate(r: &mut Rng, level: u32) -> Problem {
    let level = level.clamp(1, LEVELS);
    let template = TEMPLATES[idx(r, TEMPLATES.len())];
    template(r, level)
}

fn done(text: String, answer: i64, formula: String) -> Problem {
    Problem { text, answer, formula }
}

// ---------------------------------------------------------------------------------------
// Shared pieces.

const NAMES: &[(&str, bool)] = &[
    ("Mia", true),
    ("Liam", false),
    ("Olivia", true),
    ("Noah", false),
    ("Emma", true),
    ("James", false),
    ("Ava", true),
    ("Lucas", false),
    ("Sofia", true),
    ("Ethan", false),
    ("Zara", true),
    ("Omar", false),
    ("Priya", true),
    ("Diego", false),
    ("Hana", true),
    ("Kenji", false),
    ("Amara", true),
    ("Mateo", false),
    ("Leila", true),
    ("Samuel", false),
    ("Grace", true),
    ("Ravi", false),
    ("Chloe", true),
    ("Tariq", false),
];

/// A person in a story with the pronouns the text needs.
struct Who {
    name: &'static str,
    she: &'static str,
    she_c: &'static str,
    her: &'static str,
    her_c: &'static str,
    him: &'static str,
    herself: &'static str,
}

fn who(r: &mut Rng) -> Who {
    let (name, female) = NAMES[idx(r, NAMES.len())];
    if female {
        Who { name, she: "she", she_c: "She", her: "her", her_c: "Her", him: "her", herself: "herself" }
    } else {
        Who { name, she: "he", she_c: "He", her: "his", her_c: "His", him: "him", herself: "himself" }
    }
}

/// A uniform index into a list of `n` things.
fn idx(r: &mut Rng, n: usize) -> usize {
    r.below(n as u64) as usize
}

/// `k` distinct indices into a list of `n >= k` things.
fn distinct(r: &mut Rng, n: usize, k: usize) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    r.shuffle(&mut all);
    all.truncate(k);
    all
}

/// A coin flip.
fn coin(r: &mut Rng) -> bool {
    r.below(2) == 0
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// A multiple of `unit` in `lo..=hi` (the smallest multiple >= `lo` if there is none).
fn multiple_in(r: &mut Rng, unit: i64, lo: i64, hi: i64) -> i64 {
    let a = (lo + unit - 1) / unit;
    let b = (hi / unit).max(a);
    unit * r.range(a, b)
}

/// A divisor of `n` in `lo..=hi`, if there is one.
fn divisor_in(r: &mut Rng, n: i64, lo: i64, hi: i64) -> Option<i64> {
    let ds: Vec<i64> = (lo..=hi).filter(|d| n % d == 0).collect();
    if ds.is_empty() { None } else { Some(ds[idx(r, ds.len())]) }
}

/// An amount `g` with `0 < g` and `total - g` a positive multiple of `f`
/// (needs `total >= 2 * f`).
fn taken_away(r: &mut Rng, total: i64, f: i64) -> i64 {
    let mut g = total % f;
    if g == 0 {
        g = f;
    }
    let spare = ((total - g) / f - 1).max(0) / 2;
    g + f * r.range(0, spare)
}

/// A bill (or amount of cash) that covers `cost` with some change.
fn bill_for(r: &mut Rng, cost: i64) -> i64 {
    let bills = [5, 10, 20, 50, 100];
    let first = bills.iter().position(|&b| b > cost);
    match first {
        Some(i) => bills[(i + idx(r, 2)).min(bills.len() - 1)],
        None => (cost / 100 + 1 + r.range(0, 1)) * 100,
    }
}

/// `n` with the singular or plural noun: "1 hour", "3 hours".
fn count(n: i64, one: &str, many: &str) -> String {
    if n == 1 { format!("{n} {one}") } else { format!("{n} {many}") }
}

/// "a" or "an" for `word`.
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

// ---------------------------------------------------------------------------------------
// 1. Shopping: prices, totals and change.

/// (plural, singular, lowest price, highest price)
const GOODS: &[(&str, &str, i64, i64)] = &[
    ("notebooks", "notebook", 2, 6),
    ("pens", "pen", 1, 4),
    ("apples", "apple", 1, 3),
    ("comic books", "comic book", 3, 9),
    ("T-shirts", "T-shirt", 6, 15),
    ("toy cars", "toy car", 2, 8),
    ("candles", "candle", 2, 7),
    ("sandwiches", "sandwich", 4, 9),
    ("flower pots", "flower pot", 3, 12),
    ("puzzles", "puzzle", 5, 14),
    ("water bottles", "water bottle", 2, 10),
    ("packs of gum", "pack of gum", 1, 3),
];

const STORES: &[&str] = &["store", "market", "school fair", "corner shop", "mall"];

fn shopping(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let ids = distinct(r, GOODS.len(), 3);
    let (g1, _, lo1, hi1) = GOODS[ids[0]];
    let (g2, s2, lo2, hi2) = GOODS[ids[1]];
    let (g3, _, lo3, hi3) = GOODS[ids[2]];
    let (p1, p2, p3) = (r.range(lo1, hi1), r.range(lo2, hi2), r.range(lo3, hi3));
    let (a, b, c) = (r.range(2, 9), r.range(2, 8), r.range(2, 6));
    let (n, she, she_c) = (p.name, p.she, p.she_c);
    match level {
        1 => {
            if coin(r) {
                let text = format!("{n} buys {a} {g1} for ${p1} each. How much money does {she} spend in total?");
                done(text, a * p1, format!("{a}*{p1}"))
            } else {
                let store = r.pick(STORES);
                let text =
                    format!("At the {store}, {g1} cost ${p1} each. How many dollars does {n} need to buy {a} of them?");
                done(text, a * p1, format!("{a}*{p1}"))
            }
        }
        2 => {
            if coin(r) {
                let bill = bill_for(r, a * p1);
                let text = format!(
                    "{n} buys {a} {g1} at ${p1} each and pays with a ${bill} bill. How much change does {she} get back?"
                );
                done(text, bill - a * p1, format!("{bill}-{a}*{p1}"))
            } else {
                let art = article(s2);
                let text = format!(
                    "{n} buys {a} {g1} for ${p1} each and {art} {s2} for ${p2}. How much does {she} spend altogether?"
                );
                done(text, a * p1 + p2, format!("{a}*{p1}+{p2}"))
            }
        }
        3 => {
            if coin(r) {
                let text = format!(
                    "{n} buys {a} {g1} at ${p1} each and {b} {g2} at ${p2} each. How much money does {she} spend?"
                );
                done(text, a * p1 + b * p2, format!("{a}*{p1}+{b}*{p2}"))
            } else {
                let cash = bill_for(r, a * p1 + p2);
                let art = article(s2);
                let text = format!(
                    "{n} has ${cash}. {she_c} buys {a} {g1} for ${p1} each and {art} {s2} for ${p2}. How much money does {she} have left?"
                );
                done(text, cash - a * p1 - p2, format!("{cash}-{a}*{p1}-{p2}"))
            }
        }
        _ => {
            if coin(r) {
                let bill = bill_for(r, a * p1 + b * p2);
                let text = format!(
                    "{n} buys {a} {g1} at ${p1} each and {b} {g2} at ${p2} each. {she_c} pays with a ${bill} bill. How much change does {she} receive?"
                );
                done(text, bill - (a * p1 + b * p2), format!("{bill}-({a}*{p1}+{b}*{p2})"))
            } else {
                let store = r.pick(STORES);
                let text = format!(
                    "{n} goes to the {store}. {she_c} buys {a} {g1} for ${p1} each, {b} {g2} for ${p2} each and {c} {g3} for ${p3} each. How much money does {she} spend in all?"
                );
                done(text, a * p1 + b * p2 + c * p3, format!("{a}*{p1}+{b}*{p2}+{c}*{p3}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 2. Sharing: packs of things, given away and shared equally.

const THINGS: &[&str] = &[
    "pencils",
    "stickers",
    "marbles",
    "trading cards",
    "erasers",
    "balloons",
    "crayons",
    "beads",
    "cookies",
    "seashells",
];
const PACKS: &[&str] = &["packs", "boxes", "bags", "jars"];
const RELATIVES: &[&str] = &["brother", "sister", "cousin", "neighbor", "best friend"];

fn sharing(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let thing = r.pick(THINGS);
    let pack = r.pick(PACKS);
    let rel = r.pick(RELATIVES);
    let (k, m) = (r.range(2, 6), r.range(6, 24));
    let f = r.range(2, 6);
    let (n, she, she_c, her) = (p.name, p.she, p.she_c, p.her);
    match level {
        1 => {
            if coin(r) {
                let text = format!("{n} buys {k} {pack} of {m} {thing}. How many {thing} does {she} have in total?");
                done(text, k * m, format!("{k}*{m}"))
            } else {
                let total = f * r.range(3, 15);
                let text = format!(
                    "{n} has {total} {thing} and shares them equally among {f} friends. How many {thing} does each friend get?"
                );
                done(text, total / f, format!("{total}/{f}"))
            }
        }
        2 => {
            if coin(r) {
                let g = r.range(1, k * m - 1);
                let text = format!(
                    "{n} buys {k} {pack} of {m} {thing} and gives {g} of them to {her} {rel}. How many {thing} does {she} have left?"
                );
                done(text, k * m - g, format!("{k}*{m}-{g}"))
            } else {
                let f = divisor_in(r, k * m, 2, 12).unwrap_or(k);
                let text = format!(
                    "{n} buys {k} {pack} with {m} {thing} in each and shares all of them equally among {f} friends. How many {thing} does each friend get?"
                );
                done(text, k * m / f, format!("{k}*{m}/{f}"))
            }
        }
        3 => {
            let g = taken_away(r, k * m, f);
            let text = format!(
                "{n} buys {k} {pack} of {m} {thing}, gives {g} to {her} {rel} and shares the rest equally among {f} friends. How many {thing} does each friend get?"
            );
            done(text, (k * m - g) / f, format!("({k}*{m}-{g})/{f}"))
        }
        _ => {
            let h = r.range(3, 20);
            if coin(r) {
                let g = taken_away(r, h + k * m, f);
                let text = format!(
                    "{n} already has {h} {thing}. {she_c} buys {k} more {pack} of {m}, gives {g} to {her} {rel} and shares the rest equally among {f} friends. How many {thing} does each friend get?"
                );
                done(text, (h + k * m - g) / f, format!("({h}+{k}*{m}-{g})/{f}"))
            } else {
                let e = r.range(1, 5);
                let g = taken_away(r, h + k * m - e, f);
                let text = format!(
                    "{n} has {h} {thing} and buys {k} {pack} of {m} more. {she_c} gives {g} to {her} {rel}, keeps {e} for {herself} and shares the rest equally among {f} friends. How many {thing} does each friend get?",
                    herself = p.herself
                );
                done(text, (h + k * m - g - e) / f, format!("({h}+{k}*{m}-{g}-{e})/{f}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 3. Travel: speed, time and distance.

/// (vehicle, lowest speed, highest speed) in km per hour.
const VEHICLES: &[(&str, i64, i64)] =
    &[("car", 40, 90), ("train", 60, 120), ("bus", 30, 70), ("truck", 40, 80), ("motorbike", 40, 90), ("bike", 10, 25)];

fn speed(r: &mut Rng, lo: i64, hi: i64) -> i64 {
    multiple_in(r, 5, lo, hi)
}

fn travel(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let (v, lo, hi) = VEHICLES[idx(r, VEHICLES.len())];
    let (s1, s2, s3) = (speed(r, lo, hi), speed(r, lo, hi), speed(r, lo, hi));
    let (t1, t2, t3) = (r.range(2, 5), r.range(1, 4), r.range(1, 4));
    let h2 = count(t2, "hour", "hours");
    let (n, she, she_c, her) = (p.name, p.she, p.she_c, p.her);
    match level {
        1 => {
            if coin(r) {
                let art = article(v);
                let text = format!("{art} {v} travels at {s1} km per hour. How many km does it cover in {t1} hours?");
                let text = capitalize(&text);
                done(text, s1 * t1, format!("{s1}*{t1}"))
            } else {
                let d = s1 * t1;
                let text = format!(
                    "{n} travels {d} km by {v} in {t1} hours at a steady speed. What is {her} speed in km per hour?"
                );
                done(text, s1, format!("{d}/{t1}"))
            }
        }
        2 => {
            if coin(r) {
                let d = s1 * t1 + r.range(10, 200);
                let text = format!(
                    "{n} is going on a {d} km trip by {v}. {she_c} travels at {s1} km per hour for {t1} hours. How many km does {she} still have to go?"
                );
                done(text, d - s1 * t1, format!("{d}-{s1}*{t1}"))
            } else {
                let e = r.range(3, 60);
                let art = article(v);
                let text = format!(
                    "{art} {v} travels at {s1} km per hour for {t1} hours and then another {e} km to reach a town. How many km does it travel in total?"
                );
                done(capitalize(&text), s1 * t1 + e, format!("{s1}*{t1}+{e}"))
            }
        }
        3 => {
            if coin(r) {
                let text = format!(
                    "{n} travels by {v} at {s1} km per hour for {t1} hours, then at {s2} km per hour for {h2}. How many km does {she} travel in all?"
                );
                done(text, s1 * t1 + s2 * t2, format!("{s1}*{t1}+{s2}*{t2}"))
            } else {
                let d = s1 * t1 + s2 * t2;
                let text = format!(
                    "{n} has to travel {d} km by {v}. {she_c} goes at {s1} km per hour for the first {t1} hours and then at {s2} km per hour for the rest of the way. How many more hours does the rest of the trip take?"
                );
                done(text, t2, format!("({d}-{s1}*{t1})/{s2}"))
            }
        }
        _ => {
            if coin(r) {
                let d = s1 * t1 + s2 * t2 + s3 * t3;
                let text = format!(
                    "{n} has to travel {d} km by {v}. {she_c} goes at {s1} km per hour for {t1} hours, then at {s2} km per hour for {h2}, and covers the rest at {s3} km per hour. How many hours does the last part take?"
                );
                done(text, t3, format!("({d}-{s1}*{t1}-{s2}*{t2})/{s3}"))
            } else {
                let rel = r.pick(RELATIVES);
                let text = format!(
                    "{n} travels by {v} to visit {her} {rel}: {s1} km per hour for {t1} hours and then {s2} km per hour for {h2}. {she_c} comes back home by the same road. How many km does {she} travel there and back?"
                );
                done(text, (s1 * t1 + s2 * t2) * 2, format!("({s1}*{t1}+{s2}*{t2})*2"))
            }
        }
    }
}

fn capitalize(s: &str) -> String {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) => c.to_uppercase().chain(cs).collect(),
        None => String::new(),
    }
}

// ---------------------------------------------------------------------------------------
// 4. Percentages: discounts and parts of a whole.

/// (singular, plural, lowest price, highest price)
const SALE_ITEMS: &[(&str, &str, i64, i64)] = &[
    ("jacket", "jackets", 40, 200),
    ("bicycle", "bicycles", 100, 400),
    ("lamp", "lamps", 20, 80),
    ("pair of shoes", "pairs of shoes", 40, 160),
    ("backpack", "backpacks", 20, 80),
    ("video game", "video games", 20, 80),
    ("toaster", "toasters", 20, 60),
    ("board game", "board games", 20, 60),
    ("guitar", "guitars", 100, 300),
];
const PERCENTS: &[i64] = &[10, 20, 25, 30, 40, 50, 75, 5, 15];
const HABITS: &[&str] =
    &["walk to school", "play in the band", "take the bus", "bring lunch from home", "wear glasses", "have a pet"];

fn discount(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let (item, items, lo, hi) = SALE_ITEMS[idx(r, SALE_ITEMS.len())];
    let pc = PERCENTS[idx(r, PERCENTS.len())];
    let unit = 100 / gcd(pc, 100);
    let price = multiple_in(r, unit, lo, hi);
    let off = price * pc / 100;
    let habit = r.pick(HABITS);
    let students = multiple_in(r, unit, 100, 900);
    let (n, she, she_c) = (p.name, p.she, p.she_c);
    match level {
        1 => {
            if coin(r) {
                let art = article(item);
                let text = format!(
                    "{art} {item} costs ${price}. The store takes {pc}% off the price. How many dollars is the discount?"
                );
                done(capitalize(&text), off, format!("{pc}%{price}"))
            } else {
                let text =
                    format!("A school has {students} students, and {pc}% of them {habit}. How many students {habit}?");
                done(text, students * pc / 100, format!("{pc}%{students}"))
            }
        }
        2 => {
            if coin(r) {
                let art = article(item);
                let text = format!(
                    "{art} {item} normally costs ${price}. It is on sale for {pc}% off. What is the sale price in dollars?"
                );
                done(capitalize(&text), price - off, format!("{price}-{pc}%{price}"))
            } else {
                let text = format!(
                    "A school has {students} students, and {pc}% of them {habit}. How many students do not {habit}?"
                );
                done(text, students - students * pc / 100, format!("{students}-{pc}%{students}"))
            }
        }
        3 => {
            if coin(r) {
                let q = r.range(2, 5);
                let text = format!(
                    "{n} wants {q} {items} that cost ${price} each, and this week they are {pc}% off. How much does {she} pay for all {q} on sale?"
                );
                done(text, q * (price - off), format!("{q}*({price}-{pc}%{price})"))
            } else {
                let (goods, _, _, _) = GOODS[idx(r, GOODS.len())];
                let stock = multiple_in(r, unit, 40, 400);
                let sold = stock * pc / 100;
                let later = r.range(1, (stock - sold).max(2) - 1);
                let text = format!(
                    "A store has {stock} {goods}. It sells {pc}% of them in the morning and {later} more in the afternoon. How many {goods} are left?"
                );
                done(text, stock - sold - later, format!("{stock}-{pc}%{stock}-{later}"))
            }
        }
        _ => {
            if coin(r) {
                let q = r.range(2, 4);
                let cash = bill_for(r, q * (price - off));
                let text = format!(
                    "{n} buys {q} {items} that normally cost ${price} each, but today they are {pc}% off. {she_c} pays with ${cash}. How much change does {she} get?"
                );
                done(text, cash - q * (price - off), format!("{cash}-{q}*({price}-{pc}%{price})"))
            } else {
                let classes = r.range(3, 12);
                let size = multiple_in(r, unit, 15, 40);
                let all = classes * size;
                let text = format!(
                    "A school has {classes} classes with {size} students each. {pc}% of the students {habit}. How many students do not {habit}?"
                );
                done(text, all - all * pc / 100, format!("{classes}*{size}-{pc}%({classes}*{size})"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 5. Ages.

const SIBLINGS: &[&str] = &["brother", "sister", "cousin"];
const ELDERS: &[&str] = &["mother", "father", "aunt", "uncle"];

fn ages(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let sib = r.pick(SIBLINGS);
    let elder = r.pick(ELDERS);
    let a = r.range(6, 14);
    let d = r.range(1, 5);
    let dy = count(d, "year", "years");
    let y = r.range(2, 10);
    // The elder is `m` times as old as someone aged `base`: 22 to 80 years old.
    let times = |r: &mut Rng, base: i64| {
        let ms: Vec<i64> = (2..=6).filter(|m| (22..=80).contains(&(base * m))).collect();
        if ms.is_empty() { 3 } else { ms[idx(r, ms.len())] }
    };
    let (n, her, her_c, him) = (p.name, p.her, p.her_c, p.him);
    match level {
        1 => match r.below(3) {
            0 => {
                let text =
                    format!("{n} is {a} years old. {her_c} {sib} is {dy} older than {him}. How old is {her} {sib}?");
                done(text, a + d, format!("{a}+{d}"))
            }
            1 => {
                let m = times(r, a);
                let text =
                    format!("{n} is {a} years old, and {her} {elder} is {m} times as old. How old is {her} {elder}?");
                done(text, a * m, format!("{a}*{m}"))
            }
            _ => {
                let text = format!("In {y} years, {n} will be {} years old. How old is {n} now?", a + y);
                done(text, a, format!("{}-{y}", a + y))
            }
        },
        2 => {
            if coin(r) {
                let m = times(r, a);
                let text = format!(
                    "{n} is {a} years old. {her_c} {elder} is {m} times as old as {him}. How old will {her} {elder} be in {y} years?"
                );
                done(text, a * m + y, format!("{a}*{m}+{y}"))
            } else {
                let text =
                    format!("{n} is {a} years old, and {her} {sib} is {dy} older. What is the sum of their ages?");
                done(text, a + a + d, format!("{a}+({a}+{d})"))
            }
        }
        3 => {
            if coin(r) {
                let m = times(r, a + d);
                let text = format!(
                    "{n} is {a} years old. {her_c} {sib} is {dy} older than {him}, and {her} {elder} is {m} times as old as the {sib}. How old will the {elder} be in {y} years?"
                );
                done(text, (a + d) * m + y, format!("({a}+{d})*{m}+{y}"))
            } else {
                let m = times(r, a);
                let text = format!(
                    "{n} is {a} years old. {her_c} {sib} is {dy} younger, and {her} {elder} is {m} times as old as {n}. What is the sum of the ages of the {sib} and the {elder}?"
                );
                done(text, a - d + a * m, format!("{a}-{d}+{a}*{m}"))
            }
        }
        _ => {
            let m = times(r, a + d);
            if coin(r) {
                let text = format!(
                    "{n} is {a} years old. {her_c} {sib} is {dy} older than {him}, and {her} {elder} is {m} times as old as the {sib}. What will be the sum of {n}'s age and the {elder}'s age in {y} years?"
                );
                done(text, a + y + (a + d) * m + y, format!("{a}+{y}+({a}+{d})*{m}+{y}"))
            } else {
                let text = format!(
                    "{n} is {a} years old. {her_c} {sib} is {dy} older than {him}, and {her} {elder} is {m} times as old as the {sib}. What is the sum of the ages of {n}, {her} {sib} and {her} {elder}?"
                );
                done(text, a + (a + d) + (a + d) * m, format!("{a}+({a}+{d})+({a}+{d})*{m}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 6. Recipes, scaled.

/// (plural, singular)
const DISHES: &[(&str, &str)] = &[
    ("pancakes", "pancake"),
    ("muffins", "muffin"),
    ("cookies", "cookie"),
    ("bread rolls", "bread roll"),
    ("waffles", "waffle"),
    ("scones", "scone"),
];
/// (ingredient, unit)
const INGREDIENTS: &[(&str, &str)] = &[
    ("flour", "grams"),
    ("sugar", "grams"),
    ("butter", "grams"),
    ("oats", "grams"),
    ("milk", "milliliters"),
    ("cocoa powder", "grams"),
];
const GRAM_INGREDIENTS: &[&str] = &["flour", "sugar", "butter", "oats", "cocoa powder", "raisins"];

fn recipe(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let (dishes, dish) = DISHES[idx(r, DISHES.len())];
    let (ing, unit) = INGREDIENTS[idx(r, INGREDIENTS.len())];
    let s = r.range(4, 12);
    let u = multiple_in(r, 5, 10, 60);
    let g = s * u;
    let (n, she, she_c) = (p.name, p.she, p.she_c);
    match level {
        1 => {
            if coin(r) {
                let (c, k) = (r.range(2, 5), r.range(2, 6));
                let text = format!(
                    "One batch of {dishes} needs {c} cups of {ing}. How many cups of {ing} are needed for {k} batches?"
                );
                done(text, c * k, format!("{c}*{k}"))
            } else {
                let text = format!(
                    "A recipe for {s} {dishes} uses {g} {unit} of {ing}. How many {unit} of {ing} is that per {dish}?"
                );
                done(text, u, format!("{g}/{s}"))
            }
        }
        2 => {
            if coin(r) {
                let t = r.range(2, 30);
                let text = format!(
                    "A recipe for {s} {dishes} uses {g} {unit} of {ing}. How many {unit} of {ing} are needed for {t} {dishes}?"
                );
                done(text, g / s * t, format!("{g}/{s}*{t}"))
            } else {
                let (c, k) = (r.range(2, 5), r.range(2, 6));
                let h = r.range(1, c * k - 1);
                let hc = count(h, "cup", "cups");
                let text = format!(
                    "One batch of {dishes} needs {c} cups of {ing}. {n} bakes {k} batches but only has {hc} at home. How many more cups does {she} need?"
                );
                done(text, c * k - h, format!("{c}*{k}-{h}"))
            }
        }
        3 => {
            if coin(r) {
                let t = r.range(s + 1, 40);
                let h = r.range(1, u * t - 1);
                let text = format!(
                    "A recipe for {s} {dishes} uses {g} {unit} of {ing}. {n} wants to make {t} {dishes} and already has {h} {unit} of {ing}. How many more {unit} does {she} need?"
                );
                done(text, u * t - h, format!("{g}/{s}*{t}-{h}"))
            } else {
                let (e, k, m) = (r.range(2, 4), r.range(2, 4), r.range(2, 4));
                let b = e * (k + m) + r.range(0, 20);
                let text = format!(
                    "Each batch of {dishes} needs {e} eggs. {n} bakes {k} batches in the morning and {m} batches in the afternoon. {she_c} bought {b} eggs. How many eggs are left?"
                );
                done(text, b - e * (k + m), format!("{b}-{e}*({k}+{m})"))
            }
        }
        _ => {
            if coin(r) {
                let ids = distinct(r, GRAM_INGREDIENTS.len(), 2);
                let (i1, i2) = (GRAM_INGREDIENTS[ids[0]], GRAM_INGREDIENTS[ids[1]]);
                let v = multiple_in(r, 5, 5, 40);
                let g2 = s * v;
                let t = r.range(2, 40);
                let text = format!(
                    "A recipe for {s} {dishes} uses {g} grams of {i1} and {g2} grams of {i2}. {n} makes {t} {dishes}. How many grams of {i1} and {i2} does {she} use altogether?"
                );
                done(text, u * t + v * t, format!("{g}/{s}*{t}+{g2}/{s}*{t}"))
            } else {
                let (e, k, m) = (r.range(2, 4), r.range(2, 4), r.range(2, 4));
                let need = e * (k + m);
                let cartons = (need + 11) / 12 + r.range(0, 2);
                let cartons_c = count(cartons, "carton", "cartons");
                let text = format!(
                    "Each batch of {dishes} needs {e} eggs. {n} buys {cartons_c} of 12 eggs and bakes {k} batches in the morning and {m} in the afternoon. How many eggs are left over?"
                );
                done(text, cartons * 12 - need, format!("{cartons}*12-{e}*({k}+{m})"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 7. Savings per week.

const GOALS: &[&str] =
    &["bike", "game console", "guitar", "tablet", "skateboard", "telescope", "pair of headphones", "camera"];
const JOBS: &[&str] = &["babysitting", "walking dogs", "mowing lawns", "tutoring", "washing cars"];

fn savings(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let goal = r.pick(GOALS);
    let job = r.pick(JOBS);
    let w = r.range(5, 30);
    let weeks = r.range(3, 12);
    let h = r.range(10, 90);
    let (n, she, she_c, her, him) = (p.name, p.she, p.she_c, p.her, p.him);
    match level {
        1 => {
            if coin(r) {
                let text =
                    format!("{n} saves ${w} every week. How much money will {she} have saved after {weeks} weeks?");
                done(text, w * weeks, format!("{w}*{weeks}"))
            } else {
                let cost = w * weeks;
                let text = format!(
                    "{n} wants to buy a {goal} that costs ${cost}. {she_c} saves ${w} each week. How many weeks will it take {him} to save enough?"
                );
                done(text, weeks, format!("{cost}/{w}"))
            }
        }
        2 => {
            if coin(r) {
                let text = format!(
                    "{n} has ${h} in {her} piggy bank and adds ${w} every week. How much money will {she} have after {weeks} weeks?"
                );
                done(text, h + w * weeks, format!("{h}+{w}*{weeks}"))
            } else {
                let cost = h + w * weeks;
                let text = format!(
                    "{n} wants a {goal} that costs ${cost}. {she_c} already has ${h} and saves ${w} each week. How many weeks until {she} can buy it?"
                );
                done(text, weeks, format!("({cost}-{h})/{w}"))
            }
        }
        3 => {
            if coin(r) {
                let (e, k) = (r.range(5, 15), r.range(2, 6));
                let cost = h + e * k * weeks;
                let text = format!(
                    "{n} wants a {goal} that costs ${cost} and has saved ${h} so far. {she_c} earns ${e} an hour {job} and works {k} hours every week. How many weeks will it take {him} to afford it?"
                );
                done(text, weeks, format!("({cost}-{h})/({e}*{k})"))
            } else {
                let s = r.range(1, w - 1);
                let text = format!(
                    "{n} gets ${w} of allowance every week and spends ${s} of it on snacks. {she_c} has ${h} now. How much money will {she} have after {weeks} weeks?"
                );
                done(text, h + (w - s) * weeks, format!("{h}+({w}-{s})*{weeks}"))
            }
        }
        _ => {
            if coin(r) {
                let (e, k) = (r.range(5, 15), r.range(2, 6));
                let cost = h + (w + e * k) * weeks;
                let text = format!(
                    "{n} wants a {goal} that costs ${cost} and has ${h} saved. Each week {she} puts aside ${w} of {her} allowance and also earns ${e} an hour {job} for {k} hours. How many weeks until {she} has exactly enough?"
                );
                done(text, weeks, format!("({cost}-{h})/({w}+{e}*{k})"))
            } else {
                let s = r.range(1, w - 1);
                let cost = h + (w - s) * weeks + r.range(5, 100);
                let text = format!(
                    "{n} wants a {goal} that costs ${cost}. {she_c} has ${h}, gets ${w} of allowance every week and spends ${s} of it each week. How much more money will {she} still need after {weeks} weeks?"
                );
                done(text, cost - h - (w - s) * weeks, format!("{cost}-{h}-({w}-{s})*{weeks}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 8. Workers and tasks.

/// (workers, verb, things made)
const CREWS: &[(&str, &str, &str)] = &[
    ("painters", "paint", "rooms"),
    ("bakers", "bake", "cakes"),
    ("tailors", "sew", "shirts"),
    ("gardeners", "plant", "trees"),
    ("carpenters", "build", "chairs"),
    ("typists", "type", "pages"),
    ("cooks", "prepare", "meals"),
];

fn workers(r: &mut Rng, level: u32) -> Problem {
    let (crew, verb, things) = CREWS[idx(r, CREWS.len())];
    let w = r.range(2, 9);
    let per = r.range(3, 12);
    let d = r.range(2, 7);
    match level {
        1 => {
            if coin(r) {
                let text = format!(
                    "Each of {w} {crew} can {verb} {per} {things} a day. How many {things} can they {verb} together in one day?"
                );
                done(text, w * per, format!("{w}*{per}"))
            } else {
                let total = w * per;
                let text = format!(
                    "There are {total} {things} to {verb}, shared equally among {w} {crew}. How many {things} does each of them have to {verb}?"
                );
                done(text, per, format!("{total}/{w}"))
            }
        }
        2 => {
            if coin(r) {
                let text = format!(
                    "Each of {w} {crew} can {verb} {per} {things} a day. How many {things} can they {verb} in {d} days?"
                );
                done(text, per * w * d, format!("{per}*{w}*{d}"))
            } else {
                let total = per * w * d;
                let text = format!(
                    "A company must {verb} {total} {things}. It has {w} {crew}, and each of them can {verb} {per} {things} a day. How many days will the job take?"
                );
                done(text, d, format!("{total}/({per}*{w})"))
            }
        }
        3 => {
            let total = per * w * d + r.range(1, per * w * 3);
            let text = format!(
                "A company must {verb} {total} {things}. Its {w} {crew} each {verb} {per} {things} a day. How many {things} are still left after {d} days?"
            );
            done(text, total - per * w * d, format!("{total}-{per}*{w}*{d}"))
        }
        _ => {
            if coin(r) {
                let more = r.range(1, 6);
                let total = w * per * (d + more);
                let text = format!(
                    "A company must {verb} {total} {things}. Its {w} {crew} each {verb} {per} {things} a day. After {d} days, how many more days will they need to finish the job?"
                );
                done(text, more, format!("({total}-{w}*{per}*{d})/({w}*{per})"))
            } else {
                let w2 = r.range(2, 6);
                let per2 = r.range(2, per - 1);
                let text = format!(
                    "A company has {w} {crew} who each {verb} {per} {things} a day and {w2} trainees who each {verb} {per2} {things} a day. How many {things} do they {verb} in {d} days?"
                );
                done(text, (per * w + per2 * w2) * d, format!("({per}*{w}+{per2}*{w2})*{d}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 9. Harvests packed in boxes.

/// (plants, fruit)
const ORCHARDS: &[(&str, &str)] = &[
    ("apple trees", "apples"),
    ("orange trees", "oranges"),
    ("lemon trees", "lemons"),
    ("tomato plants", "tomatoes"),
    ("pear trees", "pears"),
    ("peach trees", "peaches"),
    ("mango trees", "mangoes"),
];

fn harvest(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let (plants, fruit) = ORCHARDS[idx(r, ORCHARDS.len())];
    let t = r.range(3, 12);
    let c = r.range(4, 12);
    let each = multiple_in(r, c / gcd(c, t), 10, 60);
    let total = each * t;
    let (n, she, she_c) = (p.name, p.she, p.she_c);
    match level {
        1 => {
            if coin(r) {
                let picked = c * r.range(3, 20);
                let text = format!(
                    "{n} picked {picked} {fruit} and packs them into boxes of {c}. How many boxes does {she} fill?"
                );
                done(text, picked / c, format!("{picked}/{c}"))
            } else {
                let text = format!(
                    "{n} has {t} {plants}, and each one gives {each} {fruit}. How many {fruit} does {she} pick in all?"
                );
                done(text, total, format!("{each}*{t}"))
            }
        }
        2 => {
            let text = format!(
                "{n} has {t} {plants}, and each one gives {each} {fruit}. {she_c} packs all of them into boxes of {c}. How many boxes does {she} fill?"
            );
            done(text, total / c, format!("{each}*{t}/{c}"))
        }
        3 => {
            let bad = taken_away(r, total, c);
            let text = format!(
                "{n} has {t} {plants}, and each one gives {each} {fruit}. {she_c} throws away {bad} bruised ones and packs the rest into boxes of {c}. How many boxes does {she} fill?"
            );
            done(text, (total - bad) / c, format!("({each}*{t}-{bad})/{c}"))
        }
        _ => {
            let bad = taken_away(r, total, c);
            let boxes = (total - bad) / c;
            let price = r.range(3, 15);
            if coin(r) {
                let text = format!(
                    "{n} has {t} {plants}, and each one gives {each} {fruit}. {she_c} throws away {bad} bruised ones, packs the rest into boxes of {c} and sells each box for ${price}. How much money does {she} make?"
                );
                done(text, boxes * price, format!("({each}*{t}-{bad})/{c}*{price}"))
            } else {
                let cost = r.range(1, boxes * price - 1);
                let text = format!(
                    "{n} has {t} {plants}, and each one gives {each} {fruit}. {she_c} throws away {bad} bruised ones, packs the rest into boxes of {c} and sells each box for ${price}. The empty boxes cost {him} ${cost} in total. How much money does {she} earn after paying for the boxes?",
                    him = p.him
                );
                done(text, boxes * price - cost, format!("({each}*{t}-{bad})/{c}*{price}-{cost}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 10. Reading pages.

const BOOKS: &[&str] =
    &["mystery novel", "science book", "adventure book", "biography", "fantasy novel", "history book", "cookbook"];

fn reading(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let book = r.pick(BOOKS);
    let art = capitalize(article(book));
    let (r1, r2) = (r.range(5, 40), r.range(5, 40));
    let (d1, d2) = (r.range(2, 7), r.range(2, 7));
    let (n, she, him) = (p.name, p.she, p.him);
    match level {
        1 => {
            if coin(r) {
                let text = format!("{n} reads {r1} pages every day. How many pages does {she} read in {d1} days?");
                done(text, r1 * d1, format!("{r1}*{d1}"))
            } else {
                let pages = r1 * d1;
                let text = format!(
                    "{art} {book} has {pages} pages. {n} reads {r1} pages a day. How many days does it take {him} to finish it?"
                );
                done(text, d1, format!("{pages}/{r1}"))
            }
        }
        2 => {
            if coin(r) {
                let pages = r1 * d1 + r.range(10, 200);
                let text = format!(
                    "{art} {book} has {pages} pages. {n} reads {r1} pages a day for {d1} days. How many pages are left?"
                );
                done(text, pages - r1 * d1, format!("{pages}-{r1}*{d1}"))
            } else {
                let read = r.range(10, 150);
                let pages = read + r1 * d1;
                let text = format!(
                    "{art} {book} has {pages} pages, and {n} has read {read} of them. If {she} reads {r1} pages a day, how many days will it take to finish?"
                );
                done(text, d1, format!("({pages}-{read})/{r1}"))
            }
        }
        3 => {
            if coin(r) {
                let a = r.range(10, 60);
                let pages = 3 * a + r.range(10, 200);
                let text = format!(
                    "{art} {book} has {pages} pages. On Monday {n} reads {a} pages, and on Tuesday {she} reads twice as many. How many pages are left to read?"
                );
                done(text, pages - 3 * a, format!("{pages}-{a}-2*{a}"))
            } else {
                let pages = r1 * d1 + r2 * d2;
                let text = format!(
                    "{art} {book} has {pages} pages. {n} reads {r1} pages a day for {d1} days and then speeds up to {r2} pages a day. How many more days does {she} need to finish the book?"
                );
                done(text, d2, format!("({pages}-{r1}*{d1})/{r2}"))
            }
        }
        _ => {
            if coin(r) {
                let pages = r1 * d1 + r2 * d2 + r.range(10, 150);
                let text = format!(
                    "{art} {book} has {pages} pages. {n} reads {r1} pages a day for {d1} days, then {r2} pages a day for {d2} days. How many pages does {she} still have to read?"
                );
                done(text, pages - r1 * d1 - r2 * d2, format!("{pages}-{r1}*{d1}-{r2}*{d2}"))
            } else {
                let a = r.range(10, 60);
                let pages = 3 * a + r1 * d1;
                let text = format!(
                    "{art} {book} has {pages} pages. On Monday {n} reads {a} pages and on Tuesday twice as many. After that {she} reads {r1} pages a day. How many more days does {she} need to finish?"
                );
                done(text, d1, format!("({pages}-{a}-2*{a})/{r1}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 11. A bake sale: revenue, costs and profit shares.

const TREATS: &[&str] =
    &["cupcakes", "cookies", "brownies", "cups of lemonade", "muffins", "slices of pie", "cinnamon rolls"];

fn bake_sale(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let ids = distinct(r, TREATS.len(), 2);
    let (t1, t2) = (TREATS[ids[0]], TREATS[ids[1]]);
    let (k1, k2) = (r.range(8, 60), r.range(8, 60));
    let (p1, p2) = (r.range(1, 5), r.range(1, 5));
    let revenue = k1 * p1 + k2 * p2;
    let (n, she, her) = (p.name, p.she, p.her);
    match level {
        1 => {
            if coin(r) {
                let text =
                    format!("At a bake sale, {n} sells {k1} {t1} for ${p1} each. How much money does {she} make?");
                done(text, k1 * p1, format!("{k1}*{p1}"))
            } else {
                let p1 = p1.max(2);
                let made = k1 * p1;
                let text = format!(
                    "{n} sells {k1} {t1} at a bake sale and makes ${made}. All of them sold for the same price. What was the price of each one in dollars?"
                );
                done(text, p1, format!("{made}/{k1}"))
            }
        }
        2 => {
            if coin(r) {
                let tips = r.range(2, 30);
                let text = format!(
                    "At a bake sale, {n} sells {k1} {t1} for ${p1} each and also receives ${tips} in donations. How much money does {she} collect in total?"
                );
                done(text, k1 * p1 + tips, format!("{k1}*{p1}+{tips}"))
            } else {
                let cost = r.range(1, k1 * p1 - 1);
                let text = format!(
                    "{n} sells {k1} {t1} for ${p1} each at a bake sale. The ingredients cost ${cost}. How much profit does {she} make?"
                );
                done(text, k1 * p1 - cost, format!("{k1}*{p1}-{cost}"))
            }
        }
        3 => {
            if coin(r) {
                let text = format!(
                    "At a bake sale, {n} sells {k1} {t1} for ${p1} each and {k2} {t2} for ${p2} each. How much money does {she} make?"
                );
                done(text, revenue, format!("{k1}*{p1}+{k2}*{p2}"))
            } else {
                let f = r.range(2, 5);
                let cost = taken_away(r, k1 * p1, f);
                let text = format!(
                    "{n} and {her} friends sell {k1} {t1} for ${p1} each at a bake sale. The ingredients cost ${cost}. They split the profit equally among the {f} of them. How much does each person get?"
                );
                done(text, (k1 * p1 - cost) / f, format!("({k1}*{p1}-{cost})/{f}"))
            }
        }
        _ => {
            if coin(r) {
                let cost = r.range(1, revenue - 1);
                let text = format!(
                    "At a bake sale, {n} sells {k1} {t1} for ${p1} each and {k2} {t2} for ${p2} each. The ingredients cost ${cost}. How much profit does {she} make?"
                );
                done(text, revenue - cost, format!("{k1}*{p1}+{k2}*{p2}-{cost}"))
            } else {
                let f = r.range(2, 5);
                let cost = taken_away(r, revenue, f);
                let text = format!(
                    "{n} and {her} friends sell {k1} {t1} for ${p1} each and {k2} {t2} for ${p2} each. The ingredients cost ${cost}, and they split the profit equally among the {f} of them. How much does each person get?"
                );
                done(text, (revenue - cost) / f, format!("({k1}*{p1}+{k2}*{p2}-{cost})/{f}"))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 12. Practice time in minutes and hours.

const PRACTICE: &[&str] = &[
    "practices the piano",
    "trains at the pool",
    "plays chess",
    "studies Spanish",
    "runs in the park",
    "practices the violin",
    "paints",
];
const MINUTES: &[i64] = &[15, 20, 30, 40, 45, 50, 90];

fn practice(r: &mut Rng, level: u32) -> Problem {
    let p = who(r);
    let act = r.pick(PRACTICE);
    let m = MINUTES[idx(r, MINUTES.len())];
    let (n, she) = (p.name, p.she);
    match level {
        1 => {
            if coin(r) {
                let d = r.range(2, 14);
                let text = format!(
                    "{n} {act} for {m} minutes every day. How many minutes does {she} spend on it in {d} days?"
                );
                done(text, m * d, format!("{m}*{d}"))
            } else {
                let h = r.range(2, 6);
                let text = format!("On Saturday, {n} {act} for {h} hours. How many minutes is that?");
                done(text, h * 60, format!("{h}*60"))
            }
        }
        2 => {
            let d = multiple_in(r, 60 / gcd(m, 60), 2, 30);
            let text =
                format!("{n} {act} for {m} minutes every day. How many hours does {she} spend on it in {d} days?");
            done(text, m * d / 60, format!("{m}*{d}/60"))
        }
        3 => {
            let d = multiple_in(r, 60 / gcd(m, 60), 2, 30);
            let h = r.range(1, 4);
            let hours = count(h, "more hour", "more hours");
            let text = format!(
                "{n} {act} for {m} minutes on each of {d} days and then for {hours} on the weekend. How many hours does {she} spend on it in total?"
            );
            done(text, m * d / 60 + h, format!("{m}*{d}/60+{h}"))
        }
        _ => {
            let (mut m1, mut d1, mut m2, mut d2) = (60, 5, 90, 2);
            for _ in 0..64 {
                let (a, b) = (multiple_in(r, 5, 15, 60), r.range(2, 5));
                let (c, e) = (multiple_in(r, 5, 30, 120), r.range(1, 2));
                if (a * b + c * e) % 60 == 0 {
                    (m1, d1, m2, d2) = (a, b, c, e);
                    break;
                }
            }
            let text = format!(
                "{n} {act} for {m1} minutes on each of {d1} weekdays and for {m2} minutes on each of {d2} weekend days. How many hours is that in total?"
            );
            done(text, (m1 * d1 + m2 * d2) / 60, format!("({m1}*{d1}+{m2}*{d2})/60"))
        }
    }
}

// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// Evaluates a solution formula exactly: `None` if a division is inexact, a percentage
    /// is not whole or an intermediate quantity is negative.
    fn eval(formula: &str) -> Option<i64> {
        let toks: Vec<char> = formula.chars().filter(|c| !c.is_whitespace()).collect();
        let mut pos = 0;
        let v = expr(&toks, &mut pos)?;
        (pos == toks.len()).then_some(v)
    }

    fn expr(t: &[char], pos: &mut usize) -> Option<i64> {
        let mut v = term(t, pos)?;
        while *pos < t.len() && (t[*pos] == '+' || t[*pos] == '-') {
            let op = t[*pos];
            *pos += 1;
            let w = term(t, pos)?;
            v = if op == '+' { v + w } else { v - w };
            if v < 0 {
                return None;
            }
        }
        Some(v)
    }

    fn term(t: &[char], pos: &mut usize) -> Option<i64> {
        let mut v = atom(t, pos)?;
        while *pos < t.len() && matches!(t[*pos], '*' | '/' | '%') {
            let op = t[*pos];
            *pos += 1;
            let w = atom(t, pos)?;
            v = match op {
                '*' => v * w,
                '/' => {
                    if w == 0 || v % w != 0 {
                        return None;
                    }
                    v / w
                }
                _ => {
                    if (v * w) % 100 != 0 {
                        return None;
                    }
                    v * w / 100
                }
            };
        }
        Some(v)
    }

    fn atom(t: &[char], pos: &mut usize) -> Option<i64> {
        if *pos < t.len() && t[*pos] == '(' {
            *pos += 1;
            let v = expr(t, pos)?;
            if *pos >= t.len() || t[*pos] != ')' {
                return None;
            }
            *pos += 1;
            return Some(v);
        }
        let start = *pos;
        while *pos < t.len() && t[*pos].is_ascii_digit() {
            *pos += 1;
        }
        t[start..*pos].iter().collect::<String>().parse().ok()
    }

    fn numbers(s: &str) -> Vec<i64> {
        s.split(|c: char| !c.is_ascii_digit()).filter(|w| !w.is_empty()).map(|w| w.parse().unwrap()).collect()
    }

    fn problems(level: u32) -> Vec<Problem> {
        (0..2000u64).map(|seed| generate(&mut Rng::new(seed), level)).collect()
    }

    #[test]
    fn answers_are_small_whole_and_recomputable() {
        for level in 1..=LEVELS {
            for (seed, p) in problems(level).iter().enumerate() {
                let ctx = format!("level {level} seed {seed}: {} [{}] = {}", p.text, p.formula, p.answer);
                assert!((0..100_000).contains(&p.answer), "{ctx}");
                assert!(!p.text.is_empty() && p.text.ends_with('?'), "{ctx}");
                assert!(!p.text.contains("  "), "{ctx}");
                // No number is written with a thousands separator.
                assert!(
                    !p.text
                        .as_bytes()
                        .windows(3)
                        .any(|w| w[0].is_ascii_digit() && w[1] == b',' && w[2].is_ascii_digit()),
                    "{ctx}"
                );
                // The formula recomputes the answer, exactly and without negative steps.
                assert_eq!(eval(&p.formula), Some(p.answer), "{ctx}");
                // Its numbers come from the text (or are common constants).
                let in_text: HashSet<i64> = numbers(&p.text).into_iter().collect();
                for x in numbers(&p.formula) {
                    assert!(in_text.contains(&x) || x == 2 || x == 60, "{x} missing: {ctx}");
                }
                // One operator per step.
                let ops = p.formula.chars().filter(|c| "+-*/%".contains(*c)).count() as u32;
                if level < 4 {
                    assert_eq!(ops, level, "{ctx}");
                } else {
                    assert!((4..=5).contains(&ops), "{ctx}");
                }
                // Exactly one question, at the end.
                assert_eq!(p.text.matches('?').count(), 1, "{ctx}");
            }
        }
    }

    #[test]
    fn public_api_matches_and_is_deterministic() {
        for level in 0..=LEVELS + 1 {
            for seed in 0..300u64 {
                let a = wordproblem(&mut Rng::new(seed), level);
                let b = wordproblem(&mut Rng::new(seed), level);
                assert_eq!(a, b);
                let p = generate(&mut Rng::new(seed), level);
                assert_eq!(a, (p.text, p.answer));
            }
        }
        // Levels are clamped.
        assert_eq!(wordproblem(&mut Rng::new(7), 0), wordproblem(&mut Rng::new(7), 1));
        assert_eq!(wordproblem(&mut Rng::new(7), 9), wordproblem(&mut Rng::new(7), 4));
    }

    #[test]
    fn prompts_are_varied() {
        for level in 1..=LEVELS {
            let ps = problems(level);
            let texts: HashSet<&str> = ps.iter().map(|p| p.text.as_str()).collect();
            let min = if level == 1 { 1200 } else { 1500 };
            assert!(texts.len() >= min, "level {level}: {} distinct", texts.len());
            // Many sentence shapes: the text with its numbers and names masked.
            let shapes: HashSet<String> = ps
                .iter()
                .map(|p| {
                    let mut s: String = p.text.chars().filter(|c| !c.is_ascii_digit()).collect();
                    for (name, _) in NAMES {
                        s = s.replace(name, "N");
                    }
                    s.split_whitespace().take(4).collect::<Vec<_>>().join(" ")
                })
                .collect();
            assert!(shapes.len() >= 40, "level {level}: {} openings", shapes.len());
        }
        let l3: HashSet<String> = problems(3).into_iter().map(|p| p.text).collect();
        assert!(l3.len() >= 1500);
    }

    #[test]
    fn harder_levels_are_longer() {
        let mean = |level| problems(level).iter().map(|p| p.text.len()).sum::<usize>() as f64 / 2000.0;
        let (l1, l2, l3, l4) = (mean(1), mean(2), mean(3), mean(4));
        assert!(l1 < l2 && l2 < l3 && l3 < l4, "{l1} {l2} {l3} {l4}");
        assert!(l4 > 1.5 * l1, "{l1} {l4}");
    }

    #[test]
    fn every_template_at_every_level() {
        for level in 1..=LEVELS {
            for (i, t) in TEMPLATES.iter().enumerate() {
                for seed in 0..200u64 {
                    let p = t(&mut Rng::new(seed), level);
                    assert_eq!(eval(&p.formula), Some(p.answer), "template {i} level {level}: {}", p.text);
                }
            }
        }
    }

    #[test]
    fn samples() {
        for level in 1..=LEVELS {
            for seed in 0..3u64 {
                let (q, a) = wordproblem(&mut Rng::new(seed), level);
                println!("level {level} seed {seed}: {q} => {a}");
            }
        }
    }
}
