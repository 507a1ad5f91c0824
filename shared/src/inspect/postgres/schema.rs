//! PostgreSQL's schema lines, read from pg_catalog: schemas, extensions, tables, columns,
//! constraints, indexes, views, functions, triggers, policies, sequences and types.

use std::collections::BTreeMap;

use diesel::PgConnection;

use super::{SCOPE, dialect, not_extension, qualified, rows, stable};
use crate::error::Result;
use crate::inspect::{ident, is_bookkeeping, line, normalise_sql};

/// Every schema line of the database (unsorted).
pub(crate) fn schema_lines(pg: &mut PgConnection) -> Result<Vec<String>> {
    stable(pg, |pg| {
        let mut out = Vec::new();
        schemas(pg, &mut out)?;
        tables(pg, &mut out)?;
        columns(pg, &mut out)?;
        constraints(pg, &mut out)?;
        indexes(pg, &mut out)?;
        views(pg, &mut out)?;
        functions(pg, &mut out)?;
        triggers(pg, &mut out)?;
        policies(pg, &mut out)?;
        sequences(pg, &mut out)?;
        types(pg, &mut out)?;
        Ok(out)
    })
}

fn schemas(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname)::text AS v FROM pg_catalog.pg_namespace n \
         WHERE {SCOPE} AND n.nspname <> 'public' AND {}",
        not_extension("pg_catalog.pg_namespace", "n.oid")
    );
    for r in rows(pg, &sql)? {
        out.push(line("schema", &ident(&r.text(0)), ""));
    }
    // Owner, privileges and comment of every schema, `public` included: a restore that
    // lost `COMMENT ON SCHEMA public` must not prove equal.
    let sql = format!(
        "SELECT json_build_array(n.nspname, pg_catalog.pg_get_userbyid(n.nspowner),            COALESCE(n.nspacl::text, ''), COALESCE(pg_catalog.obj_description(n.oid, 'pg_namespace'), ''))::text AS v          FROM pg_catalog.pg_namespace n WHERE {SCOPE} AND {}",
        not_extension("pg_catalog.pg_namespace", "n.oid")
    );
    for r in rows(pg, &sql)? {
        let detail = format!(
            "owner {}, privileges {}, comment {}",
            r.text(1),
            r.text(2),
            dialect().literal(&r.text(3))
        );
        out.push(line("schema-props", &ident(&r.text(0)), &detail));
    }
    let sql = "SELECT json_build_array(e.extname, e.extversion, n.nspname)::text AS v \
               FROM pg_catalog.pg_extension e JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace";
    for r in rows(pg, sql)? {
        let detail = format!("version {}, schema {}", r.text(1), ident(&r.text(2)));
        out.push(line("extension", &ident(&r.text(0)), &detail));
    }
    Ok(())
}

fn tables(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, c.relname, c.relkind, c.relpersistence, \
           CASE WHEN c.relkind = 'p' THEN pg_catalog.pg_get_partkeydef(c.oid) END, \
           CASE WHEN c.relispartition THEN pg_catalog.pg_get_expr(c.relpartbound, c.oid) END, \
           (SELECT string_agg(i.inhparent::regclass::text, ', ' ORDER BY i.inhseqno) \
              FROM pg_catalog.pg_inherits i WHERE i.inhrelid = c.oid), \
           array_to_string(c.reloptions, ', '), c.relrowsecurity, c.relforcerowsecurity)::text AS v \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('r', 'p', 'f') AND {SCOPE} AND {}",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    for r in rows(pg, &sql)? {
        let table = r.text(1);
        if is_bookkeeping(&table) {
            continue;
        }
        let name = qualified(&r.text(0), &table);
        let mut detail = Vec::new();
        if r.text(2) == "f" {
            detail.push("foreign".to_owned());
        }
        if r.text(3) == "u" {
            detail.push("unlogged".to_owned());
        }
        if let Some(key) = r.non_empty(4) {
            detail.push(format!("partitioned by {key}"));
        }
        match (r.non_empty(5), r.non_empty(6)) {
            (Some(bound), parent) => detail.push(format!(
                "partition of {} {bound}",
                parent.unwrap_or_default()
            )),
            (None, Some(parents)) => detail.push(format!("inherits {parents}")),
            (None, None) => {}
        }
        if let Some(options) = r.non_empty(7) {
            detail.push(format!("with ({options})"));
        }
        out.push(line("table", &name, &detail.join(", ")));
        let rls: Vec<&str> = [(r.flag(8), "enabled"), (r.flag(9), "forced")]
            .into_iter()
            .filter_map(|(on, word)| on.then_some(word))
            .collect();
        if !rls.is_empty() {
            out.push(line("rls", &name, &rls.join(", ")));
        }
    }
    Ok(())
}

fn columns(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, c.relname, a.attname, \
           pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull, \
           CASE WHEN a.attcollation <> t.typcollation THEN co.collname END, \
           a.attidentity, a.attgenerated, pg_catalog.pg_get_expr(d.adbin, d.adrelid))::text AS v \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_class c ON c.oid = a.attrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum \
         LEFT JOIN pg_catalog.pg_collation co ON co.oid = a.attcollation \
         WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'f') \
           AND {SCOPE} AND {} \
         ORDER BY n.nspname, c.relname, a.attnum",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    let mut order: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for r in rows(pg, &sql)? {
        if is_bookkeeping(&r.text(1)) {
            continue;
        }
        let table = qualified(&r.text(0), &r.text(1));
        let column = ident(&r.text(2));
        let mut detail = r.text(3);
        if r.flag(4) {
            detail.push_str(" not null");
        }
        if let Some(collation) = r.non_empty(5) {
            detail.push_str(&format!(" collate {}", ident(&collation)));
        }
        match r.text(6).as_str() {
            "a" => detail.push_str(" identity always"),
            "d" => detail.push_str(" identity by default"),
            _ => {}
        }
        // attgenerated: `s` stored, `v` virtual (PostgreSQL 18), else a plain default.
        let expr = r.non_empty(8);
        match (r.text(7).as_str(), expr) {
            ("s", expr) => detail.push_str(&format!(
                " generated always as ({}) stored",
                expr.unwrap_or_default()
            )),
            ("v", expr) => detail.push_str(&format!(
                " generated always as ({}) virtual",
                expr.unwrap_or_default()
            )),
            (_, Some(default)) => detail.push_str(&format!(" default {default}")),
            (_, None) => {}
        }
        out.push(line("column", &format!("{table}.{column}"), &detail));
        order.entry(table).or_default().push(column);
    }
    for (table, columns) in order {
        out.push(line("columns", &table, &columns.join(", ")));
    }
    Ok(())
}

/// Table constraints; from PostgreSQL 18 on NOT NULL constraints too (`n`: rows of
/// pg_constraint with a name, NO INHERIT and NOT VALID), which older servers do not have.
fn constraints(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, c.relname, con.conname, \
           pg_catalog.pg_get_constraintdef(con.oid, true))::text AS v \
         FROM pg_catalog.pg_constraint con \
         JOIN pg_catalog.pg_class c ON c.oid = con.conrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE con.contype IN ('p', 'u', 'f', 'c', 'x', 'n') AND {SCOPE} AND {}",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    for r in rows(pg, &sql)? {
        if is_bookkeeping(&r.text(1)) {
            continue;
        }
        let name = format!(
            "{}.{}",
            qualified(&r.text(0), &r.text(1)),
            ident(&r.text(2))
        );
        out.push(line("constraint", &name, &r.text(3)));
    }
    Ok(())
}

fn indexes(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    // The definition from ` USING ` on: without the index's own name and the table's
    // schema-qualified name, which the line already carries.
    let sql = format!(
        "SELECT json_build_array(n.nspname, ic.relname, c.relname, i.indisunique, \
           i.indisprimary, i.indisvalid, \
           substr(pg_catalog.pg_get_indexdef(i.indexrelid), \
                  strpos(pg_catalog.pg_get_indexdef(i.indexrelid), ' USING ') + 1))::text AS v \
         FROM pg_catalog.pg_index i \
         JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid \
         JOIN pg_catalog.pg_class c ON c.oid = i.indrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE {SCOPE} AND {}",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    for r in rows(pg, &sql)? {
        if is_bookkeeping(&r.text(2)) {
            continue;
        }
        let schema = r.text(0);
        let mut detail = format!("on {}", qualified(&schema, &r.text(2)));
        if r.flag(4) {
            detail.push_str(" primary");
        } else if r.flag(3) {
            detail.push_str(" unique");
        }
        detail.push(' ');
        detail.push_str(&r.text(6));
        if !r.flag(5) {
            detail.push_str(" invalid");
        }
        out.push(line("index", &qualified(&schema, &r.text(1)), &detail));
    }
    Ok(())
}

fn views(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, c.relname, c.relkind, \
           pg_catalog.pg_get_viewdef(c.oid, true), array_to_string(c.reloptions, ', '))::text AS v \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind IN ('v', 'm') AND {SCOPE} AND {}",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    for r in rows(pg, &sql)? {
        let kind = if r.text(2) == "m" { "matview" } else { "view" };
        let mut detail = String::new();
        if let Some(options) = r.non_empty(4) {
            detail.push_str(&format!("with ({options}) "));
        }
        detail.push_str(&normalise_sql(&r.text(3)));
        out.push(line(kind, &qualified(&r.text(0), &r.text(1)), &detail));
    }
    Ok(())
}

fn functions(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, p.proname, pg_catalog.oidvectortypes(p.proargtypes), \
           p.prokind, CASE WHEN p.prokind <> 'a' THEN pg_catalog.pg_get_function_result(p.oid) END, \
           l.lanname, \
           CASE WHEN p.prokind = 'a' THEN md5(concat_ws(' ', a.aggkind, a.aggtransfn::text, \
               a.aggfinalfn::text, a.aggcombinefn::text, a.aggtranstype::regtype::text, a.agginitval)) \
             ELSE md5(pg_catalog.pg_get_functiondef(p.oid)) END)::text AS v \
         FROM pg_catalog.pg_proc p \
         JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace \
         JOIN pg_catalog.pg_language l ON l.oid = p.prolang \
         LEFT JOIN pg_catalog.pg_aggregate a ON a.aggfnoid = p.oid \
         WHERE {SCOPE} AND {}",
        not_extension("pg_catalog.pg_proc", "p.oid")
    );
    for r in rows(pg, &sql)? {
        let kind = match r.text(3).as_str() {
            "a" => "aggregate",
            "p" => "procedure",
            _ => "function",
        };
        let name = format!("{}({})", qualified(&r.text(0), &r.text(1)), r.text(2));
        let mut detail = Vec::new();
        if let Some(result) = r.non_empty(4) {
            detail.push(format!("returns {result}"));
        }
        detail.push(format!("language {}", r.text(5)));
        detail.push(format!("md5 {}", r.text(6)));
        out.push(line(kind, &name, &detail.join(", ")));
    }
    Ok(())
}

fn triggers(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, c.relname, t.tgname, \
           pg_catalog.pg_get_triggerdef(t.oid, true), t.tgenabled)::text AS v \
         FROM pg_catalog.pg_trigger t \
         JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE NOT t.tgisinternal AND {SCOPE}"
    );
    for r in rows(pg, &sql)? {
        if is_bookkeeping(&r.text(1)) {
            continue;
        }
        let name = format!(
            "{}.{}",
            qualified(&r.text(0), &r.text(1)),
            ident(&r.text(2))
        );
        let mut detail = normalise_sql(&r.text(3));
        match r.text(4).as_str() {
            "D" => detail.push_str(", disabled"),
            "R" => detail.push_str(", enabled replica"),
            "A" => detail.push_str(", enabled always"),
            _ => {}
        }
        out.push(line("trigger", &name, &detail));
    }
    Ok(())
}

fn policies(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, c.relname, p.polname, p.polpermissive, p.polcmd, \
           (SELECT string_agg(CASE WHEN r = 0 THEN 'public' \
                 ELSE quote_ident(pg_catalog.pg_get_userbyid(r)) END, ', ' ORDER BY 1) \
              FROM unnest(p.polroles) r), \
           pg_catalog.pg_get_expr(p.polqual, p.polrelid), \
           pg_catalog.pg_get_expr(p.polwithcheck, p.polrelid))::text AS v \
         FROM pg_catalog.pg_policy p \
         JOIN pg_catalog.pg_class c ON c.oid = p.polrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE {SCOPE}"
    );
    for r in rows(pg, &sql)? {
        let name = format!(
            "{}.{}",
            qualified(&r.text(0), &r.text(1)),
            ident(&r.text(2))
        );
        let command = match r.text(4).as_str() {
            "r" => "SELECT",
            "a" => "INSERT",
            "w" => "UPDATE",
            "d" => "DELETE",
            _ => "ALL",
        };
        let mut detail = format!(
            "{} for {command} to {}",
            if r.flag(3) {
                "permissive"
            } else {
                "restrictive"
            },
            r.text(5)
        );
        if let Some(using) = r.non_empty(6) {
            detail.push_str(&format!(" using ({using})"));
        }
        if let Some(check) = r.non_empty(7) {
            detail.push_str(&format!(" with check ({check})"));
        }
        out.push(line("policy", &name, &detail));
    }
    Ok(())
}

fn sequences(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let sql = format!(
        "SELECT json_build_array(n.nspname, c.relname, pg_catalog.format_type(s.seqtypid, NULL), \
           s.seqstart::text, s.seqincrement::text, s.seqmin::text, s.seqmax::text, \
           s.seqcache::text, s.seqcycle, dn.nspname, dc.relname, da.attname)::text AS v \
         FROM pg_catalog.pg_sequence s \
         JOIN pg_catalog.pg_class c ON c.oid = s.seqrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         LEFT JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_class'::regclass \
           AND d.objid = c.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass \
           AND d.deptype IN ('a', 'i') \
         LEFT JOIN pg_catalog.pg_class dc ON dc.oid = d.refobjid \
         LEFT JOIN pg_catalog.pg_namespace dn ON dn.oid = dc.relnamespace \
         LEFT JOIN pg_catalog.pg_attribute da ON da.attrelid = d.refobjid AND da.attnum = d.refobjsubid \
         WHERE {SCOPE} AND {}",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    for r in rows(pg, &sql)? {
        let owner_table = r.non_empty(10);
        if owner_table.as_deref().is_some_and(is_bookkeeping) {
            continue;
        }
        let mut detail = format!(
            "{} start {} increment {} min {} max {} cache {}",
            r.text(2),
            r.text(3),
            r.text(4),
            r.text(5),
            r.text(6),
            r.text(7)
        );
        if r.flag(8) {
            detail.push_str(" cycle");
        }
        if let Some(table) = owner_table {
            detail.push_str(&format!(
                " owned by {}.{}",
                qualified(&r.text(9), &table),
                ident(&r.text(11))
            ));
        }
        out.push(line(
            "sequence",
            &qualified(&r.text(0), &r.text(1)),
            &detail,
        ));
    }
    Ok(())
}

fn types(pg: &mut PgConnection, out: &mut Vec<String>) -> Result<()> {
    let from = format!(
        "FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         WHERE {SCOPE} AND {}",
        not_extension("pg_catalog.pg_type", "t.oid")
    );
    let enums = format!(
        "SELECT json_build_array(n.nspname, t.typname, \
           (SELECT json_agg(e.enumlabel ORDER BY e.enumsortorder) \
              FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid))::text AS v \
         {from} AND t.typtype = 'e'"
    );
    for r in rows(pg, &enums)? {
        let labels: Vec<String> = r.list(2).iter().map(|l| ident(l)).collect();
        out.push(line(
            "enum",
            &qualified(&r.text(0), &r.text(1)),
            &labels.join(", "),
        ));
    }
    let domains = format!(
        "SELECT json_build_array(n.nspname, t.typname, \
           pg_catalog.format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typdefault, \
           (SELECT json_agg(pg_catalog.pg_get_constraintdef(con.oid, true) ORDER BY con.conname) \
              FROM pg_catalog.pg_constraint con WHERE con.contypid = t.oid))::text AS v \
         {from} AND t.typtype = 'd'"
    );
    for r in rows(pg, &domains)? {
        let mut detail = r.text(2);
        if r.flag(3) {
            detail.push_str(" not null");
        }
        for check in r.list(5) {
            detail.push(' ');
            detail.push_str(&check);
        }
        if let Some(default) = r.non_empty(4) {
            detail.push_str(&format!(" default {default}"));
        }
        out.push(line("domain", &qualified(&r.text(0), &r.text(1)), &detail));
    }
    let composites = format!(
        "SELECT json_build_array(n.nspname, t.typname, \
           (SELECT json_agg(quote_ident(a.attname) || ' ' || \
                 pg_catalog.format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) \
              FROM pg_catalog.pg_attribute a \
              WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped))::text AS v \
         {from} AND t.typtype = 'c' \
           AND (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = t.typrelid) = 'c'"
    );
    for r in rows(pg, &composites)? {
        let detail = format!("({})", r.list(2).join(", "));
        out.push(line("type", &qualified(&r.text(0), &r.text(1)), &detail));
    }
    let ranges = format!(
        "SELECT json_build_array(n.nspname, t.typname, \
           pg_catalog.format_type(r.rngsubtype, NULL))::text AS v \
         FROM pg_catalog.pg_range r JOIN pg_catalog.pg_type t ON t.oid = r.rngtypid \
         JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace \
         WHERE {SCOPE} AND {}",
        not_extension("pg_catalog.pg_type", "t.oid")
    );
    for r in rows(pg, &ranges)? {
        let detail = format!("subtype {}", r.text(2));
        out.push(line("range", &qualified(&r.text(0), &r.text(1)), &detail));
    }
    Ok(())
}
