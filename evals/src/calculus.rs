//! Integrals with known antiderivatives, made by differentiating random expressions.
//!
//! A random antiderivative `F` is built as a small expression tree, differentiated
//! symbolically and lightly simplified (constants folded, `*1` and `+0` dropped, nested
//! products flattened, equal bases and like terms combined, a constant factor distributed
//! over a single sum when that keeps the coefficients whole), and both are printed in SymPy
//! syntax: `**` for powers, explicit `*`, the functions `sin cos exp log sqrt` and the
//! variable `x`. The integrand is `F'` exactly, as an expression; the integrand's
//! coefficients are integers, and the antiderivative uses a fraction only where it must
//! (as in `5*exp(3*x)/3`).
//!
//! Levels: 1 is one elementary term, 2 a sum of two or three, 3 a composition `h(g(x))`
//! (substitution) and 4 a product (integration by parts, or a product of compositions).

use std::fmt;
use std::ops::{Add, Mul, Neg, Sub};

use crate::builtin::Rng;

/// The difficulty levels: 1 = one elementary term ... 4 = products and compositions (integration by parts, substitution).
pub const LEVELS: u32 = 4;

/// The longest integrand a level aims for, in characters.
const MAX_LEN: usize = 120;

/// An (integrand, antiderivative) pair of `level` (1..=LEVELS, clamped), both in SymPy syntax, with
/// d/dx antiderivative == integrand exactly (as expressions).
pub fn pair(r: &mut Rng, level: u32) -> (String, String) {
    let (f, big_f) = trees(r, level);
    (f.to_string(), big_f.to_string())
}

/// The (integrand, antiderivative) trees behind [`pair`].
fn trees(r: &mut Rng, level: u32) -> (E, E) {
    let level = level.clamp(1, LEVELS);
    let mut attempts = 0;
    loop {
        attempts += 1;
        let big_f = match level {
            1 => elementary(r),
            2 => sum(r),
            3 => composite(r),
            _ => product(r),
        };
        let f = big_f.diff();
        let ok = f.to_string().len() <= MAX_LEN
            && f != int(0)
            && match level {
                2 => matches!(&f, E::Add(ts) if ts.len() >= 2),
                3 | 4 => !matches!(f, E::C(_)),
                _ => true,
            };
        if ok || attempts >= 100 {
            return (f, big_f);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Rationals.

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 { a.abs() } else { gcd(b, a % b) }
}

/// A rational number in lowest terms with a positive denominator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Q {
    n: i64,
    d: i64,
}

impl Q {
    fn new(n: i64, d: i64) -> Q {
        let g = gcd(n, d).max(1);
        let s = if d < 0 { -1 } else { 1 };
        Q { n: s * n / g, d: s * d / g }
    }

    const fn int(n: i64) -> Q {
        Q { n, d: 1 }
    }

    fn is_int(self) -> bool {
        self.d == 1
    }

    fn is_neg(self) -> bool {
        self.n < 0
    }

    fn is_zero(self) -> bool {
        self.n == 0
    }

    fn abs(self) -> Q {
        Q { n: self.n.abs(), d: self.d }
    }

    /// `self` to an integer power (`self` must not be zero for negative powers).
    fn powi(self, k: i64) -> Q {
        let mut out = Q::int(1);
        for _ in 0..k.abs() {
            out = out * self;
        }
        if k < 0 { Q::new(out.d, out.n) } else { out }
    }
}

const ONE: Q = Q::int(1);

impl Add for Q {
    type Output = Q;
    fn add(self, o: Q) -> Q {
        Q::new(self.n * o.d + o.n * self.d, self.d * o.d)
    }
}

impl Sub for Q {
    type Output = Q;
    fn sub(self, o: Q) -> Q {
        self + -o
    }
}

impl Mul for Q {
    type Output = Q;
    fn mul(self, o: Q) -> Q {
        Q::new(self.n * o.n, self.d * o.d)
    }
}

impl Neg for Q {
    type Output = Q;
    fn neg(self) -> Q {
        Q { n: -self.n, d: self.d }
    }
}

impl fmt::Display for Q {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.d == 1 { write!(f, "{}", self.n) } else { write!(f, "{}/{}", self.n, self.d) }
    }
}

// ---------------------------------------------------------------------------------------
// Expressions.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fun {
    Exp,
    Sin,
    Cos,
    Log,
}

impl Fun {
    fn name(self) -> &'static str {
        match self {
            Fun::Exp => "exp",
            Fun::Sin => "sin",
            Fun::Cos => "cos",
            Fun::Log => "log",
        }
    }
}

/// An expression in `x`. Built only through [`add`], [`mul`], [`pow`] and [`fun`], which keep
/// it in a light normal form: sums and products are flat, a product has at most one constant
/// (first), equal bases in a product and like terms in a sum are combined, and `sqrt` is
/// `Pow(_, 1/2)`.
#[derive(Clone, Debug, PartialEq, Eq)]
enum E {
    C(Q),
    X,
    Add(Vec<E>),
    Mul(Vec<E>),
    Pow(Box<E>, Q),
    F(Fun, Box<E>),
}

fn int(n: i64) -> E {
    E::C(Q::int(n))
}

fn rat(n: i64, d: i64) -> E {
    E::C(Q::new(n, d))
}

fn x() -> E {
    E::X
}

fn fun(f: Fun, arg: E) -> E {
    E::F(f, Box::new(arg))
}

/// `k*x + b`.
fn lin(k: i64, b: i64) -> E {
    add(vec![mul(vec![int(k), x()]), int(b)])
}

/// A polynomial from (coefficient, exponent) pairs.
fn poly(terms: &[(i64, i64)]) -> E {
    add(terms.iter().map(|&(c, n)| mul(vec![int(c), pow(x(), Q::int(n))])).collect())
}

/// The numeric coefficient of a term.
fn coef_of(e: &E) -> Q {
    match e {
        E::C(q) => *q,
        E::Mul(fs) => match fs.first() {
            Some(E::C(q)) => *q,
            _ => ONE,
        },
        _ => ONE,
    }
}

/// A term as (coefficient, the rest).
fn split(e: E) -> (Q, E) {
    if let E::Mul(fs) = &e
        && let Some(E::C(c)) = fs.first()
    {
        let c = *c;
        let mut rest: Vec<E> = fs[1..].to_vec();
        let rest = if rest.len() == 1 { rest.pop().unwrap_or(E::C(ONE)) } else { E::Mul(rest) };
        return (c, rest);
    }
    (ONE, e)
}

/// `c * rest` for a `rest` without a constant factor, without further simplification.
fn scale(c: Q, rest: E) -> E {
    if c == ONE {
        return rest;
    }
    match rest {
        E::Mul(fs) => {
            let mut v = vec![E::C(c)];
            v.extend(fs);
            E::Mul(v)
        }
        other => E::Mul(vec![E::C(c), other]),
    }
}

/// The sum of `ts`: flattened, like terms combined, constants folded (last).
fn add(ts: Vec<E>) -> E {
    fn gather(e: E, konst: &mut Q, terms: &mut Vec<(Q, E)>) {
        match e {
            E::C(q) => *konst = *konst + q,
            E::Add(ts) => {
                for t in ts {
                    gather(t, konst, terms);
                }
            }
            other => {
                let (c, rest) = split(other);
                match terms.iter_mut().find(|(_, r)| *r == rest) {
                    Some(slot) => slot.0 = slot.0 + c,
                    None => terms.push((c, rest)),
                }
            }
        }
    }
    let mut konst = Q::int(0);
    let mut terms = Vec::new();
    for t in ts {
        gather(t, &mut konst, &mut terms);
    }
    let mut out: Vec<E> = terms.into_iter().filter(|(c, _)| !c.is_zero()).map(|(c, rest)| scale(c, rest)).collect();
    if !konst.is_zero() {
        out.push(E::C(konst));
    }
    match out.len() {
        0 => int(0),
        1 => out.pop().unwrap_or(int(0)),
        _ => E::Add(out),
    }
}

/// The order of factors in a product: constant, powers of x, sums, other powers, functions.
fn rank(e: &E) -> u8 {
    match e {
        E::C(_) => 0,
        E::X => 1,
        E::Pow(b, _) if **b == E::X => 1,
        E::Add(_) => 2,
        E::Pow(..) => 3,
        E::F(Fun::Exp, _) => 4,
        E::F(Fun::Sin, _) => 5,
        E::F(Fun::Cos, _) => 6,
        E::F(Fun::Log, _) => 7,
        E::Mul(_) => 8,
    }
}

/// The product of `fs`: flattened, constants folded, equal bases combined, sorted.
fn mul(fs: Vec<E>) -> E {
    fn gather(e: E, coef: &mut Q, bases: &mut Vec<(E, Q)>) {
        let (base, q) = match e {
            E::C(v) => {
                *coef = *coef * v;
                return;
            }
            E::Mul(fs) => {
                for f in fs {
                    gather(f, coef, bases);
                }
                return;
            }
            E::Pow(b, q) => (*b, q),
            other => (other, ONE),
        };
        match bases.iter_mut().find(|(b, _)| *b == base) {
            Some(slot) => slot.1 = slot.1 + q,
            None => bases.push((base, q)),
        }
    }
    let mut coef = ONE;
    let mut bases = Vec::new();
    for f in fs {
        gather(f, &mut coef, &mut bases);
    }
    if coef.is_zero() {
        return int(0);
    }
    let mut factors = Vec::new();
    for (b, q) in bases {
        if q.is_zero() {
            continue;
        }
        match pow(b, q) {
            E::C(v) => coef = coef * v,
            E::Mul(inner) => {
                for g in inner {
                    match g {
                        E::C(v) => coef = coef * v,
                        other => factors.push(other),
                    }
                }
            }
            other => factors.push(other),
        }
    }
    // A fractional constant divides a sum whose coefficients it divides: `(2*x + 2)/2` is
    // `x + 1`.
    if !coef.is_int() {
        let d = Q::new(1, coef.d);
        let fits = |f: &E| matches!(f, E::Add(ts) if ts.iter().all(|t| (coef_of(t) * d).is_int()));
        if let Some(i) = factors.iter().position(fits) {
            factors[i] = distribute(d, &factors[i]);
            let mut all = vec![int(coef.n)];
            all.extend(factors);
            return mul(all);
        }
    }
    // A whole constant times a lone sum is multiplied out: `-(4*x + 28)` is `-4*x - 28`.
    if coef.is_int() && coef != ONE && factors.len() == 1 && matches!(factors[0], E::Add(_)) {
        return distribute(coef, &factors[0]);
    }
    // A whole constant multiplies into a single sum when no power of x stands beside it:
    // `2*(3*x + 1)*exp(x)` is `(6*x + 2)*exp(x)`, but `6*x**2*(x**3 + 5)` stays.
    let mag = coef.abs();
    if coef.is_int() && mag != ONE && !factors.iter().any(|f| rank(f) == 1) {
        let sums: Vec<usize> = (0..factors.len()).filter(|&i| matches!(factors[i], E::Add(_))).collect();
        if let [i] = sums[..] {
            factors[i] = distribute(mag, &factors[i]);
            let mut all = vec![int(if coef.is_neg() { -1 } else { 1 })];
            all.extend(factors);
            return mul(all);
        }
    }
    factors.sort_by_cached_key(|f| (rank(f), f.to_string()));
    if factors.is_empty() {
        return E::C(coef);
    }
    if coef == ONE && factors.len() == 1 {
        return factors.pop().unwrap_or(int(1));
    }
    let mut out = Vec::with_capacity(factors.len() + 1);
    if coef != ONE {
        out.push(E::C(coef));
    }
    out.extend(factors);
    E::Mul(out)
}

/// `c * sum`, multiplied out.
fn distribute(c: Q, sum: &E) -> E {
    match sum {
        E::Add(ts) => add(ts.iter().map(|t| mul(vec![E::C(c), t.clone()])).collect()),
        other => mul(vec![E::C(c), other.clone()]),
    }
}

/// `b ** q`.
fn pow(b: E, q: Q) -> E {
    if q.is_zero() {
        return int(1);
    }
    if q == ONE {
        return b;
    }
    match b {
        E::C(v) if q.is_int() && !(v.is_zero() && q.is_neg()) => E::C(v.powi(q.n)),
        E::Pow(inner, p) if q.is_int() => pow(*inner, p * q),
        E::Mul(fs) if q.is_int() => mul(fs.into_iter().map(|f| pow(f, q)).collect()),
        other => E::Pow(Box::new(other), q),
    }
}

impl E {
    /// d/dx.
    fn diff(&self) -> E {
        match self {
            E::C(_) => int(0),
            E::X => int(1),
            E::Add(ts) => add(ts.iter().map(E::diff).collect()),
            E::Mul(fs) => add((0..fs.len())
                .map(|i| {
                    let mut v = fs.clone();
                    v[i] = fs[i].diff();
                    mul(v)
                })
                .collect()),
            E::Pow(b, q) => mul(vec![E::C(*q), pow((**b).clone(), *q - ONE), b.diff()]),
            E::F(f, a) => {
                let da = a.diff();
                let a = (**a).clone();
                match f {
                    Fun::Exp => mul(vec![self.clone(), da]),
                    Fun::Sin => mul(vec![fun(Fun::Cos, a), da]),
                    Fun::Cos => mul(vec![int(-1), fun(Fun::Sin, a), da]),
                    Fun::Log => mul(vec![da, pow(a, Q::int(-1))]),
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Printing in SymPy syntax.

fn is_negative(e: &E) -> bool {
    coef_of(e).is_neg()
}

fn negate(e: &E) -> E {
    match e {
        E::C(q) => E::C(-*q),
        other => {
            let (c, rest) = split(other.clone());
            scale(-c, rest)
        }
    }
}

fn show(e: &E) -> String {
    match e {
        E::C(q) => q.to_string(),
        E::X => "x".into(),
        E::F(f, a) => format!("{}({})", f.name(), show(a)),
        E::Add(ts) => {
            let mut s = String::new();
            for (i, t) in ts.iter().enumerate() {
                if i == 0 {
                    s += &show(t);
                } else if is_negative(t) {
                    s += " - ";
                    s += &show(&negate(t));
                } else {
                    s += " + ";
                    s += &show(t);
                }
            }
            s
        }
        E::Mul(_) | E::Pow(..) => show_product(e),
    }
}

/// A factor of a product (never a constant): sums and products in parentheses.
fn show_factor(e: &E) -> String {
    match e {
        E::Add(_) | E::Mul(_) | E::C(_) => format!("({})", show(e)),
        E::Pow(b, q) => show_power(b, *q),
        _ => show(e),
    }
}

/// `b ** q` for `q > 0`.
fn show_power(b: &E, q: Q) -> String {
    if q == ONE {
        return show_factor(b);
    }
    if q == Q::new(1, 2) {
        return format!("sqrt({})", show(b));
    }
    let base = match b {
        E::X | E::F(..) => show(b),
        _ => format!("({})", show(b)),
    };
    if q.is_int() { format!("{base}**{q}") } else { format!("{base}**({q})") }
}

/// A product (or a lone power) as `[-]numerator[/denominator]`.
fn show_product(e: &E) -> String {
    let fs: Vec<&E> = match e {
        E::Mul(fs) => fs.iter().collect(),
        other => vec![other],
    };
    let mut coef = ONE;
    let mut num = Vec::new();
    let mut den = Vec::new();
    for f in fs {
        match f {
            E::C(q) => coef = coef * *q,
            E::Pow(b, q) if q.is_neg() => den.push(show_power(b, -*q)),
            other => num.push(show_factor(other)),
        }
    }
    let mut s = String::new();
    if coef.is_neg() {
        s.push('-');
    }
    let (cn, cd) = (coef.n.abs(), coef.d);
    if cn != 1 || num.is_empty() {
        num.insert(0, cn.to_string());
    }
    s += &num.join("*");
    if cd != 1 {
        den.insert(0, cd.to_string());
    }
    match den.len() {
        0 => {}
        1 => {
            s.push('/');
            s += &den[0];
        }
        _ => {
            s += "/(";
            s += &den.join("*");
            s.push(')');
        }
    }
    s
}

impl fmt::Display for E {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&show(self))
    }
}

// ---------------------------------------------------------------------------------------
// Random antiderivatives.

/// -1 one time in four, else 1.
fn sign(r: &mut Rng) -> i64 {
    if r.below(4) == 0 { -1 } else { 1 }
}

fn coin(r: &mut Rng) -> bool {
    r.below(2) == 0
}

/// The kinds of elementary terms.
const POWER: u64 = 0;
const SIN: u64 = 1;
const COS: u64 = 2;
const EXP: u64 = 3;
const LOG: u64 = 4;
const CONST: u64 = 5;

/// Level 1: one elementary term.
fn elementary(r: &mut Rng) -> E {
    let kind = r.below(6);
    term(r, kind)
}

/// An antiderivative whose derivative is one elementary term of `kind`. Most have whole
/// coefficients (`3*sin(2*x)`, integrand `6*cos(2*x)`); the rest are built from the integrand
/// (`c*x**n`, `c*sin(k*x)`, ...) and carry a fraction (`-5*cos(2*x)/2`).
fn term(r: &mut Rng, kind: u64) -> E {
    let k = r.range(1, 5);
    let whole = r.below(5) < 3;
    let a = r.range(1, 9) * sign(r);
    match kind {
        POWER => {
            if r.below(8) == 0 {
                mul(vec![int(a), pow(x(), Q::int(-r.range(1, 2)))])
            } else if whole {
                mul(vec![int(a), pow(x(), Q::int(r.range(1, 6)))])
            } else {
                let m = r.range(1, 5);
                mul(vec![rat(a, m + 1), pow(x(), Q::int(m + 1))])
            }
        }
        SIN | COS => {
            let arg = mul(vec![int(k), x()]);
            match (kind == SIN, whole) {
                (true, true) => mul(vec![int(a), fun(Fun::Sin, arg)]),
                (true, false) => mul(vec![rat(-a, k), fun(Fun::Cos, arg)]),
                (false, true) => mul(vec![int(a), fun(Fun::Cos, arg)]),
                (false, false) => mul(vec![rat(a, k), fun(Fun::Sin, arg)]),
            }
        }
        EXP => {
            let k = k.min(4) * sign(r);
            let arg = mul(vec![int(k), x()]);
            if whole { mul(vec![int(a), fun(Fun::Exp, arg)]) } else { mul(vec![rat(a, k), fun(Fun::Exp, arg)]) }
        }
        LOG => mul(vec![int(a), fun(Fun::Log, x())]),
        _ => mul(vec![int(a), x()]),
    }
}

/// Level 2: two or three elementary terms, at least one of them a power.
fn sum(r: &mut Rng) -> E {
    let mut kinds = [SIN, COS, EXP, LOG, CONST, POWER];
    r.shuffle(&mut kinds);
    let n = r.range(2, 3) as usize;
    let mut ts = vec![term(r, POWER)];
    for &kind in kinds.iter().take(n - 1) {
        ts.push(term(r, kind));
    }
    r.shuffle(&mut ts);
    // Polynomial terms first, highest degree first, as people write them.
    ts.sort_by_key(|t| match split(t.clone()).1 {
        E::Pow(b, q) if *b == E::X => -q.n * 10 / q.d,
        E::X => -10,
        _ => 0,
    });
    add(ts)
}

/// The outer functions of a composition.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outer {
    Sin,
    Cos,
    Exp,
    Log,
    /// A whole power 2..=5.
    Power(i64),
    /// 1/g or 1/g**2.
    Inverse(i64),
    Sqrt,
    /// g**(3/2).
    ThreeHalves,
}

impl Outer {
    fn random(r: &mut Rng) -> Outer {
        match r.below(10) {
            0 => Outer::Sin,
            1 => Outer::Cos,
            2 | 3 => Outer::Exp,
            4 => Outer::Log,
            5 | 6 => Outer::Power(r.range(2, 5)),
            7 => Outer::Inverse(r.range(1, 2)),
            8 => Outer::Sqrt,
            _ => Outer::ThreeHalves,
        }
    }

    /// Whether the inner expression must stay positive for x > 0.
    fn needs_positive(self) -> bool {
        matches!(self, Outer::Log | Outer::Inverse(_) | Outer::Sqrt | Outer::ThreeHalves)
    }

    fn apply(self, g: E) -> E {
        match self {
            Outer::Sin => fun(Fun::Sin, g),
            Outer::Cos => fun(Fun::Cos, g),
            Outer::Exp => fun(Fun::Exp, g),
            Outer::Log => fun(Fun::Log, g),
            Outer::Power(n) => pow(g, Q::int(n)),
            Outer::Inverse(n) => pow(g, Q::int(-n)),
            Outer::Sqrt => pow(g, Q::new(1, 2)),
            Outer::ThreeHalves => pow(g, Q::new(3, 2)),
        }
    }
}

/// A small inner expression: `k*x + b` or a short polynomial. With `positive`, every
/// coefficient is positive (so the expression is positive for x > 0); `mono` also allows a
/// single monomial like `x**2`.
fn inner(r: &mut Rng, positive: bool, mono: bool) -> E {
    let s = |r: &mut Rng| if positive { 1 } else { sign(r) };
    match r.below(if mono { 6 } else { 5 }) {
        0 | 1 => {
            let b = r.range(1, 9) * s(r);
            lin(r.range(1, 5), b)
        }
        2 => {
            let b = r.range(1, 9) * s(r);
            poly(&[(r.range(1, 4), 2), (b, 0)])
        }
        3 => {
            let (a, b, c) = (r.range(1, 3), r.range(1, 5), r.range(1, 9));
            let b = b * s(r);
            poly(&[(a, 2), (b, 1), (c, 0)])
        }
        4 => {
            if coin(r) {
                let b = r.range(1, 9) * s(r);
                poly(&[(1, 3), (b, 0)])
            } else {
                poly(&[(r.range(1, 2), 3), (r.range(1, 5), 1)])
            }
        }
        _ => {
            if coin(r) {
                poly(&[(r.range(1, 3), 2)])
            } else {
                poly(&[(1, 3)])
            }
        }
    }
}

/// The gcd of the coefficients of a sum (or the coefficient of a term); 1 for fractions.
fn content(e: &E) -> i64 {
    let cs: Vec<Q> = match e {
        E::Add(ts) => ts.iter().map(coef_of).collect(),
        other => vec![coef_of(other)],
    };
    if cs.iter().any(|c| !c.is_int()) {
        return 1;
    }
    cs.iter().fold(0, |g, c| gcd(g, c.n)).max(1)
}

/// `h(g)` for a random outer `h` and a suitable inner `g`, without a coefficient.
fn composition(r: &mut Rng, outer: Outer) -> E {
    let mono = matches!(outer, Outer::Sin | Outer::Cos | Outer::Exp);
    let g = inner(r, outer.needs_positive(), mono);
    outer.apply(g)
}

/// Level 3: `a * h(g(x))`, solved by substitution.
fn composite(r: &mut Rng) -> E {
    let outer = Outer::random(r);
    let mono = matches!(outer, Outer::Sin | Outer::Cos | Outer::Exp);
    let g = inner(r, outer.needs_positive(), mono);
    let c = content(&g.diff());
    let a = if c > 1 && r.below(3) == 0 {
        // Cancel the inner derivative's common factor: log(x**2 + 1)/2 for x/(x**2 + 1)
        // (twice that under a square root, whose derivative halves).
        let m = if matches!(outer, Outer::Sqrt | Outer::ThreeHalves) { 2 } else { 1 };
        Q::new(m * sign(r), c)
    } else {
        match outer {
            Outer::ThreeHalves => Q::int(2 * r.range(1, 2)),
            // sqrt(g)' = g'/(2*sqrt(g)): keep the integrand's coefficients whole.
            Outer::Sqrt if c % 2 == 0 => Q::int(r.range(1, 2)),
            Outer::Sqrt => Q::int(2 * r.range(1, 2)),
            _ => Q::int(r.range(1, 4) * sign(r)),
        }
    };
    mul(vec![E::C(a), outer.apply(g)])
}

/// A low-degree polynomial factor.
fn poly_factor(r: &mut Rng) -> E {
    let b = r.range(1, 5) * sign(r);
    match r.below(8) {
        0 | 1 => x(),
        2 => poly(&[(1, 2)]),
        3 => lin(1, b),
        4 => lin(r.range(2, 3), b),
        5 => poly(&[(1, 2), (b.abs(), 0)]),
        6 => poly(&[(1, 2), (b, 1)]),
        _ => poly(&[(1, 3)]),
    }
}

/// `exp(k*x)`, `sin(k*x)`, `cos(k*x)` or `log(x)`.
fn elementary_factor(r: &mut Rng) -> E {
    let k = r.range(1, 4);
    let kx = |k: i64| mul(vec![int(k), x()]);
    match r.below(7) {
        0 | 1 => {
            let k = k * sign(r);
            fun(Fun::Exp, kx(k))
        }
        2 | 3 => fun(Fun::Sin, kx(k)),
        4 | 5 => fun(Fun::Cos, kx(k)),
        _ => fun(Fun::Log, x()),
    }
}

/// Level 4: a product, differentiated by the product rule.
fn product(r: &mut Rng) -> E {
    match r.below(10) {
        0..=4 => {
            // Integration by parts: polynomial times exp, sin, cos or log.
            let p = poly_factor(r);
            let e = elementary_factor(r);
            let a = if matches!(p, E::Add(_)) { 1 } else { r.range(1, 4) * sign(r) };
            mul(vec![int(a), p, e])
        }
        5..=7 => {
            // A power of x times a composition: x*exp(x**2), x**2*sin(3*x + 1), ...
            let p = if r.below(3) < 2 { x() } else { poly(&[(1, 2)]) };
            let outer = match r.below(5) {
                0 => Outer::Sin,
                1 => Outer::Cos,
                2 => Outer::Exp,
                3 => Outer::Log,
                _ => Outer::Sqrt,
            };
            // 2*x*sqrt(g) keeps the integrand's coefficients whole.
            let a = if outer == Outer::Sqrt { 2 } else { sign(r) };
            mul(vec![int(a), p, composition(r, outer)])
        }
        _ => {
            // Two elementary functions.
            let (k1, k2) = (r.range(1, 4), r.range(1, 4));
            let kx = |k: i64| mul(vec![int(k), x()]);
            let a = r.range(1, 3) * sign(r);
            let (f, g) = match r.below(4) {
                0 => (fun(Fun::Exp, kx(k1)), fun(Fun::Sin, kx(k2))),
                1 => (fun(Fun::Exp, kx(k1)), fun(Fun::Cos, kx(k2))),
                2 => (fun(Fun::Sin, kx(k1)), fun(Fun::Cos, kx(k2))),
                _ => (fun(Fun::Exp, kx(k1)), fun(Fun::Log, x())),
            };
            mul(vec![int(a), f, g])
        }
    }
}

// ---------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// A parser and evaluator for the printed SymPy syntax (Python precedence).
    struct Parser<'a> {
        s: &'a [u8],
        i: usize,
        x: f64,
    }

    impl Parser<'_> {
        fn eval(text: &str, x: f64) -> Option<f64> {
            let mut p = Parser { s: text.as_bytes(), i: 0, x };
            let v = p.expr()?;
            p.ws();
            (p.i == p.s.len()).then_some(v)
        }

        fn ws(&mut self) {
            while self.i < self.s.len() && self.s[self.i] == b' ' {
                self.i += 1;
            }
        }

        fn eat(&mut self, tok: &str) -> bool {
            self.ws();
            if self.s[self.i..].starts_with(tok.as_bytes()) {
                // `*` must not eat the first half of `**`.
                if tok == "*" && self.s[self.i..].starts_with(b"**") {
                    return false;
                }
                self.i += tok.len();
                true
            } else {
                false
            }
        }

        fn expr(&mut self) -> Option<f64> {
            let mut v = self.term()?;
            loop {
                if self.eat("+") {
                    v += self.term()?;
                } else if self.eat("-") {
                    v -= self.term()?;
                } else {
                    return Some(v);
                }
            }
        }

        fn term(&mut self) -> Option<f64> {
            let mut v = self.unary()?;
            loop {
                if self.eat("*") {
                    v *= self.unary()?;
                } else if self.eat("/") {
                    v /= self.unary()?;
                } else {
                    return Some(v);
                }
            }
        }

        fn unary(&mut self) -> Option<f64> {
            if self.eat("-") {
                return Some(-self.unary()?);
            }
            self.power()
        }

        fn power(&mut self) -> Option<f64> {
            let base = self.atom()?;
            if self.eat("**") { Some(base.powf(self.unary()?)) } else { Some(base) }
        }

        fn atom(&mut self) -> Option<f64> {
            self.ws();
            if self.eat("(") {
                let v = self.expr()?;
                return self.eat(")").then_some(v);
            }
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                self.i += 1;
            }
            let word = std::str::from_utf8(&self.s[start..self.i]).ok()?;
            if word.is_empty() {
                return None;
            }
            if let Ok(n) = word.parse::<f64>() {
                return Some(n);
            }
            if word == "x" {
                return Some(self.x);
            }
            if !self.eat("(") {
                return None;
            }
            let a = self.expr()?;
            if !self.eat(")") {
                return None;
            }
            Some(match word {
                "sin" => a.sin(),
                "cos" => a.cos(),
                "exp" => a.exp(),
                "log" => a.ln(),
                "sqrt" => a.sqrt(),
                _ => return None,
            })
        }
    }

    /// The value of a tree at `x`.
    fn value(e: &E, x: f64) -> f64 {
        let q = |q: &Q| q.n as f64 / q.d as f64;
        match e {
            E::C(c) => q(c),
            E::X => x,
            E::Add(ts) => ts.iter().map(|t| value(t, x)).sum(),
            E::Mul(fs) => fs.iter().map(|f| value(f, x)).product(),
            E::Pow(b, p) => value(b, x).powf(q(p)),
            E::F(f, a) => {
                let a = value(a, x);
                match f {
                    Fun::Exp => a.exp(),
                    Fun::Sin => a.sin(),
                    Fun::Cos => a.cos(),
                    Fun::Log => a.ln(),
                }
            }
        }
    }

    /// Whether every constant in `e` (but not the exponents) is an integer.
    fn whole(e: &E) -> bool {
        match e {
            E::C(q) => q.is_int(),
            E::X => true,
            E::Add(ts) | E::Mul(ts) => ts.iter().all(whole),
            E::Pow(b, _) | E::F(_, b) => whole(b),
        }
    }

    fn balanced(s: &str) -> bool {
        let mut depth = 0i64;
        for c in s.chars() {
            match c {
                '(' => depth += 1,
                ')' => depth -= 1,
                _ => {}
            }
            if depth < 0 {
                return false;
            }
        }
        depth == 0
    }

    const POINTS: [f64; 7] = [0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0];

    #[test]
    fn pairs_are_well_formed_and_correct() {
        let h = 1e-5;
        for level in 1..=LEVELS {
            let mut checked = 0;
            for seed in 0..2000u64 {
                let (f, big_f) = pair(&mut Rng::new(seed), level);
                let ctx = format!("level {level} seed {seed}: f = {f}, F = {big_f}");
                assert!(!f.is_empty() && !big_f.is_empty(), "{ctx}");
                assert!(balanced(&f) && balanced(&big_f), "{ctx}");
                assert!(f.len() <= 160, "{ctx}");
                assert!(!f.contains('^') && !big_f.contains('^'), "{ctx}");
                assert!(!f.contains('.') && !big_f.contains('.'), "no floats: {ctx}");
                assert!(!f.contains("**-") && !big_f.contains("**-"), "{ctx}");
                assert!(!f.contains("+ -") && !f.contains("- -") && !f.contains("*1*"), "{ctx}");
                // The printed strings agree with the trees, and F' = f numerically.
                let (tf, tbig) = trees(&mut Rng::new(seed), level);
                assert!(whole(&tf), "the integrand has whole coefficients: {ctx}");
                for &x in &POINTS {
                    let fx = Parser::eval(&f, x).unwrap_or_else(|| panic!("parse: {ctx}"));
                    let lo = Parser::eval(&big_f, x - h).unwrap_or_else(|| panic!("parse: {ctx}"));
                    let hi = Parser::eval(&big_f, x + h).unwrap_or_else(|| panic!("parse: {ctx}"));
                    let big = Parser::eval(&big_f, x).unwrap_or(f64::NAN);
                    if ![fx, lo, hi, big].iter().all(|v| v.is_finite() && v.abs() < 1e8) {
                        continue;
                    }
                    let tol = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0);
                    assert!(tol(fx, value(&tf, x)) && tol(big, value(&tbig, x)), "print vs tree at {x}: {ctx}");
                    let fd = (hi - lo) / (2.0 * h);
                    let scale = fx.abs().max(big.abs()).max(1.0);
                    assert!((fd - fx).abs() <= 1e-4 * scale, "at x = {x}: {fd} vs {fx}: {ctx}");
                    checked += 1;
                }
            }
            assert!(checked >= 2000 * 4, "level {level}: only {checked} points checked");
        }
    }

    #[test]
    fn deterministic_and_clamped() {
        for level in 0..=LEVELS + 2 {
            for seed in 0..200u64 {
                assert_eq!(pair(&mut Rng::new(seed), level), pair(&mut Rng::new(seed), level));
            }
        }
        assert_eq!(pair(&mut Rng::new(3), 0), pair(&mut Rng::new(3), 1));
        assert_eq!(pair(&mut Rng::new(3), 7), pair(&mut Rng::new(3), 4));
    }

    #[test]
    fn integrands_are_varied() {
        for level in 1..=LEVELS {
            let fs: HashSet<String> = (0..2000u64).map(|s| pair(&mut Rng::new(s), level).0).collect();
            let min = if level == 1 { 300 } else { 1000 };
            assert!(fs.len() >= min, "level {level}: {} distinct", fs.len());
        }
    }

    #[test]
    fn levels_have_their_shapes() {
        for seed in 0..500u64 {
            let (f1, _) = pair(&mut Rng::new(seed), 1);
            assert!(!f1.contains(" + ") && !f1.contains(" - "), "level 1 is one term: {f1}");
            let (f2, _) = pair(&mut Rng::new(seed), 2);
            assert!(f2.contains(" + ") || f2.contains(" - "), "level 2 is a sum: {f2}");
            let (_, big3) = pair(&mut Rng::new(seed), 3);
            assert!(big3.contains('(') && big3.matches('x').count() >= 1, "{big3}");
            let (f4, big4) = pair(&mut Rng::new(seed), 4);
            assert!(big4.contains('*') && f4.len() <= MAX_LEN, "{f4} / {big4}");
        }
    }

    #[test]
    fn simplification() {
        let e = mul(vec![int(3), mul(vec![int(2), x()]), pow(x(), Q::int(2))]);
        assert_eq!(e.to_string(), "6*x**3");
        assert_eq!(add(vec![x(), int(0), mul(vec![int(1), x()])]).to_string(), "2*x");
        let big_f = mul(vec![int(3), fun(Fun::Sin, mul(vec![int(2), x()]))]);
        assert_eq!(big_f.diff().to_string(), "6*cos(2*x)");
        let g = poly(&[(1, 2), (1, 0)]);
        assert_eq!(fun(Fun::Log, g.clone()).diff().to_string(), "2*x/(x**2 + 1)");
        assert_eq!(pow(g.clone(), Q::new(1, 2)).diff().to_string(), "x/sqrt(x**2 + 1)");
        assert_eq!(fun(Fun::Cos, poly(&[(1, 2)])).diff().to_string(), "-2*x*sin(x**2)");
        let e3 = fun(Fun::Exp, poly(&[(3, 2), (2, 1)]));
        assert_eq!(e3.diff().to_string(), "(6*x + 2)*exp(3*x**2 + 2*x)");
        assert_eq!(pow(poly(&[(1, 3), (5, 0)]), Q::int(2)).diff().to_string(), "6*x**2*(x**3 + 5)");
        let half = mul(vec![rat(1, 2), fun(Fun::Exp, poly(&[(1, 2), (2, 1)]))]);
        assert_eq!(half.to_string(), "exp(x**2 + 2*x)/2");
        assert_eq!(half.diff().to_string(), "(x + 1)*exp(x**2 + 2*x)");
        let twice = mul(vec![int(2), fun(Fun::Sin, poly(&[(1, 2), (1, 1)]))]);
        assert_eq!(twice.diff().to_string(), "(4*x + 2)*cos(x**2 + x)");
        assert_eq!(mul(vec![int(-2), pow(lin(1, 7), Q::int(2))]).diff().to_string(), "-4*x - 28");
        let neg = mul(vec![int(-3), fun(Fun::Cos, lin(2, 1))]);
        assert_eq!(neg.diff().to_string(), "6*sin(2*x + 1)");
        assert_eq!(mul(vec![x(), fun(Fun::Exp, x())]).diff().to_string(), "exp(x) + x*exp(x)");
        assert_eq!(mul(vec![x(), fun(Fun::Sin, x())]).diff().to_string(), "sin(x) + x*cos(x)");
        assert_eq!(mul(vec![poly(&[(1, 2)]), fun(Fun::Log, x())]).diff().to_string(), "2*x*log(x) + x");
        assert_eq!(mul(vec![int(4), fun(Fun::Log, x())]).diff().to_string(), "4/x");
        assert_eq!(mul(vec![rat(5, 3), fun(Fun::Exp, mul(vec![int(3), x()]))]).to_string(), "5*exp(3*x)/3");
        assert_eq!(pow(g.clone(), Q::int(-1)).diff().to_string(), "-2*x/(x**2 + 1)**2");
        assert_eq!(pow(g, Q::new(3, 2)).to_string(), "(x**2 + 1)**(3/2)");
        assert_eq!(mul(vec![int(-5), pow(x(), Q::int(-2))]).to_string(), "-5/x**2");
        let cancel = add(vec![mul(vec![x(), fun(Fun::Sin, x())]), fun(Fun::Cos, x())]);
        assert_eq!(cancel.diff().to_string(), "x*cos(x)");
    }

    #[test]
    fn samples() {
        for level in 1..=LEVELS {
            for seed in 0..3u64 {
                let (f, big_f) = pair(&mut Rng::new(seed), level);
                println!("level {level} seed {seed}: integrand {f}  |  antiderivative {big_f}");
            }
        }
    }
}
