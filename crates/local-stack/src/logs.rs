//! CloudWatch Logs metric filters read as CloudWatch reads them, so a test can feed a filter of
//! the template the lines a function writes: JSON patterns (`{ $.a.b = "x" && ... }`) with `=`
//! and `!=` on strings and numbers (`*` a wildcard in strings), `&&`, `||` and parentheses. A
//! comparison on a field the line lacks, or a line that is no JSON, does not match. Other
//! pattern syntaxes are refused rather than guessed at.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Compare { selector: Vec<String>, equal: bool, value: Literal },
}

#[derive(Debug, Clone, PartialEq)]
enum Literal {
    Text(String),
    Number(f64),
}

/// A parsed JSON filter pattern.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterPattern(Expr);

impl FilterPattern {
    pub fn parse(pattern: &str) -> Result<FilterPattern, String> {
        let inner = pattern
            .trim()
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .ok_or_else(|| format!("only JSON filter patterns (`{{ ... }}`) are read locally: {pattern}"))?;
        let mut parser = Parser { tokens: tokens(inner)?, at: 0 };
        let expr = parser.or()?;
        match parser.tokens.get(parser.at) {
            None => Ok(FilterPattern(expr)),
            Some(extra) => Err(format!("unexpected `{extra}` in {pattern}")),
        }
    }

    /// Whether CloudWatch counts `line`.
    pub fn matches(&self, line: &str) -> bool {
        serde_json::from_str::<Value>(line).is_ok_and(|json| eval(&self.0, &json))
    }
}

fn eval(expr: &Expr, json: &Value) -> bool {
    match expr {
        Expr::Or(a, b) => eval(a, json) || eval(b, json),
        Expr::And(a, b) => eval(a, json) && eval(b, json),
        Expr::Compare { selector, equal, value } => {
            let Some(field) = selector.iter().try_fold(json, |node, key| node.get(key)) else { return false };
            let same = match (value, field) {
                (Literal::Text(pattern), Value::String(text)) => wildcard(pattern, text),
                (Literal::Text(pattern), Value::Bool(b)) => pattern == &b.to_string(),
                (Literal::Number(n), Value::Number(m)) => m.as_f64() == Some(*n),
                _ => false,
            };
            same == *equal
        }
    }
}

/// `*` matches any run of characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == text,
        Some((head, tail)) => {
            text.strip_prefix(head).is_some_and(|rest| (0..=rest.len()).any(|i| rest.is_char_boundary(i) && wildcard(tail, &rest[i..])))
        }
    }
}

fn tokens(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '(' | ')' => {
                out.push(c.to_string());
                chars.next();
            }
            '"' => {
                chars.next();
                let mut literal = String::from('"');
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => literal.extend(chars.next()),
                        Some(c) => literal.push(c),
                        None => return Err(format!("unclosed string in {text}")),
                    }
                }
                out.push(literal);
            }
            '&' | '|' | '=' | '!' => {
                let mut op = String::new();
                while let Some(&c) = chars.peek().filter(|c| matches!(c, '&' | '|' | '=' | '!')) {
                    op.push(c);
                    chars.next();
                }
                out.push(op);
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek().filter(|c| !c.is_whitespace() && !matches!(c, '(' | ')' | '&' | '|' | '=' | '!' | '"')) {
                    word.push(c);
                    chars.next();
                }
                out.push(word);
            }
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<String>,
    at: usize,
}

impl Parser {
    fn next(&mut self) -> Result<String, String> {
        let token = self.tokens.get(self.at).cloned().ok_or("the pattern ends too soon")?;
        self.at += 1;
        Ok(token)
    }

    fn peek_is(&self, token: &str) -> bool {
        self.tokens.get(self.at).is_some_and(|t| t == token)
    }

    /// `||` binds looser than `&&`.
    fn or(&mut self) -> Result<Expr, String> {
        self.chain("||", Parser::and, Expr::Or)
    }

    fn and(&mut self) -> Result<Expr, String> {
        self.chain("&&", Parser::term, Expr::And)
    }

    /// `operand (op operand)*`, grouped from the left.
    fn chain(
        &mut self,
        op: &str,
        operand: fn(&mut Parser) -> Result<Expr, String>,
        join: fn(Box<Expr>, Box<Expr>) -> Expr,
    ) -> Result<Expr, String> {
        let mut left = operand(self)?;
        while self.peek_is(op) {
            self.at += 1;
            left = join(Box::new(left), Box::new(operand(self)?));
        }
        Ok(left)
    }

    fn term(&mut self) -> Result<Expr, String> {
        if self.peek_is("(") {
            self.at += 1;
            let inner = self.or()?;
            return match self.next()?.as_str() {
                ")" => Ok(inner),
                other => Err(format!("expected `)`, found `{other}`")),
            };
        }
        let selector = self.next()?;
        let path = selector.strip_prefix("$.").ok_or_else(|| format!("expected a `$.` selector, found `{selector}`"))?;
        let equal = match self.next()?.as_str() {
            "=" => true,
            "!=" => false,
            other => return Err(format!("only `=` and `!=` are read locally, found `{other}`")),
        };
        let value = self.next()?;
        let value = match value.strip_prefix('"') {
            Some(text) => Literal::Text(text.to_string()),
            None => value.parse().map(Literal::Number).unwrap_or(Literal::Text(value)),
        };
        Ok(Expr::Compare { selector: path.split('.').map(str::to_string).collect(), equal, value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_patterns_match_as_cloudwatch_matches_them() {
        let pattern = FilterPattern::parse(
            r#"{ ($.message = "task failed" && $.error != "Baton.DeployPending") || ($.type = "platform.report" && $.record.status != "success") }"#,
        )
        .unwrap();
        let cases = [
            (r#"{"message": "task failed", "error": "Baton.DeployFailed"}"#, true),
            (r#"{"message": "task failed", "error": "Baton.DeployPending"}"#, false),
            (r#"{"message": "task failed"}"#, false),
            (r#"{"type": "platform.report", "record": {"status": "timeout"}}"#, true),
            (r#"{"type": "platform.report", "record": {"status": "success"}}"#, false),
            (r#"{"type": "platform.start"}"#, false),
            ("task failed", false),
        ];
        for (line, expected) in cases {
            assert_eq!(pattern.matches(line), expected, "{line}");
        }
        let wild = FilterPattern::parse(r#"{ $.message = "delivery *" && $.code = 5 }"#).unwrap();
        assert!(wild.matches(r#"{"message": "delivery log unavailable", "code": 5}"#));
        assert!(!wild.matches(r#"{"message": "a delivery", "code": 5}"#));
        assert!(FilterPattern::parse("[ip, user]").is_err() && FilterPattern::parse(r#"{ $.a > 1 }"#).is_err());
    }
}
