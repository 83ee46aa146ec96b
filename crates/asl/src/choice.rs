//! Choice rules: parsed once, evaluated against the state's effective input.
use crate::env::{Env, EvalError};
use crate::jsonpath::{JsonPath, Selection};
use crate::payload::Problem;
use chrono::{DateTime, FixedOffset};
use serde_json::Value;
use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Kind {
    String,
    Numeric,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Eq,
    Lt,
    Gt,
    Le,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum TypeTest {
    Null,
    Present,
    Numeric,
    String,
    Boolean,
    Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Operand {
    Literal(Value),
    Path(JsonPath),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Test {
    Compare(Kind, Cmp, Operand),
    Matches(String),
    Is(TypeTest, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Rule {
    And(Vec<Rule>),
    Or(Vec<Rule>),
    Not(Box<Rule>),
    Test { variable: JsonPath, test: Test },
}

const COMPARISONS: [(&str, Kind, Cmp); 16] = [
    ("StringEquals", Kind::String, Cmp::Eq),
    ("StringLessThan", Kind::String, Cmp::Lt),
    ("StringGreaterThan", Kind::String, Cmp::Gt),
    ("StringLessThanEquals", Kind::String, Cmp::Le),
    ("StringGreaterThanEquals", Kind::String, Cmp::Ge),
    ("NumericEquals", Kind::Numeric, Cmp::Eq),
    ("NumericLessThan", Kind::Numeric, Cmp::Lt),
    ("NumericGreaterThan", Kind::Numeric, Cmp::Gt),
    ("NumericLessThanEquals", Kind::Numeric, Cmp::Le),
    ("NumericGreaterThanEquals", Kind::Numeric, Cmp::Ge),
    ("BooleanEquals", Kind::Boolean, Cmp::Eq),
    ("TimestampEquals", Kind::Timestamp, Cmp::Eq),
    ("TimestampLessThan", Kind::Timestamp, Cmp::Lt),
    ("TimestampGreaterThan", Kind::Timestamp, Cmp::Gt),
    ("TimestampLessThanEquals", Kind::Timestamp, Cmp::Le),
    ("TimestampGreaterThanEquals", Kind::Timestamp, Cmp::Ge),
];

const TYPE_TESTS: [(&str, TypeTest); 6] = [
    ("IsNull", TypeTest::Null),
    ("IsPresent", TypeTest::Present),
    ("IsNumeric", TypeTest::Numeric),
    ("IsString", TypeTest::String),
    ("IsBoolean", TypeTest::Boolean),
    ("IsTimestamp", TypeTest::Timestamp),
];

const STRUCTURAL: [&str; 5] = ["Variable", "Next", "And", "Or", "Not"];

impl Rule {
    /// Parses one rule. `top` rules carry `Next`; nested ones must not.
    pub fn parse(v: &Value, pointer: &str, top: bool, problems: &mut Vec<Problem>) -> Option<Rule> {
        let Some(obj) = v.as_object() else {
            problems.push((pointer.to_owned(), "a choice rule must be a JSON object".into()));
            return None;
        };
        match (top, obj.get("Next")) {
            (true, None) => problems.push((format!("{pointer}/Next"), "a top-level choice rule needs 'Next'".into())),
            (false, Some(_)) => problems.push((format!("{pointer}/Next"), "only top-level choice rules may have 'Next'".into())),
            (true, Some(n)) if !n.is_string() => problems.push((format!("{pointer}/Next"), "expected a state name".into())),
            _ => {}
        }
        for (key, parse_list) in [("And", true), ("Or", false)] {
            if let Some(list) = obj.get(key) {
                let here = format!("{pointer}/{key}");
                let Some(items) = list.as_array().filter(|a| !a.is_empty()) else {
                    problems.push((here, "expected a non-empty array of choice rules".into()));
                    return None;
                };
                let rules: Vec<Rule> =
                    items.iter().enumerate().filter_map(|(i, r)| Rule::parse(r, &format!("{here}/{i}"), false, problems)).collect();
                return Some(if parse_list { Rule::And(rules) } else { Rule::Or(rules) });
            }
        }
        if let Some(inner) = obj.get("Not") {
            return Rule::parse(inner, &format!("{pointer}/Not"), false, problems).map(|r| Rule::Not(Box::new(r)));
        }
        let Some(variable) = obj.get("Variable") else {
            problems.push((pointer.to_owned(), "a choice rule needs 'Variable' and a comparison, or 'And', 'Or' or 'Not'".into()));
            return None;
        };
        let variable = match variable.as_str().map(JsonPath::parse) {
            Some(Ok(p)) => p,
            Some(Err(e)) => {
                problems.push((format!("{pointer}/Variable"), e));
                return None;
            }
            None => {
                problems.push((format!("{pointer}/Variable"), "expected a JSONPath string".into()));
                return None;
            }
        };
        let ops: Vec<&String> = obj.keys().filter(|k| !STRUCTURAL.contains(&k.as_str())).collect();
        if ops.len() != 1 {
            problems.push((pointer.to_owned(), format!("expected exactly one comparison operator, found {}", ops.len())));
            return None;
        }
        let (op, operand) = (ops[0].as_str(), &obj[ops[0].as_str()]);
        let here = format!("{pointer}/{}", crate::payload::escape_pointer(op));
        match parse_test(op, operand) {
            Ok(test) => Some(Rule::Test { variable, test }),
            Err(e) => {
                problems.push((here, e));
                None
            }
        }
    }

    pub fn eval(&self, env: &Env) -> Result<bool, EvalError> {
        match self {
            Rule::And(rules) => {
                for r in rules {
                    if !r.eval(env)? {
                        return Ok(false);
                    }
                }
                Ok(true)
            }
            Rule::Or(rules) => {
                for r in rules {
                    if r.eval(env)? {
                        return Ok(true);
                    }
                }
                Ok(false)
            }
            Rule::Not(r) => Ok(!r.eval(env)?),
            Rule::Test { variable, test } => {
                let root = env.root_for(variable);
                let value = match variable.select(&root) {
                    Selection::One(v) => Some(std::borrow::Cow::Borrowed(v)),
                    Selection::Many(vs) => Some(std::borrow::Cow::Owned(Value::Array(vs.into_iter().cloned().collect()))),
                    Selection::Missing => None,
                    Selection::TooCostly => return Err(invalid_path(variable)),
                };
                match (test, value) {
                    (Test::Is(TypeTest::Present, want), v) => Ok(v.is_some() == *want),
                    (_, None) => Err(invalid_path(variable)),
                    (Test::Is(t, want), Some(v)) => Ok(type_test(*t, &v) == *want),
                    (Test::Matches(pattern), Some(v)) => Ok(v.as_str().is_some_and(|s| glob_match(pattern, s))),
                    (Test::Compare(kind, cmp, operand), Some(v)) => {
                        let other = match operand {
                            Operand::Literal(l) => std::borrow::Cow::Borrowed(l),
                            Operand::Path(p) => std::borrow::Cow::Owned(env.resolve(p).ok_or_else(|| invalid_path(p))?),
                        };
                        Ok(compare(*kind, &v, &other).is_some_and(|o| cmp_holds(*cmp, o)))
                    }
                }
            }
        }
    }
}

fn invalid_path(path: &JsonPath) -> EvalError {
    EvalError::runtime(format!("Invalid path '{path}': The choice state's condition path references an invalid value."))
}

fn parse_test(op: &str, operand: &Value) -> Result<Test, String> {
    if let Some((_, t)) = TYPE_TESTS.iter().find(|(name, _)| *name == op) {
        return operand.as_bool().map(|b| Test::Is(*t, b)).ok_or_else(|| format!("{op} expects true or false"));
    }
    if op == "StringMatches" {
        return operand.as_str().map(|s| Test::Matches(s.to_owned())).ok_or_else(|| "StringMatches expects a string pattern".into());
    }
    let (name, is_path) = match op.strip_suffix("Path") {
        Some(base) => (base, true),
        None => (op, false),
    };
    let Some((_, kind, cmp)) = COMPARISONS.iter().find(|(n, _, _)| *n == name) else {
        return Err(format!("'{op}' is not a choice comparison operator"));
    };
    if is_path {
        let path = operand.as_str().ok_or_else(|| format!("{op} expects a JSONPath string"))?;
        return JsonPath::parse(path).map(|p| Test::Compare(*kind, *cmp, Operand::Path(p)));
    }
    let ok = match kind {
        Kind::String => operand.is_string(),
        Kind::Numeric => operand.is_number(),
        Kind::Boolean => operand.is_boolean(),
        Kind::Timestamp => operand.as_str().is_some_and(|s| parse_timestamp(s).is_some()),
    };
    if !ok {
        let expected = match kind {
            Kind::String => "a string",
            Kind::Numeric => "a number",
            Kind::Boolean => "true or false",
            Kind::Timestamp => "an ISO-8601 timestamp string",
        };
        return Err(format!("{op} expects {expected}"));
    }
    Ok(Test::Compare(*kind, *cmp, Operand::Literal(operand.clone())))
}

fn type_test(t: TypeTest, v: &Value) -> bool {
    match t {
        TypeTest::Null => v.is_null(),
        TypeTest::Present => true,
        TypeTest::Numeric => v.is_number(),
        TypeTest::String => v.is_string(),
        TypeTest::Boolean => v.is_boolean(),
        TypeTest::Timestamp => v.as_str().is_some_and(|s| parse_timestamp(s).is_some()),
    }
}

fn compare(kind: Kind, a: &Value, b: &Value) -> Option<Ordering> {
    match kind {
        Kind::String => Some(a.as_str()?.cmp(b.as_str()?)),
        Kind::Numeric => {
            let (Value::Number(x), Value::Number(y)) = (a, b) else {
                return None;
            };
            match (x.as_i64(), y.as_i64()) {
                (Some(i), Some(j)) => Some(i.cmp(&j)),
                _ => x.as_f64()?.partial_cmp(&y.as_f64()?),
            }
        }
        Kind::Boolean => (a.as_bool()? == b.as_bool()?).then_some(Ordering::Equal).or(Some(Ordering::Less)),
        Kind::Timestamp => Some(parse_timestamp(a.as_str()?)?.cmp(&parse_timestamp(b.as_str()?)?)),
    }
}

fn cmp_holds(cmp: Cmp, o: Ordering) -> bool {
    match cmp {
        Cmp::Eq => o == Ordering::Equal,
        Cmp::Lt => o == Ordering::Less,
        Cmp::Gt => o == Ordering::Greater,
        Cmp::Le => o != Ordering::Greater,
        Cmp::Ge => o != Ordering::Less,
    }
}

/// An ISO-8601 extended offset date-time (`2016-03-14T01:59:00Z`, `...T01:59:00.5+01:00`): the `T` and the
/// offset are both required, as in AWS.
pub fn parse_timestamp(s: &str) -> Option<DateTime<FixedOffset>> {
    if s.as_bytes().get(10) != Some(&b'T') {
        return None;
    }
    DateTime::parse_from_rfc3339(s).ok()
}

/// `*` matches any run of characters; `\*` and `\\` are literal.
fn glob_match(pattern: &str, text: &str) -> bool {
    #[derive(PartialEq)]
    enum Tok {
        Star,
        Char(char),
    }
    let mut toks = Vec::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => toks.extend(chars.next().map(Tok::Char)),
            '*' => toks.push(Tok::Star),
            c => toks.push(Tok::Char(c)),
        }
    }
    let text: Vec<char> = text.chars().collect();
    let (mut t, mut p) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while t < text.len() {
        match toks.get(p) {
            Some(Tok::Char(c)) if *c == text[t] => {
                t += 1;
                p += 1;
            }
            Some(Tok::Star) => {
                star = Some(p);
                mark = t;
                p += 1;
            }
            _ => match star {
                Some(s) => {
                    p = s + 1;
                    mark += 1;
                    t = mark;
                }
                None => return false,
            },
        }
    }
    toks[p..].iter().all(|t| *t == Tok::Star)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(rule: Value, input: Value) -> Result<bool, EvalError> {
        let mut problems = Vec::new();
        let rule = Rule::parse(&rule, "", false, &mut problems).expect("rule parses");
        assert!(problems.is_empty(), "{problems:?}");
        rule.eval(&Env::with_context(&input, &Value::Null))
    }

    #[test]
    fn comparisons_are_false_across_types() {
        assert!(!eval(json!({"Variable": "$.v", "NumericEquals": 1}), json!({"v": "1"})).unwrap());
        assert!(!eval(json!({"Variable": "$.v", "NumericEquals": 1}), json!({"v": true})).unwrap());
        assert!(eval(json!({"Variable": "$.v", "NumericEquals": 1}), json!({"v": 1.0})).unwrap());
        assert!(eval(json!({"Variable": "$.v", "NumericLessThanPath": "$.w"}), json!({"v": 1, "w": 1.5})).unwrap());
        assert!(!eval(json!({"Variable": "$.v", "BooleanEquals": true}), json!({"v": "true"})).unwrap());
        assert!(eval(json!({"Variable": "$.v", "StringGreaterThan": "a"}), json!({"v": "b"})).unwrap());
        assert!(
            eval(json!({"Variable": "$.v", "TimestampLessThan": "2020-01-01T00:00:00Z"}), json!({"v": "2019-12-31T23:00:00-00:30"}))
                .unwrap()
        );
    }

    #[test]
    fn type_tests_honour_false() {
        assert!(eval(json!({"Variable": "$.v", "IsNull": false}), json!({"v": 0})).unwrap());
        assert!(eval(json!({"Variable": "$.v", "IsPresent": false}), json!({})).unwrap());
        assert!(!eval(json!({"Variable": "$.v", "IsTimestamp": true}), json!({"v": "2023-02-24"})).unwrap());
        assert!(eval(json!({"Variable": "$.v", "IsTimestamp": true}), json!({"v": "2012-10-09T19:00:55+01:00"})).unwrap());
    }

    #[test]
    fn missing_variable_is_a_runtime_error() {
        let err = eval(json!({"Variable": "$.v", "StringEquals": "x"}), json!({})).unwrap_err();
        assert_eq!(err.error, "States.Runtime");
    }

    #[test]
    fn boolean_combinators_and_globs() {
        let rule = json!({"And": [{"Variable": "$.a", "StringMatches": "rel*-\\*"}, {"Not": {"Variable": "$.b", "IsNull": true}}]});
        assert!(eval(rule.clone(), json!({"a": "release-*", "b": 1})).unwrap());
        assert!(!eval(rule, json!({"a": "release-x", "b": 1})).unwrap());
        assert!(
            eval(json!({"Or": [{"Variable": "$.a", "IsString": true}, {"Variable": "$.a", "IsNumeric": true}]}), json!({"a": 2})).unwrap()
        );
    }

    #[test]
    fn bad_rules_are_reported() {
        let mut problems = Vec::new();
        Rule::parse(&json!({"Variable": "$.a", "NumericEquals": "x", "Next": "B"}), "/States/C/Choices/0", true, &mut problems);
        Rule::parse(&json!({"Variable": "$.a", "Bogus": 1}), "/States/C/Choices/1", true, &mut problems);
        assert_eq!(problems[0], ("/States/C/Choices/0/NumericEquals".to_owned(), "NumericEquals expects a number".to_owned()));
        assert_eq!(problems[1].0, "/States/C/Choices/1/Next");
        assert!(problems[2].1.contains("'Bogus' is not a choice comparison operator"));
    }
}
