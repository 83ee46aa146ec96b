//! Intrinsic functions (`States.Format(...)` and friends): parsed once, evaluated per state.
use crate::env::{Env, EvalError, compact};
use crate::jsonpath::{JsonPath, type_name};
use base64::Engine as _;
use serde_json::{Number, Value};

/// How deeply calls may nest in one another: parsing and evaluation recurse once per level, so
/// hostile definitions must not be able to exhaust the stack.
pub const MAX_NESTING: usize = 32;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Func {
    Format,
    StringToJson,
    JsonToString,
    Array,
    ArrayPartition,
    ArrayContains,
    ArrayRange,
    ArrayGetItem,
    ArrayLength,
    ArrayUnique,
    Base64Encode,
    Base64Decode,
    Hash,
    JsonMerge,
    MathRandom,
    MathAdd,
    StringSplit,
    Uuid,
}

impl Func {
    fn from_name(name: &str) -> Option<(Func, std::ops::RangeInclusive<usize>)> {
        use Func::*;
        Some(match name {
            "States.Format" => (Format, 1..=usize::MAX),
            "States.StringToJson" => (StringToJson, 1..=1),
            "States.JsonToString" => (JsonToString, 1..=1),
            "States.Array" => (Array, 0..=usize::MAX),
            "States.ArrayPartition" => (ArrayPartition, 2..=2),
            "States.ArrayContains" => (ArrayContains, 2..=2),
            "States.ArrayRange" => (ArrayRange, 3..=3),
            "States.ArrayGetItem" => (ArrayGetItem, 2..=2),
            "States.ArrayLength" => (ArrayLength, 1..=1),
            "States.ArrayUnique" => (ArrayUnique, 1..=1),
            "States.Base64Encode" => (Base64Encode, 1..=1),
            "States.Base64Decode" => (Base64Decode, 1..=1),
            "States.Hash" => (Hash, 2..=2),
            "States.JsonMerge" => (JsonMerge, 3..=3),
            "States.MathRandom" => (MathRandom, 2..=3),
            "States.MathAdd" => (MathAdd, 2..=2),
            "States.StringSplit" => (StringSplit, 2..=2),
            "States.UUID" => (Uuid, 0..=0),
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Arg {
    /// A quoted literal: `raw` keeps the escapes (States.Format reads `\{`), `text` has them resolved.
    Str {
        raw: String,
        text: String,
    },
    Literal(Value),
    Path(JsonPath),
    Call(Box<Intrinsic>),
}

/// One parsed intrinsic call.
#[derive(Debug, Clone, PartialEq)]
pub struct Intrinsic {
    func: Func,
    name: String,
    args: Vec<Arg>,
    text: String,
}

/// True when a string is written as an intrinsic call rather than a path.
pub fn looks_like_intrinsic(s: &str) -> bool {
    s.starts_with("States.")
}

impl Intrinsic {
    pub fn parse(text: &str) -> Result<Intrinsic, String> {
        let mut p = Parser { src: text, pos: 0, depth: 0 };
        let call = p.call().map_err(|e| format!("invalid intrinsic function '{text}': {e}"))?;
        p.skip_ws();
        if p.pos != text.len() {
            return Err(format!("invalid intrinsic function '{text}': unexpected '{}' after the call", &text[p.pos..]));
        }
        Ok(call)
    }

    pub fn eval(&self, env: &Env) -> Result<Value, EvalError> {
        let args = self.args.iter().map(|a| self.eval_arg(a, env)).collect::<Result<Vec<_>, _>>()?;
        self.apply(args)
    }

    fn eval_arg(&self, arg: &Arg, env: &Env) -> Result<Value, EvalError> {
        match arg {
            Arg::Str { text, .. } => Ok(Value::String(text.clone())),
            Arg::Literal(v) => Ok(v.clone()),
            Arg::Call(call) => call.eval(env),
            Arg::Path(path) => env.resolve(path).ok_or_else(|| {
                EvalError::runtime(format!(
                    "The JsonPath argument for the field '{}' could not be found in the input '{}'",
                    path,
                    compact(&env.root_for(path))
                ))
            }),
        }
    }

    fn fail(&self, msg: impl std::fmt::Display) -> EvalError {
        EvalError::intrinsic(format!("The function '{}' failed: {msg}", self.text))
    }

    fn apply(&self, mut args: Vec<Value>) -> Result<Value, EvalError> {
        use Func::*;
        Ok(match self.func {
            Format => {
                let Some(Arg::Str { raw, .. }) = self.args.first() else {
                    return Err(self.fail("the first argument must be a string literal template"));
                };
                self.format(raw, &args[1..])?
            }
            StringToJson => {
                let s = self.string(&args[0], 1)?;
                if s.trim().is_empty() {
                    Value::Null
                } else {
                    serde_json::from_str(s).map_err(|e| self.fail(format!("the argument is not JSON text: {e}")))?
                }
            }
            JsonToString => Value::String(compact(&args[0])),
            Array => Value::Array(args),
            ArrayPartition => {
                let size = self.integer(&args[1], 2)?;
                if size <= 0 {
                    return Err(self.fail("the chunk size must be greater than 0"));
                }
                let items = self.array(&args[0], 1)?;
                Value::Array(items.chunks(size as usize).map(|c| Value::Array(c.to_vec())).collect())
            }
            ArrayContains => Value::Bool(self.array(&args[0], 1)?.contains(&args[1])),
            ArrayRange => {
                let (start, end, step) = (self.integer(&args[0], 1)?, self.integer(&args[1], 2)?, self.integer(&args[2], 3)?);
                if step == 0 {
                    return Err(self.fail("the step must not be 0"));
                }
                // In i128: `end - start` overflows i64 for arguments near its bounds.
                let (start, end, step) = (i128::from(start), i128::from(end), i128::from(step));
                let count = if (end - start).signum() * step.signum() < 0 { 0 } else { (end - start) / step + 1 };
                if count > 1000 {
                    return Err(self.fail("the range would have more than 1000 elements"));
                }
                // Every element lies between start and end, both i64.
                Value::Array((0..count).map(|i| Value::from((start + i * step) as i64)).collect())
            }
            ArrayGetItem => {
                let index = self.integer(&args[1], 2)?;
                let items = self.array(&args[0], 1)?;
                usize::try_from(index)
                    .ok()
                    .and_then(|i| items.get(i))
                    .cloned()
                    .ok_or_else(|| self.fail(format!("index {index} is out of bounds for an array of {}", items.len())))?
            }
            ArrayLength => Value::from(self.array(&args[0], 1)?.len()),
            ArrayUnique => {
                let mut unique: Vec<Value> = Vec::new();
                for v in self.array(&args[0], 1)? {
                    if !unique.contains(v) {
                        unique.push(v.clone());
                    }
                }
                Value::Array(unique)
            }
            Base64Encode => {
                let s = self.bounded_string(&args[0])?;
                Value::String(base64::engine::general_purpose::STANDARD.encode(s))
            }
            Base64Decode => {
                let s = self.bounded_string(&args[0])?;
                let bytes = base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| self.fail(format!("the argument is not base64: {e}")))?;
                Value::String(String::from_utf8(bytes).map_err(|_| self.fail("the decoded bytes are not UTF-8"))?)
            }
            Hash => {
                let data = self.bounded_string(&args[0])?;
                let alg = self.string(&args[1], 2)?;
                Value::String(hash(alg, data.as_bytes()).ok_or_else(|| {
                    self.fail(format!("unsupported algorithm '{alg}' (expected MD5, SHA-1, SHA-256, SHA-384 or SHA-512)"))
                })?)
            }
            JsonMerge => {
                if args[2] != Value::Bool(false) {
                    return Err(self.fail("only shallow merges are supported: the third argument must be false"));
                }
                let second = args.pop().and(args.pop()).unwrap_or_default();
                let (Value::Object(mut left), Value::Object(right)) = (args.swap_remove(0), second) else {
                    return Err(self.fail("both arguments to merge must be JSON objects"));
                };
                left.extend(right);
                Value::Object(left)
            }
            MathRandom => {
                use rand::Rng as _;
                let (start, end) = (self.integer(&args[0], 1)?, self.integer(&args[1], 2)?);
                if start >= end {
                    return Err(self.fail("the start must be less than the end"));
                }
                let n = match args.get(2) {
                    Some(seed) => {
                        use rand::SeedableRng as _;
                        rand::rngs::StdRng::seed_from_u64(self.integer(seed, 3)? as u64).random_range(start..end)
                    }
                    None => rand::rng().random_range(start..end),
                };
                Value::from(n)
            }
            MathAdd => {
                let (a, b) = (self.integer(&args[0], 1)?, self.integer(&args[1], 2)?);
                Value::from(a.checked_add(b).ok_or_else(|| self.fail("the sum overflows"))?)
            }
            StringSplit => {
                let s = self.string(&args[0], 1)?;
                let delims = self.string(&args[1], 2)?;
                let parts = s.split(|c| delims.contains(c)).filter(|p| !p.is_empty());
                Value::Array(parts.map(|p| Value::String(p.to_owned())).collect())
            }
            Uuid => Value::String(uuid::Uuid::new_v4().to_string()),
        })
    }

    fn string<'v>(&self, v: &'v Value, pos: usize) -> Result<&'v str, EvalError> {
        v.as_str().ok_or_else(|| self.fail(format!("argument {pos} must be a string, got {}", type_name(v))))
    }

    fn bounded_string<'v>(&self, v: &'v Value) -> Result<&'v str, EvalError> {
        let s = self.string(v, 1)?;
        if s.chars().count() > 10_000 {
            return Err(self.fail("the input string is longer than 10000 characters"));
        }
        Ok(s)
    }

    fn array<'v>(&self, v: &'v Value, pos: usize) -> Result<&'v Vec<Value>, EvalError> {
        v.as_array().ok_or_else(|| self.fail(format!("argument {pos} must be an array, got {}", type_name(v))))
    }

    /// Numbers are rounded half up as Java's `Math.round` does (1.5 -> 2, -1.5 -> -1).
    fn integer(&self, v: &Value, pos: usize) -> Result<i64, EvalError> {
        match v {
            Value::Number(n) => match n.as_i64() {
                Some(i) => Ok(i),
                None => Ok((n.as_f64().unwrap_or(f64::NAN) + 0.5).floor() as i64),
            },
            other => Err(self.fail(format!("argument {pos} must be a number, got {}", type_name(other)))),
        }
    }

    fn format(&self, template: &str, args: &[Value]) -> Result<Value, EvalError> {
        let mut out = String::with_capacity(template.len());
        let mut next = args.iter();
        let mut chars = template.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\\' => out.extend(chars.next()),
                '{' if chars.peek() == Some(&'}') => {
                    chars.next();
                    let arg = next.next().ok_or_else(|| self.fail("the template has more {} than arguments"))?;
                    java_string(arg, &mut out);
                }
                _ => out.push(c),
            }
        }
        if next.next().is_some() {
            return Err(self.fail("the template has fewer {} than arguments"));
        }
        Ok(Value::String(out))
    }
}

/// How Step Functions (a JVM) prints a value into States.Format: strings bare, objects as `{k=v, ...}`.
fn java_string(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => out.push_str(s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                java_string(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push('=');
                java_string(item, out);
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
}

fn hash(alg: &str, data: &[u8]) -> Option<String> {
    use sha2::Digest as _;
    Some(match alg {
        "MD5" => hex::encode(md5::Md5::digest(data)),
        "SHA-1" => hex::encode(sha1::Sha1::digest(data)),
        "SHA-256" => hex::encode(sha2::Sha256::digest(data)),
        "SHA-384" => hex::encode(sha2::Sha384::digest(data)),
        "SHA-512" => hex::encode(sha2::Sha512::digest(data)),
        _ => return None,
    })
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    /// Calls open around this point (see [`MAX_NESTING`]).
    depth: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.src[self.pos..]
    }

    fn skip_ws(&mut self) {
        let trimmed = self.rest().trim_start();
        self.pos = self.src.len() - trimmed.len();
    }

    fn call(&mut self) -> Result<Intrinsic, String> {
        self.skip_ws();
        let start = self.pos;
        let open = self.rest().find('(').ok_or("expected '(' after the function name")?;
        let name = self.rest()[..open].trim().to_owned();
        let (func, arity) = Func::from_name(&name).ok_or_else(|| format!("unknown function '{name}'"))?;
        self.pos += open + 1;
        let mut args = Vec::new();
        self.skip_ws();
        if self.rest().starts_with(')') {
            self.pos += 1;
        } else {
            loop {
                args.push(self.arg()?);
                self.skip_ws();
                match self.rest().chars().next() {
                    Some(',') => self.pos += 1,
                    Some(')') => {
                        self.pos += 1;
                        break;
                    }
                    _ => return Err(format!("expected ',' or ')' in the arguments of {name}")),
                }
            }
        }
        if !arity.contains(&args.len()) {
            let expected = match (arity.start(), arity.end()) {
                (a, b) if a == b => format!("{a}"),
                (a, &usize::MAX) => format!("at least {a}"),
                (a, b) => format!("{a} to {b}"),
            };
            return Err(format!("{name} takes {expected} argument(s), got {}", args.len()));
        }
        if func == Func::Format && !matches!(args.first(), Some(Arg::Str { .. })) {
            return Err("States.Format's first argument must be a quoted template".into());
        }
        Ok(Intrinsic { func, name, args, text: self.src[start..self.pos].to_owned() })
    }

    fn arg(&mut self) -> Result<Arg, String> {
        self.skip_ws();
        let rest = self.rest();
        if rest.starts_with('\'') {
            return self.string();
        }
        if looks_like_intrinsic(rest) {
            if self.depth + 1 == MAX_NESTING {
                return Err(format!("calls nest more than {MAX_NESTING} levels deep"));
            }
            self.depth += 1;
            let call = self.call();
            self.depth -= 1;
            return Ok(Arg::Call(Box::new(call?)));
        }
        // A path or a literal runs to the next ',' or ')' outside brackets, parentheses and quotes.
        let (mut depth, mut quote, mut end) = (0i32, None, rest.len());
        let mut chars = rest.char_indices();
        while let Some((i, c)) = chars.next() {
            match (quote, c) {
                (Some(_), '\\') => {
                    chars.next();
                }
                (Some(q), c) if c == q => quote = None,
                (Some(_), _) => {}
                (None, '\'' | '"') => quote = Some(c),
                (None, '[' | '(') => depth += 1,
                (None, ']' | ')') if depth > 0 => depth -= 1,
                (None, ',' | ')') if depth == 0 => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let token = rest[..end].trim().to_owned();
        self.pos += end;
        if token.starts_with('$') {
            return JsonPath::parse(&token).map(Arg::Path);
        }
        match serde_json::from_str::<Value>(&token) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Null)) => Ok(Arg::Literal(normalize_number(v))),
            _ => Err(format!("'{token}' is not a path, a quoted string, a number, a boolean, null or a call")),
        }
    }

    fn string(&mut self) -> Result<Arg, String> {
        self.pos += 1; // opening quote
        let (mut raw, mut text) = (String::new(), String::new());
        let mut chars = self.rest().char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    let (_, escaped) = chars.next().ok_or("unterminated escape in a string literal")?;
                    raw.push('\\');
                    raw.push(escaped);
                    text.push(escaped);
                }
                '\'' => {
                    self.pos += i + 1;
                    return Ok(Arg::Str { raw, text });
                }
                c => {
                    raw.push(c);
                    text.push(c);
                }
            }
        }
        Err("unterminated string literal".into())
    }
}

fn normalize_number(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() && n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() < 1e15) => {
            Value::Number(Number::from(n.as_f64().unwrap_or_default() as i64))
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn eval(expr: &str, input: Value) -> Result<Value, EvalError> {
        let ctx = json!({"Execution": {"Name": "exec-1"}});
        let env = Env::with_context(&input, &ctx);
        Intrinsic::parse(expr).unwrap().eval(&env)
    }

    #[test]
    fn format_prints_values_like_the_jvm() {
        let out =
            eval("States.Format('a={} b={} c={} d=\\{\\}', $.a, $.b, $.c)", json!({"a": {"x": 1, "y": []}, "b": null, "c": 1.5})).unwrap();
        assert_eq!(out, json!("a={x=1, y=[]} b=null c=1.5 d={}"));
        assert!(eval("States.Format('{} {}', $.a)", json!({"a": 1})).is_err());
    }

    #[test]
    fn math_add_rounds_half_up_per_argument() {
        assert_eq!(eval("States.MathAdd($.a, $.b)", json!({"a": 1.5, "b": 1.51})).unwrap(), json!(4));
        assert_eq!(eval("States.MathAdd($.a, $.b)", json!({"a": -1.5, "b": 0})).unwrap(), json!(-1));
        assert_eq!(eval("States.MathAdd(-2, 3)", json!({})).unwrap(), json!(1));
    }

    #[test]
    fn arrays() {
        assert_eq!(eval("States.ArrayRange(1, 9, 2)", json!({})).unwrap(), json!([1, 3, 5, 7, 9]));
        assert_eq!(eval("States.ArrayPartition($.a, 2)", json!({"a": [1, 2, 3]})).unwrap(), json!([[1, 2], [3]]));
        assert_eq!(eval("States.ArrayUnique($.a)", json!({"a": [1, 1, {"b": 2}, {"b": 2}]})).unwrap(), json!([1, {"b": 2}]));
        assert_eq!(eval("States.ArrayGetItem(States.Array(4, 5), 1)", json!({})).unwrap(), json!(5));
        assert!(eval("States.ArrayGetItem(States.Array(4, 5), 2)", json!({})).is_err());
        assert_eq!(eval("States.ArrayContains($.a, $.b)", json!({"a": [[1]], "b": [1]})).unwrap(), json!(true));
    }

    #[test]
    fn strings_json_and_hashes() {
        assert_eq!(eval("States.StringSplit($.s, '.+')", json!({"s": "a.b+c++"})).unwrap(), json!(["a", "b", "c"]));
        assert_eq!(eval("States.StringToJson($.s)", json!({"s": " "})).unwrap(), Value::Null);
        assert_eq!(eval("States.JsonToString($.s)", json!({"s": {"a": [1]}})).unwrap(), json!("{\"a\":[1]}"));
        assert_eq!(eval("States.Base64Decode(States.Base64Encode('hé'))", json!({})).unwrap(), json!("hé"));
        assert_eq!(eval("States.Hash('input data', 'MD5')", json!({})).unwrap(), json!("812f45842bc6d66ee14572ce20db8e86"));
        assert_eq!(
            eval("States.JsonMerge($.a, $.b, false)", json!({"a": {"x": 1, "y": 1}, "b": {"y": 2}})).unwrap(),
            json!({"x": 1, "y": 2})
        );
        assert_eq!(eval("States.Format('{}', $$.Execution.Name)", json!({})).unwrap(), json!("exec-1"));
    }

    #[test]
    fn parse_errors_name_the_problem() {
        assert!(Intrinsic::parse("States.Nope(1)").unwrap_err().contains("unknown function"));
        assert!(Intrinsic::parse("States.ArrayLength(1, 2)").unwrap_err().contains("takes 1 argument"));
        assert!(Intrinsic::parse("States.Format($.a)").is_err());
    }

    #[test]
    fn random_stays_in_range_and_uuid_is_v4() {
        let n = eval("States.MathRandom(3, 5)", json!({})).unwrap().as_i64().unwrap();
        assert!((3..5).contains(&n));
        let seeded = eval("States.MathRandom(0, 1000, 7)", json!({})).unwrap();
        assert_eq!(seeded, eval("States.MathRandom(0, 1000, 7)", json!({})).unwrap());
        let id = eval("States.UUID()", json!({})).unwrap();
        assert_eq!(uuid::Uuid::parse_str(id.as_str().unwrap()).unwrap().get_version_num(), 4);
    }
}
