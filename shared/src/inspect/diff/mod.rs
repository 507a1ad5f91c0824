//! Readable differences between two fingerprints: lines are grouped by object (`KIND NAME`)
//! and each change is said in words ("table `folders` missing", "column `users.id`: uuid ->
//! character varying(36)").

use std::collections::{BTreeMap, BTreeSet};

mod column;

use super::{SchemaFingerprint, TableFingerprint};
use column::column_changes;

/// Kinds of schema lines added to the fingerprint after its first release.
const RECORDED_LATER: &[&str] = &["schema-props"];

/// Differences from `before` to `after`, one readable sentence each, grouped by table.
///
/// An object only in `before` is "missing", one only in `after` is "added"; the columns,
/// indexes and constraints of a missing or added table are not listed again. A column says
/// which part changed: its type, nullability, attributes or default.
pub fn diff_schema(before: &SchemaFingerprint, after: &SchemaFingerprint) -> Vec<String> {
    if before.hash == after.hash && before.lines == after.lines {
        return Vec::new();
    }
    let mut old = objects(&before.lines);
    let mut new = objects(&after.lines);
    // A kind of line that a fingerprint of an older dbsafe did not record yet is compared
    // only when both sides have it (a snapshot taken before stays restorable and provable).
    for kind in RECORDED_LATER {
        let has = |map: &BTreeMap<Key<'_>, Vec<&str>>| map.keys().any(|k| k.kind == *kind);
        if has(&old) != has(&new) {
            old.retain(|k, _| k.kind != *kind);
            new.retain(|k, _| k.kind != *kind);
        }
    }

    // Tables that exist on one side only: their parts are not listed one by one.
    let whole_tables: BTreeSet<&str> = old
        .keys()
        .chain(new.keys())
        .filter(|key| key.kind == "table" && old.contains_key(*key) != new.contains_key(*key))
        .map(|key| key.name)
        .collect();
    // Tables with a change in a part other than the SQLite definition line.
    let changed_parts: BTreeSet<String> = old
        .keys()
        .chain(new.keys())
        .filter(|key| key.kind != "table" && key.kind != "definition")
        .filter(|key| old.get(*key) != new.get(*key))
        .map(|key| owner(key, old.get(key).or_else(|| new.get(key))))
        .collect();

    let mut out: Vec<(String, usize, String, String)> = Vec::new();
    let keys: BTreeSet<&Key> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (a, b) = (old.get(key), new.get(key));
        if a == b {
            continue;
        }
        let owner = owner(key, a.or(b));
        if key.kind != "table" && whole_tables.contains(owner.as_str()) {
            continue;
        }
        let messages = match (a, b) {
            (Some(_), None) => vec![format!("{} `{}` missing", key.kind, key.name)],
            (None, Some(_)) => vec![format!("{} `{}` added", key.kind, key.name)],
            (Some(a), Some(b)) => {
                if key.kind == "definition" && changed_parts.contains(&owner) {
                    continue;
                }
                changed(key, a, b)
            }
            (None, None) => continue,
        };
        for message in messages {
            out.push((owner.clone(), rank(key.kind), key.name.to_owned(), message));
        }
    }
    out.sort();
    out.into_iter().map(|(_, _, _, message)| message).collect()
}

/// Whether a difference of [`diff_schema`] is only the order of a table's columns (every
/// column still there, with the same definition).
pub fn is_column_order(difference: &str) -> bool {
    difference.starts_with("column order of ")
}

/// Differences between two sets of table fingerprints, sorted by table.
pub fn diff_data(before: &[TableFingerprint], after: &[TableFingerprint]) -> Vec<String> {
    let old: BTreeMap<&str, &TableFingerprint> =
        before.iter().map(|t| (t.table.as_str(), t)).collect();
    let new: BTreeMap<&str, &TableFingerprint> =
        after.iter().map(|t| (t.table.as_str(), t)).collect();
    let names: BTreeSet<&str> = old.keys().chain(new.keys()).copied().collect();
    let mut out = Vec::new();
    for name in names {
        match (old.get(name), new.get(name)) {
            (Some(a), None) => out.push(format!("table `{name}` missing (had {} rows)", a.rows)),
            (None, Some(b)) => out.push(format!("table `{name}` added ({} rows)", b.rows)),
            (Some(a), Some(b)) if a.rows != b.rows => out.push(format!(
                "rows of `{name}` changed: {} -> {}",
                a.rows, b.rows
            )),
            (Some(a), Some(b)) if a.hash != b.hash => out.push(format!(
                "content of `{name}` changed ({} rows, same count)",
                a.rows
            )),
            _ => {}
        }
    }
    out
}

/// An object's identity in the schema lines.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Key<'a> {
    kind: &'a str,
    name: &'a str,
}

/// Lines grouped by object; each object's details sorted (a key normally has one line).
fn objects(lines: &[String]) -> BTreeMap<Key<'_>, Vec<&str>> {
    let mut map: BTreeMap<Key<'_>, Vec<&str>> = BTreeMap::new();
    for line in lines {
        let (kind, name, detail) = parse_line(line);
        map.entry(Key { kind, name }).or_default().push(detail);
    }
    for details in map.values_mut() {
        details.sort_unstable();
    }
    map
}

/// Splits `KIND NAME[: DETAIL]`. The name ends at the first space or colon outside quotes
/// and parentheses; a missing detail is empty.
fn parse_line(line: &str) -> (&str, &str, &str) {
    let Some((kind, rest)) = line.split_once(' ') else {
        return (line, "", "");
    };
    let end = scan(rest, |s| s.starts_with(' ') || s.starts_with(':')).unwrap_or(rest.len());
    let name = &rest[..end];
    let tail = &rest[end..];
    let detail = tail
        .strip_prefix(": ")
        .or_else(|| tail.strip_prefix(':'))
        .or_else(|| tail.strip_prefix(' '))
        .unwrap_or(tail);
    (kind, name, detail)
}

/// The first byte offset where `at` holds, outside quotes and parentheses.
fn scan(text: &str, at: impl Fn(&str) -> bool) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut depth = 0usize;
    for (i, c) in text.char_indices() {
        if let Some(q) = quote {
            if c == q {
                quote = None;
            }
            continue;
        }
        if depth == 0 && at(&text[i..]) {
            return Some(i);
        }
        match c {
            '\'' | '"' | '`' => quote = Some(c),
            '(' | '[' => depth += 1,
            ')' | ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    None
}

/// Splits a list written `a, b, c` at top-level commas.
fn split_list(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(i) = scan(rest, |s| s.starts_with(", ")) {
        parts.push(&rest[..i]);
        rest = &rest[i + 2..];
    }
    if !rest.is_empty() {
        parts.push(rest);
    }
    parts
}

/// The table an object belongs to (itself for tables and other top-level objects).
fn owner(key: &Key<'_>, details: Option<&Vec<&str>>) -> String {
    match key.kind {
        "column" | "constraint" | "trigger" | "policy" => {
            let mut last = None;
            let mut rest = key.name;
            let mut offset = 0;
            while let Some(i) = scan(rest, |s| s.starts_with('.')) {
                last = Some(offset + i);
                offset += i + 1;
                rest = &rest[i + 1..];
            }
            match last {
                Some(i) => key.name[..i].to_owned(),
                None => key.name.to_owned(),
            }
        }
        "index" => details
            .and_then(|d| d.first())
            .and_then(|d| d.strip_prefix("on "))
            .map(|d| {
                let end = scan(d, |s| s.starts_with(' ')).unwrap_or(d.len());
                d[..end].to_owned()
            })
            .unwrap_or_else(|| key.name.to_owned()),
        _ => key.name.to_owned(),
    }
}

/// Output order of kinds within one table's group.
fn rank(kind: &str) -> usize {
    const ORDER: &[&str] = &[
        "schema",
        "extension",
        "enum",
        "domain",
        "type",
        "range",
        "sequence",
        "table",
        "definition",
        "columns",
        "column",
        "constraint",
        "index",
        "rls",
        "policy",
        "trigger",
        "view",
        "matview",
        "function",
        "procedure",
        "aggregate",
    ];
    ORDER.iter().position(|k| *k == kind).unwrap_or(ORDER.len())
}

/// What changed in one object present on both sides.
fn changed(key: &Key<'_>, a: &[&str], b: &[&str]) -> Vec<String> {
    let name = key.name;
    if let ([a], [b]) = (a, b) {
        match key.kind {
            "column" => return column_changes(name, a, b),
            "columns" => {
                let mut sa = split_list(a);
                let mut sb = split_list(b);
                sa.sort_unstable();
                sb.sort_unstable();
                // Added or missing columns are reported by their own lines.
                if sa != sb {
                    return Vec::new();
                }
                return vec![format!("column order of `{name}` changed: {a} -> {b}")];
            }
            "definition" => {
                return vec![format!(
                    "definition of table `{name}` changed: {}",
                    describe(a, b)
                )];
            }
            _ => {}
        }
        return vec![format!("{} `{name}` changed: {}", key.kind, describe(a, b))];
    }
    vec![format!(
        "{} `{name}` changed: {}",
        key.kind,
        describe(&a.join("; "), &b.join("; "))
    )]
}

/// `old -> new` when short, else where they first differ.
fn describe(a: &str, b: &str) -> String {
    let show = |s: &str| {
        if s.is_empty() {
            "(nothing)".to_owned()
        } else {
            s.to_owned()
        }
    };
    if a.chars().count() + b.chars().count() <= 160 {
        return format!("{} -> {}", show(a), show(b));
    }
    let common = a
        .char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map_or(a.len().min(b.len()), |((i, _), _)| i);
    let start = a[..common]
        .char_indices()
        .rev()
        .nth(29)
        .map_or(0, |(i, _)| i);
    let snippet = |s: &str| {
        let tail: String = s[start..].chars().take(70).collect();
        let more = if s[start..].chars().count() > 70 {
            "..."
        } else {
            ""
        };
        let less = if start > 0 { "..." } else { "" };
        format!("`{less}{tail}{more}`")
    };
    format!("first difference: {} -> {}", snippet(a), snippet(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fp(lines: &[&str]) -> SchemaFingerprint {
        SchemaFingerprint::from_lines(lines.iter().map(|s| (*s).to_owned()).collect())
    }

    fn table(name: &str, rows: u64, hash: &str) -> TableFingerprint {
        TableFingerprint {
            table: name.into(),
            rows,
            hash: hash.into(),
        }
    }

    #[test]
    fn lines_parse_into_kind_name_detail() {
        assert_eq!(parse_line("table users"), ("table", "users", ""));
        assert_eq!(
            parse_line("column users.id: integer not null"),
            ("column", "users.id", "integer not null")
        );
        assert_eq!(
            parse_line("column \"my t\".\"a: b\": text"),
            ("column", "\"my t\".\"a: b\"", "text")
        );
        assert_eq!(
            parse_line("function add(integer, character varying): returns integer"),
            (
                "function",
                "add(integer, character varying)",
                "returns integer"
            )
        );
        assert_eq!(
            parse_line("index users_email_idx on users (email) unique"),
            ("index", "users_email_idx", "on users (email) unique")
        );
    }

    #[test]
    fn equal_fingerprints_have_no_differences() {
        let a = fp(&["table users", "column users.id: integer not null"]);
        assert!(diff_schema(&a, &a.clone()).is_empty());
    }

    #[test]
    fn tables_missing_and_added_without_their_parts() {
        let before = fp(&[
            "table folders",
            "columns folders: id",
            "column folders.id: integer not null",
            "index folders_pkey: on folders primary USING btree (id)",
            "constraint folders.folders_pkey: PRIMARY KEY (id)",
            "table users",
        ]);
        let after = fp(&[
            "table users",
            "table audit",
            "columns audit: at",
            "column audit.at: timestamp with time zone",
        ]);
        assert_eq!(
            diff_schema(&before, &after),
            ["table `audit` added", "table `folders` missing"]
        );
    }

    #[test]
    fn column_changes_are_named_part_by_part() {
        let before = fp(&[
            "table users",
            "column users.id: uuid not null",
            "column users.active: boolean not null default true",
            "column users.email: text not null",
            "column users.name: text",
            "column users.n: integer not null identity always",
        ]);
        let after = fp(&[
            "table users",
            "column users.id: character varying(36) not null",
            "column users.active: boolean not null default false",
            "column users.email: text",
            "column users.name: text default ''::text",
            "column users.n: integer not null",
        ]);
        assert_eq!(
            diff_schema(&before, &after),
            [
                "default of `users.active` changed: true -> false",
                "column `users.email` is now nullable",
                "column `users.id`: uuid -> character varying(36)",
                "column `users.n` changed: identity always -> (none)",
                "default of `users.name` added: ''::text",
            ]
        );
    }

    #[test]
    fn indexes_constraints_and_others() {
        let before = fp(&[
            "table users",
            "constraint users.users_pkey: PRIMARY KEY (id)",
            "enum mood: sad, ok",
            "columns users: id, email",
        ]);
        let after = fp(&[
            "table users",
            "index users_email_idx: on users unique USING btree (email)",
            "enum mood: sad, ok, happy",
            "columns users: email, id",
        ]);
        assert_eq!(
            diff_schema(&before, &after),
            [
                "enum `mood` changed: sad, ok -> sad, ok, happy",
                "column order of `users` changed: id, email -> email, id",
                "constraint `users.users_pkey` missing",
                "index `users_email_idx` added",
            ]
        );
    }

    #[test]
    fn a_sqlite_definition_change_is_only_reported_alone() {
        let before = fp(&[
            "table t",
            "definition t: CREATE TABLE t (a INT)",
            "column t.a: INT",
        ]);
        let with_column = fp(&[
            "table t",
            "definition t: CREATE TABLE t (a INT, b INT)",
            "column t.a: INT",
            "column t.b: INT",
        ]);
        assert_eq!(diff_schema(&before, &with_column), ["column `t.b` added"]);
        let with_check = fp(&[
            "table t",
            "definition t: CREATE TABLE t (a INT CHECK (a > 0))",
            "column t.a: INT",
        ]);
        assert_eq!(
            diff_schema(&before, &with_check),
            [
                "definition of table `t` changed: CREATE TABLE t (a INT) -> CREATE TABLE t (a INT CHECK (a > 0))"
            ]
        );
    }

    #[test]
    fn long_details_show_the_first_difference() {
        let body = "x".repeat(200);
        let before = fp(&[&format!("view v: SELECT 1 {body} a")]);
        let after = fp(&[&format!("view v: SELECT 1 {body} b")]);
        let diff = diff_schema(&before, &after);
        let x29 = "x".repeat(29);
        assert_eq!(
            diff,
            [format!(
                "view `v` changed: first difference: `...{x29} a` -> `...{x29} b`"
            )]
        );
    }

    #[test]
    fn data_differences() {
        let before = [
            table("a", 1, "h1"),
            table("b", 2, "h2"),
            table("c", 3, "h3"),
            table("d", 4, "h4"),
        ];
        let after = [
            table("b", 3, "h9"),
            table("c", 3, "h8"),
            table("d", 4, "h4"),
            table("e", 0, "h0"),
        ];
        assert_eq!(
            diff_data(&before, &after),
            [
                "table `a` missing (had 1 rows)",
                "rows of `b` changed: 2 -> 3",
                "content of `c` changed (3 rows, same count)",
                "table `e` added (0 rows)",
            ]
        );
        assert!(diff_data(&before, &before).is_empty());
    }
}
