//! Rule conditions: `FIGURE OP NUMBER`, optionally joined by `and`.
//!
//! Written by hand rather than with an expression crate: the grammar is three tokens, and
//! a general-purpose language (strings, functions, assignment) would need fencing in
//! while its errors could not name our figures.

use std::fmt;

use super::figures::{Figure, Reading, Scope};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
    Eq,
    Ne,
}

impl Op {
    const ALL: [(&'static str, Op); 6] = [
        (">", Op::Gt),
        (">=", Op::Ge),
        ("<", Op::Lt),
        ("<=", Op::Le),
        ("==", Op::Eq),
        ("!=", Op::Ne),
    ];

    fn holds(self, a: f64, b: f64) -> bool {
        match self {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
            Op::Ne => a != b,
        }
    }

    pub fn symbol(self) -> &'static str {
        Op::ALL
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("?", |(s, _)| s)
    }
}

/// One comparison of a figure with a number.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub figure: Figure,
    pub op: Op,
    pub threshold: f64,
}

/// A parsed condition: every comparison must hold. All figures share one scope.
#[derive(Clone, Debug, PartialEq)]
pub struct Condition {
    pub terms: Vec<Comparison>,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" and ")?;
            }
            write!(f, "{} {} {}", t.figure, t.op.symbol(), t.threshold)?;
        }
        Ok(())
    }
}

#[derive(Debug, PartialEq)]
enum Token<'a> {
    Word(&'a str),
    Op(&'a str),
    Number(&'a str),
}

fn tokens(text: &str) -> Result<Vec<Token<'_>>, String> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        let start = i;
        let take = |i: &mut usize, pred: fn(char) -> bool| {
            while *i < bytes.len() && pred(bytes[*i] as char) {
                *i += 1;
            }
        };
        if c.is_ascii_whitespace() {
            i += 1;
            continue;
        } else if c.is_ascii_alphabetic() || c == '_' {
            take(&mut i, |c| c.is_ascii_alphanumeric() || c == '_');
            out.push(Token::Word(&text[start..i]));
        } else if c.is_ascii_digit() || c == '.' || c == '-' || c == '+' {
            i += 1;
            take(&mut i, |c| c.is_ascii_digit() || c == '.' || c == '_');
            out.push(Token::Number(&text[start..i]));
        } else if "<>=!".contains(c) {
            take(&mut i, |c| "<>=!".contains(c));
            out.push(Token::Op(&text[start..i]));
        } else {
            let ch = text[start..].chars().next().unwrap_or(c);
            return Err(format!("unexpected character {ch:?}"));
        }
    }
    Ok(out)
}

fn describe(t: Option<&Token<'_>>) -> String {
    match t {
        None => "the end".into(),
        Some(Token::Word(w)) => format!("{w:?}"),
        Some(Token::Op(o)) => format!("{o:?}"),
        Some(Token::Number(n)) => format!("{n:?}"),
    }
}

const OPS: &str = ">, >=, <, <=, == or !=";

impl Condition {
    /// Parses `FIGURE OP NUMBER [and FIGURE OP NUMBER]...`; the error says what was wrong.
    pub fn parse(text: &str) -> Result<Condition, String> {
        let toks = tokens(text)?;
        let mut it = toks.iter().peekable();
        let mut terms: Vec<Comparison> = Vec::new();
        loop {
            let figure = match it.next() {
                Some(Token::Word(w)) => Figure::from_name(w).ok_or_else(|| {
                    format!("unknown figure {w:?} (figures: {})", Figure::names())
                })?,
                other => {
                    return Err(format!(
                        "expected a figure name, found {} (figures: {})",
                        describe(other),
                        Figure::names()
                    ))
                }
            };
            let op = match it.next() {
                Some(Token::Op(o)) => Op::ALL
                    .iter()
                    .find(|(s, _)| s == o)
                    .map(|(_, op)| *op)
                    .ok_or_else(|| format!("bad operator {o:?} (use {OPS})"))?,
                other => {
                    return Err(format!(
                        "expected an operator ({OPS}) after {figure}, found {}",
                        describe(other)
                    ))
                }
            };
            let threshold = match it.next() {
                Some(Token::Number(n)) => n
                    .replace('_', "")
                    .parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite())
                    .ok_or_else(|| format!("bad number {n:?}"))?,
                other => {
                    return Err(format!(
                        "expected a number after {figure} {}, found {}",
                        op.symbol(),
                        describe(other)
                    ))
                }
            };
            if let Some(first) = terms.first() {
                if first.figure.scope() != figure.scope() {
                    return Err(format!(
                        "{} is a {} figure but {} is a {} figure: one rule watches one kind \
                         of subject",
                        first.figure,
                        first.figure.scope(),
                        figure,
                        figure.scope()
                    ));
                }
            }
            terms.push(Comparison {
                figure,
                op,
                threshold,
            });
            match it.next() {
                None => return Ok(Condition { terms }),
                Some(Token::Word(w)) if w.eq_ignore_ascii_case("and") => continue,
                other => {
                    return Err(format!(
                        "expected `and` or the end after {}, found {}",
                        terms.last().map(|t| t.threshold).unwrap_or_default(),
                        describe(other)
                    ))
                }
            }
        }
    }

    pub fn scope(&self) -> Scope {
        self.terms
            .first()
            .map_or(Scope::Cluster, |t| t.figure.scope())
    }

    /// Whether every comparison holds, and the readings it looked at. A missing reading
    /// makes the condition false.
    pub fn eval<'a>(
        &self,
        read: impl Fn(Figure) -> Option<&'a Reading>,
    ) -> (bool, Vec<(Figure, Option<Reading>)>) {
        let mut holds = true;
        let mut seen = Vec::new();
        for t in &self.terms {
            let r = read(t.figure);
            holds &= r.is_some_and(|r| t.op.holds(r.value, t.threshold));
            seen.push((t.figure, r.cloned()));
        }
        (holds, seen)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_comparisons_with_or_without_spaces() {
        let c = Condition::parse("disk_used_pct>80").unwrap();
        assert_eq!(
            c.terms,
            vec![Comparison {
                figure: Figure::DiskUsedPct,
                op: Op::Gt,
                threshold: 80.0
            }]
        );
        let c = Condition::parse("node_up == 1 and follower_lag >= 10_000").unwrap();
        assert_eq!(c.terms.len(), 2);
        assert_eq!(c.terms[1].threshold, 10_000.0);
        assert_eq!(c.to_string(), "node_up == 1 and follower_lag >= 10000");
        assert_eq!(c.scope(), Scope::Node);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        let err = |s| Condition::parse(s).unwrap_err();
        assert!(err("disk_used > 80").starts_with("unknown figure \"disk_used\" (figures: "));
        assert_eq!(
            err("disk_used_pct => 80"),
            "bad operator \"=>\" (use >, >=, <, <=, == or !=)"
        );
        assert_eq!(
            err("disk_used_pct 80"),
            "expected an operator (>, >=, <, <=, == or !=) after disk_used_pct, found \"80\""
        );
        assert_eq!(
            err("disk_used_pct >"),
            "expected a number after disk_used_pct >, found the end"
        );
        assert_eq!(err("disk_used_pct > 8.0.1"), "bad number \"8.0.1\"");
        assert_eq!(
            err("node_up == 0 or quorum_ok == 0"),
            "expected `and` or the end after 0, found \"or\""
        );
        assert_eq!(
            err("node_up == 0 and quorum_ok == 0"),
            "node_up is a node figure but quorum_ok is a cluster figure: one rule watches \
             one kind of subject"
        );
        assert!(err("").starts_with("expected a figure name, found the end"));
        assert_eq!(err("node_up == 0;"), "unexpected character ';'");
    }

    #[test]
    fn a_missing_reading_is_false() {
        let c = Condition::parse("p99_latency_ms > 1000").unwrap();
        let high = Reading::new(1500.0, "1500 ms");
        assert!(c.eval(|_| Some(&high)).0);
        assert!(!c.eval(|_| None).0);
        let c = Condition::parse("backup_age_h > 24").unwrap();
        let never = Reading::new(f64::INFINITY, "no backup known");
        assert!(c.eval(|_| Some(&never)).0);
    }
}
