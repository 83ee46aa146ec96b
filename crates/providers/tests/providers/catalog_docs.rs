//! docs/catalog.md's field tables agree with the shape tables: each registered provider's fields
//! are documented under its slot's section, with the same required flag and a type column that
//! names the field's kind (for the kinds with one word for it), and the docs name no field a
//! shape lacks.

use baton_domain::catalog::shape::{Field, Kind, Slot};
use baton_providers::registry;
use std::collections::BTreeMap;
use std::path::Path;

const SLOTS: [(Slot, &str); 5] = [
    (Slot::Build, "### `build`"),
    (Slot::Deploy, "### `deploy`"),
    (Slot::Gate, "### `health`"),
    (Slot::Notify, "### `notify`"),
    (Slot::Export, "### `telemetry`"),
];

/// One row of a field table.
#[derive(Debug)]
struct Row {
    line: usize,
    /// `canary.weight` for a field of an object.
    name: String,
    /// The Type column.
    kind: String,
}

impl Row {
    fn required(&self) -> bool {
        self.kind.contains("(required")
    }

    /// `as for `build``: the row refers to another table.
    fn refers(&self) -> bool {
        self.kind.starts_with("as for")
    }
}

fn cells(line: &str) -> Vec<&str> {
    line.trim().trim_matches('|').split(" | ").map(str::trim).collect()
}

/// The backticked names a Field cell lists (`` `working-dir`, `env` ``).
fn names(cell: &str) -> Vec<String> {
    cell.split(", ").filter_map(|name| name.strip_prefix('`')?.strip_suffix('`')).map(str::to_owned).collect()
}

/// The field tables of the section under `heading`, by provider. A `Field` table belongs to the
/// provider named by the `provider: NAME` line before it (a paragraph's start or a heading), if
/// one came since the table before: the others hold the slot's own fields and are left out. A
/// table with a `Provider` column names the provider on each row.
fn documented(docs: &str, heading: &str) -> BTreeMap<String, Vec<Row>> {
    let mut tables: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let start = docs.lines().position(|line| line == heading).unwrap_or_else(|| panic!("docs/catalog.md has no `{heading}`"));
    let (mut owner, mut header): (Option<String>, Option<Vec<String>>) = (None, None);
    for (i, line) in docs.lines().enumerate().skip(start + 1) {
        if line.starts_with("## ") || line.starts_with("### ") {
            break;
        }
        if !line.starts_with('|') {
            if header.take().is_some() {
                owner = None;
            }
            let named = line.trim_start_matches("#### ").strip_prefix("`provider: ");
            if let Some(name) = named.and_then(|rest| rest.split('`').next()) {
                owner = Some(name.to_owned());
            }
            continue;
        }
        let row = cells(line);
        let Some(columns) = &header else {
            header = Some(row.iter().map(|cell| (*cell).to_owned()).collect());
            continue;
        };
        if row[0].starts_with("---") {
            continue;
        }
        let (provider, fields, kind) = match columns[0].as_str() {
            "Provider" => (names(row[0]).pop(), row[1], row[2]),
            _ => (owner.clone(), row[0], row[1]),
        };
        let Some(provider) = provider else { continue };
        for name in names(fields).into_iter().filter(|name| name != "provider") {
            tables.entry(provider.clone()).or_default().push(Row { line: i + 1, name, kind: kind.to_owned() });
        }
    }
    tables
}

/// What a Type column must say of `kind`, for the kinds with one word for it.
fn kind_words(kind: &Kind) -> Vec<String> {
    match kind {
        Kind::Secret => vec!["secret reference".into()],
        Kind::Url => vec!["URL".into()],
        Kind::Argv => vec!["argv".into()],
        Kind::Env => vec!["mapping".into()],
        Kind::Enum(values) => values.iter().map(|value| format!("`{value}`")).collect(),
        _ => vec![],
    }
}

/// What is wrong with `rows` as the docs of the fields `fields` of provider `provider`.
fn mismatches(provider: &str, fields: &[Field], rows: &[Row]) -> Vec<String> {
    let mut wrong = Vec::new();
    for field in fields {
        let documented: Vec<&Row> = rows.iter().filter(|row| row.name.split('.').next() == Some(field.name)).collect();
        if documented.is_empty() {
            wrong.push(format!("{provider}: field `{}` has no row", field.name));
        }
        for row in documented.into_iter().filter(|row| row.name == field.name && !row.refers()) {
            if row.required() != field.required {
                let says = if field.required { "required" } else { "optional" };
                wrong.push(format!("line {}: {provider}.{} is {says} in its shape: its type says `{}`", row.line, field.name, row.kind));
            }
            for word in kind_words(&field.kind).iter().filter(|word| !row.kind.contains(word.as_str())) {
                wrong.push(format!("line {}: {provider}.{}'s type `{}` does not say {word}", row.line, field.name, row.kind));
            }
        }
    }
    for row in rows {
        let (head, inner) = row.name.split_once('.').map_or((row.name.as_str(), None), |(head, inner)| (head, Some(inner)));
        let field = fields.iter().find(|field| field.name == head);
        let known = match (field.map(|field| &field.kind), inner) {
            (Some(_), None) => true,
            (Some(Kind::Object(shape) | Kind::List(shape)), Some(inner)) => shape.fields.iter().any(|field| field.name == inner),
            _ => false,
        };
        if !known {
            wrong.push(format!("line {}: `{}` is no field of {provider}", row.line, row.name));
        }
    }
    wrong
}

#[test]
fn every_provider_field_is_documented_as_its_shape_declares_it() {
    let docs = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/catalog.md")).unwrap();
    let mut wrong = Vec::new();
    for (slot, heading) in SLOTS {
        let mut tables = documented(&docs, heading);
        for shape in registry().providers(slot) {
            match tables.remove(shape.name) {
                Some(rows) => wrong.extend(mismatches(shape.name, shape.fields, &rows)),
                None if shape.fields.is_empty() => {}
                None => wrong.push(format!("{heading}: no table documents `provider: {}`", shape.name)),
            }
        }
        wrong.extend(tables.keys().map(|name| format!("{heading}: `{name}` is documented but not registered")));
    }
    assert_eq!(wrong, Vec::<String>::new(), "docs/catalog.md and the shape tables disagree");
}

#[test]
fn a_table_belongs_to_the_provider_named_before_it() {
    let docs = "### `build`\n\n| Field | Type |\n| --- | --- |\n| `provider` | `a` or `b` (required) |\n\n\
                `provider: a` does a thing:\n\n| Field | Type |\n| --- | --- |\n| `x`, `y` | string (required) |\n\n\
                Between the tables.\n\n| Field | Type |\n| --- | --- |\n| `z` | string |\n\n\
                #### `provider: b`\n\n| Field | Type |\n| --- | --- |\n| `canary.weight` | integer |\n\n\
                | Provider | Field | Type |\n| --- | --- | --- |\n| `c` | `w` | secret reference |\n### `deploy`\n\n\
                `provider: d`:\n\n| Field | Type |\n| --- | --- |\n| `q` | string |\n";
    let found: Vec<(String, Vec<(String, bool)>)> = documented(docs, "### `build`")
        .into_iter()
        .map(|(provider, rows)| (provider, rows.iter().map(|row| (row.name.clone(), row.required())).collect()))
        .collect();
    let owned = |provider: &str, rows: &[(&str, bool)]| (provider.to_owned(), rows.iter().map(|(n, r)| ((*n).to_owned(), *r)).collect());
    assert_eq!(
        found,
        vec![owned("a", &[("x", true), ("y", true)]), owned("b", &[("canary.weight", false)]), owned("c", &[("w", false)])],
        "a table after plain text is the slot's own; a section ends at the next"
    );
}
