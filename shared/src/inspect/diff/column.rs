//! A column's detail (`type not null attributes default EXPR`) split into its parts, and
//! the differences between two details named part by part.

use super::{describe, scan};

/// A column's detail split into its parts.
#[derive(Debug, PartialEq, Eq)]
struct Column<'a> {
    ty: &'a str,
    not_null: bool,
    attributes: &'a str,
    default: Option<&'a str>,
}

/// Attribute words that end a column's type.
const ATTRIBUTES: &[&str] = &[
    " not null",
    " collate ",
    " identity ",
    " generated ",
    " auto_increment",
    " on update ",
    " invisible",
    " hidden",
];

fn parse_column(detail: &str) -> Column<'_> {
    let (head, default) = match scan(detail, |s| s.starts_with(" default ")) {
        Some(i) => (&detail[..i], Some(&detail[i + " default ".len()..])),
        None => match detail.strip_prefix("default ") {
            Some(d) => ("", Some(d)),
            None => (detail, None),
        },
    };
    let split = scan(head, |s| ATTRIBUTES.iter().any(|a| s.starts_with(a))).unwrap_or(head.len());
    let ty = &head[..split];
    let rest = &head[split..];
    let (not_null, attributes) = match rest.strip_prefix(" not null") {
        Some(r) => (true, r.trim()),
        None => (false, rest.trim()),
    };
    Column {
        ty,
        not_null,
        attributes,
        default,
    }
}

pub(super) fn column_changes(name: &str, a: &str, b: &str) -> Vec<String> {
    let (a, b) = (parse_column(a), parse_column(b));
    let mut out = Vec::new();
    if a.ty != b.ty {
        out.push(format!("column `{name}`: {} -> {}", a.ty, b.ty));
    }
    if a.not_null != b.not_null {
        out.push(if b.not_null {
            format!("column `{name}` is now not null")
        } else {
            format!("column `{name}` is now nullable")
        });
    }
    if a.attributes != b.attributes {
        let show = |s: &str| {
            if s.is_empty() {
                "(none)".to_owned()
            } else {
                s.to_owned()
            }
        };
        out.push(format!(
            "column `{name}` changed: {} -> {}",
            show(a.attributes),
            show(b.attributes)
        ));
    }
    match (a.default, b.default) {
        (Some(x), Some(y)) if x != y => {
            out.push(format!("default of `{name}` changed: {}", describe(x, y)))
        }
        (None, Some(y)) => out.push(format!("default of `{name}` added: {y}")),
        (Some(x), None) => out.push(format!("default of `{name}` removed (was {x})")),
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_split_into_parts() {
        assert_eq!(
            parse_column("character varying(36) not null default 'a default b'::text"),
            Column {
                ty: "character varying(36)",
                not_null: true,
                attributes: "",
                default: Some("'a default b'::text"),
            }
        );
        assert_eq!(
            parse_column("int(11) not null auto_increment"),
            Column {
                ty: "int(11)",
                not_null: true,
                attributes: "auto_increment",
                default: None,
            }
        );
        assert_eq!(
            parse_column("enum('a not null','b') collate utf8mb4_bin default 'a not null'"),
            Column {
                ty: "enum('a not null','b')",
                not_null: false,
                attributes: "collate utf8mb4_bin",
                default: Some("'a not null'"),
            }
        );
        assert_eq!(parse_column("").ty, "");
    }
}
