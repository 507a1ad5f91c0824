//! PostgreSQL: the schema from pg_catalog, data hashed server-side on typed values in one
//! repeatable-read snapshot with fixed session settings.

use std::collections::BTreeMap;
use std::sync::Mutex;

use diesel::PgConnection;
use diesel::connection::{AnsiTransactionManager, SimpleConnection, TransactionManager};

use super::{Row, TableFingerprint, decimal_sum_hex, ident, is_bookkeeping, json_rows, line};
use crate::connection::{AnyConnection, Create, Database, quote};
use crate::error::{Error, Result};
use crate::target::DatabaseUrl;

/// Schemas that hold user objects.
const SCOPE: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') \
     AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%'";

/// Not created by an extension (those are listed as `extension` lines).
fn not_extension(catalog: &str, oid: &str) -> String {
    format!(
        "NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend e WHERE e.classid = '{catalog}'::regclass \
         AND e.objid = {oid} AND e.deptype = 'e')"
    )
}

/// Session settings that make text output (and so fingerprints) independent of the
/// connection's defaults; `SET LOCAL`, so they end with [`stable`]'s transaction. With
/// `row_security` off a table that row-level security would filter for this user fails
/// loudly instead of being fingerprinted partially. JIT is off: compiling the long hashing
/// expressions in every process (parallel workers included) costs more than it saves (a
/// fingerprint of 1 GB takes about 8% longer with it).
const SETTINGS: &str = "SET LOCAL TimeZone = 'UTC'; SET LOCAL DateStyle = 'ISO, YMD'; \
     SET LOCAL IntervalStyle = 'postgres'; SET LOCAL extra_float_digits = 3; \
     SET LOCAL bytea_output = 'hex'; SET LOCAL lc_monetary = 'C'; \
     SET LOCAL search_path = public; SET LOCAL statement_timeout = 0; \
     SET LOCAL row_security = off; SET LOCAL jit = off";

const READ_ONLY: &str = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY";

/// Runs `f` in a read-only repeatable-read transaction (a savepoint when the caller already
/// has a transaction) with [`SETTINGS`], then rolls it back: nothing is changed and the
/// settings do not outlive the call.
fn stable<T>(pg: &mut PgConnection, f: impl FnOnce(&mut PgConnection) -> Result<T>) -> Result<T> {
    let fail = |e: diesel::result::Error| Error::db("preparing a PostgreSQL read snapshot", e);
    let nested = AnsiTransactionManager::transaction_manager_status_mut(pg)
        .transaction_depth()
        .map_err(fail)?
        .is_some();
    if nested {
        AnsiTransactionManager::begin_transaction(pg).map_err(fail)?;
    } else {
        AnsiTransactionManager::begin_transaction_sql(pg, READ_ONLY).map_err(fail)?;
    }
    let result = pg
        .batch_execute(SETTINGS)
        .map_err(fail)
        .and_then(|()| f(pg));
    let rolled_back = AnsiTransactionManager::rollback_transaction(pg);
    let value = result?;
    rolled_back.map_err(|e| Error::db("ending a PostgreSQL read snapshot", e))?;
    Ok(value)
}

/// `name`, or `schema.name` outside `public`.
fn qualified(schema: &str, name: &str) -> String {
    if schema == "public" {
        ident(name)
    } else {
        format!("{}.{}", ident(schema), ident(name))
    }
}

/// A SQL identifier in double quotes.
fn sql_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn rows(pg: &mut PgConnection, sql: &str) -> Result<Vec<Row>> {
    json_rows(pg, sql, "reading the PostgreSQL catalog")
}

// ---------------------------------------------------------------------------------------
// Schema

/// Every schema line of the database (unsorted).
pub(super) fn schema_lines(pg: &mut PgConnection) -> Result<Vec<String>> {
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
            quote(&r.text(3))
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
        detail.push_str(&super::normalise_sql(&r.text(3)));
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
        let mut detail = super::normalise_sql(&r.text(3));
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

// ---------------------------------------------------------------------------------------
// Data

/// A user table and what hashing its rows needs.
#[derive(Debug, Clone)]
pub(super) struct Table {
    schema: String,
    name: String,
    /// Name as the fingerprints write it.
    display: String,
    /// On-disk size, to start the largest tables first.
    bytes: i64,
    columns: Vec<Column>,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    /// The type (a domain's base type) when it is a built-in, else empty.
    builtin: String,
    typmod: i64,
    not_null: bool,
}

/// A NOT VALID NOT NULL constraint on column `a` (PostgreSQL 18): `attnotnull` is set
/// though old rows may still hold NULLs, so the column is hashed as nullable.
const NOT_VALIDATED: &str = "SELECT 1 FROM pg_catalog.pg_constraint nn \
     WHERE nn.conrelid = a.attrelid AND nn.contype = 'n' AND nn.conkey[1] = a.attnum \
     AND NOT nn.convalidated";

/// The plain tables of the database (partitions included, partitioned parents and foreign
/// tables not: their rows live elsewhere), with their columns.
fn data_tables(pg: &mut PgConnection, only: Option<&str>) -> Result<Vec<Table>> {
    let sql = format!(
        "SELECT json_build_array(c.oid::bigint, n.nspname, c.relname, \
           pg_catalog.pg_relation_size(c.oid))::text AS v \
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
         WHERE c.relkind = 'r' AND {SCOPE} AND {}",
        not_extension("pg_catalog.pg_class", "c.oid")
    );
    let mut tables: BTreeMap<i64, Table> = BTreeMap::new();
    for r in rows(pg, &sql)? {
        let (schema, name) = (r.text(1), r.text(2));
        let display = qualified(&schema, &name);
        if is_bookkeeping(&name) || only.is_some_and(|o| o != display) {
            continue;
        }
        tables.insert(
            r.int(0),
            Table {
                schema,
                name,
                display,
                bytes: r.int(3),
                columns: Vec::new(),
            },
        );
    }
    if tables.is_empty() {
        return Ok(Vec::new());
    }
    let oids: Vec<String> = tables.keys().map(i64::to_string).collect();
    let sql = format!(
        "SELECT json_build_array(a.attrelid::bigint, a.attname, \
           CASE WHEN bn.nspname = 'pg_catalog' THEN bt.typname END, \
           CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END, \
           a.attnotnull AND NOT EXISTS ({NOT_VALIDATED}))::text AS v \
         FROM pg_catalog.pg_attribute a \
         JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
         JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
         JOIN pg_catalog.pg_namespace bn ON bn.oid = bt.typnamespace \
         WHERE a.attrelid IN ({}) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attrelid, a.attnum",
        oids.join(", ")
    );
    for r in rows(pg, &sql)? {
        if let Some(table) = tables.get_mut(&r.int(0)) {
            table.columns.push(Column {
                name: r.text(1),
                builtin: r.text(2),
                typmod: r.int(3),
                not_null: r.flag(4),
            });
        }
    }
    Ok(tables.into_values().collect())
}

/// Hashes one column's value into the running row hash `seed` with the type's own hash
/// function (never its text where the binary value is exact and stable across restores).
/// NULLs are hashed as a zero value; the row's NULL mask tells them apart.
fn hash_step(column: &Column, seed: &str) -> String {
    let c = format!("t.{}", sql_ident(&column.name));
    let or = |zero: &str| {
        if column.not_null {
            c.clone()
        } else {
            format!("coalesce({c}, {zero})")
        }
    };
    match column.builtin.as_str() {
        "int2" | "int4" => format!("hashint4extended({}::int4, {seed})", or("0")),
        "bool" => format!("hashint4extended({}::int4, {seed})", or("false")),
        // hashint8extended hashes the two halves XORed together: add the high half so
        // that values such as 1 and 4294967296 do not collide.
        "int8" => {
            let v = or("0");
            format!("hashint4extended(({v} >> 32)::int4, hashint8extended({v}, {seed}))")
        }
        "float4" | "float8" => format!("hashfloat8extended({}::float8, {seed})", or("0")),
        // Unconstrained numeric keeps its display scale (1.0 vs 1.00): hash the text.
        "numeric" if column.typmod >= 0 => {
            format!("hash_numeric_extended({}, {seed})", or("0"))
        }
        "text" | "varchar" | "name" => {
            format!("hashtextextended({}::text COLLATE \"C\", {seed})", or("''"))
        }
        // The same hash as its text (trailing spaces ignored) without making that text
        // (a third less time per char(n) column).
        "bpchar" => format!("hashbpcharextended({} COLLATE \"C\", {seed})", or("''")),
        // bytea's own hash function is only reachable through an array of it; a NULL
        // element would drop the seed, hence the empty value.
        "bytea" => format!("hash_array_extended(ARRAY[{}], {seed})", or("''::bytea")),
        "date" => format!("timestamp_hash_extended(coalesce({c}::timestamp, 'epoch'), {seed})"),
        // Timestamps hash like int8 (the halves XORed): a change collides only when it
        // moves the value by a multiple of 2^32 microseconds and exactly mirrors the low bits.
        "timestamp" => format!("timestamp_hash_extended({}, {seed})", or("'epoch'")),
        "timestamptz" => {
            format!("timestamp_hash_extended(coalesce({c} AT TIME ZONE 'UTC', 'epoch'), {seed})")
        }
        "time" => format!("time_hash_extended({}, {seed})", or("'00:00'")),
        "uuid" => format!(
            "uuid_hash_extended({}, {seed})",
            or("'00000000-0000-0000-0000-000000000000'")
        ),
        "jsonb" => format!("jsonb_hash_extended({}, {seed})", or("'null'")),
        // Everything else (enums, whose binary form is an OID that a restore changes;
        // intervals and citext, whose hashes ignore differences; arrays, composites,
        // extension types) by its text under the fixed session settings.
        _ => format!("hashtextextended(coalesce({c}::text, '') COLLATE \"C\", {seed})"),
    }
}

/// Columns per chained group: keeps the nesting of function calls shallow on wide tables.
const GROUP: usize = 50;

/// The per-row hash: a chain through the NULL masks and every column, each step seeded
/// with the previous one (a sum of independent column hashes would not notice values
/// trading places between rows).
fn row_hash(columns: &[Column]) -> String {
    if columns.is_empty() {
        return "1::bigint".to_owned();
    }
    // The NULL masks seed the first group.
    let mut seed = String::from("0");
    let nullable: Vec<&Column> = columns.iter().filter(|c| !c.not_null).collect();
    for chunk in nullable.chunks(30) {
        let bits: Vec<String> = chunk
            .iter()
            .enumerate()
            .map(|(i, c)| format!("((t.{} IS NULL)::int4 << {i})", sql_ident(&c.name)))
            .collect();
        seed = format!("hashint4extended({}, {seed})", bits.join(" | "));
    }
    let mut groups: Vec<String> = columns
        .chunks(GROUP)
        .enumerate()
        .map(|(g, chunk)| {
            let start = if g == 0 { seed.clone() } else { g.to_string() };
            chunk
                .iter()
                .fold(start, |expr, column| hash_step(column, &expr))
        })
        .collect();
    if groups.len() == 1 {
        return groups.remove(0);
    }
    groups.into_iter().fold(String::from("0"), |expr, group| {
        format!("hash_numeric_extended(({group})::numeric, {expr})")
    })
}

fn fingerprint(pg: &mut PgConnection, table: &Table) -> Result<TableFingerprint> {
    let sql = format!(
        "SELECT json_build_array(count(*), coalesce(sum({}), 0)::text)::text AS v FROM ONLY {}.{} t",
        row_hash(&table.columns),
        sql_ident(&table.schema),
        sql_ident(&table.name)
    );
    let context = format!("computing the checksum of table `{}`", table.display);
    let found = json_rows(pg, &sql, &context)?;
    let row = found
        .first()
        .ok_or_else(|| Error::Failed(format!("{context}: no result")))?;
    crate::progress::table_done(&table.display);
    Ok(TableFingerprint {
        table: table.display.clone(),
        rows: u64::try_from(row.int(0)).unwrap_or(0),
        hash: decimal_sum_hex(&row.text(1), &table.display)?,
    })
}

/// Fingerprints of every user table (or of the one named `only`), in one snapshot.
pub(super) fn data_fingerprints(
    pg: &mut PgConnection,
    only: Option<&str>,
) -> Result<Vec<TableFingerprint>> {
    stable(pg, |pg| {
        let tables = data_tables(pg, only)?;
        tables.iter().map(|t| fingerprint(pg, t)).collect()
    })
}

/// [`data_fingerprints`] on up to `jobs` connections sharing one exported snapshot.
pub(super) fn data_fingerprints_parallel(
    leader: &mut PgConnection,
    url: &DatabaseUrl,
    jobs: usize,
) -> Result<Vec<TableFingerprint>> {
    stable(leader, |leader| {
        let snapshot = export_snapshot(leader)?;
        let tables = data_tables(leader, None)?;
        fingerprint_tables(url, &snapshot, tables, jobs)
    })
}

fn export_snapshot(pg: &mut PgConnection) -> Result<String> {
    Ok(json_rows(
        pg,
        "SELECT json_build_array(pg_catalog.pg_export_snapshot())::text AS v",
        "exporting a PostgreSQL snapshot",
    )?
    .first()
    .map(|r| r.text(0))
    .unwrap_or_default())
}

/// Fingerprints `tables` on up to `jobs` new connections that import `snapshot` (exported
/// by a transaction that stays open until this returns); the largest tables start first.
fn fingerprint_tables(
    url: &DatabaseUrl,
    snapshot: &str,
    mut tables: Vec<Table>,
    jobs: usize,
) -> Result<Vec<TableFingerprint>> {
    // Largest last: workers pop from the end.
    tables.sort_by_key(|t| t.bytes);
    let workers = jobs.max(1).min(tables.len());
    let queue = Mutex::new(tables);
    let results = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| scope.spawn(|| worker(url, snapshot, &queue, &results)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(Error::Failed("a fingerprint worker panicked".into())))
            })
            .collect::<Result<Vec<()>>>()
    })?;
    let mut all = results.into_inner().unwrap_or_default();
    all.sort_by(|a, b| a.table.cmp(&b.table));
    Ok(all)
}

fn worker(
    url: &DatabaseUrl,
    snapshot: &str,
    queue: &Mutex<Vec<Table>>,
    results: &Mutex<Vec<TableFingerprint>>,
) -> Result<()> {
    let mut db = Database::connect(url, Create::Never)?;
    let AnyConnection::Postgresql(pg) = &mut db.conn else {
        return Err(Error::Failed("not a PostgreSQL connection".into()));
    };
    let fail = |e: diesel::result::Error| Error::db("importing the PostgreSQL snapshot", e);
    AnsiTransactionManager::begin_transaction_sql(pg, READ_ONLY).map_err(fail)?;
    pg.batch_execute(&format!(
        "SET TRANSACTION SNAPSHOT {}; {SETTINGS}",
        quote(snapshot)
    ))
    .map_err(fail)?;
    let outcome = (|| loop {
        let next = queue.lock().ok().and_then(|mut q| q.pop());
        let Some(table) = next else {
            return Ok(());
        };
        let done = fingerprint(pg, &table)?;
        if let Ok(mut all) = results.lock() {
            all.push(done);
        }
    })();
    let _ = AnsiTransactionManager::rollback_transaction(pg);
    outcome
}

/// One moment of a PostgreSQL database that several sessions read: a read-only
/// repeatable-read transaction on its own connection, with the fixed session settings, whose
/// snapshot is exported (`pg_export_snapshot`). Other sessions import it by its
/// [`SharedSnapshot::id`] (`pg_dump --snapshot=ID`, the workers of
/// [`SharedSnapshot::data_job`]) and see exactly the data and catalog this one sees; it
/// stays valid until [`SharedSnapshot::end`] (or drop), so keep it open until every reader
/// has started.
pub struct SharedSnapshot {
    db: Database,
    id: String,
}

impl SharedSnapshot {
    /// Opens a connection to `url`, begins the transaction and exports its snapshot.
    pub fn begin(url: &DatabaseUrl) -> Result<SharedSnapshot> {
        let mut db = Database::connect(url, Create::Never)?;
        let AnyConnection::Postgresql(pg) = &mut db.conn else {
            return Err(Error::Failed(
                "a shared snapshot needs a PostgreSQL database".into(),
            ));
        };
        let fail = |e: diesel::result::Error| Error::db("preparing a PostgreSQL read snapshot", e);
        AnsiTransactionManager::begin_transaction_sql(pg, READ_ONLY).map_err(fail)?;
        // The transaction sits idle while pg_dump runs: a server-wide idle timeout must not
        // end it (and with it the snapshot) half-way.
        pg.batch_execute(&format!(
            "{SETTINGS}; SET LOCAL idle_in_transaction_session_timeout = 0"
        ))
        .map_err(fail)?;
        let id = export_snapshot(pg)?;
        Ok(SharedSnapshot { db, id })
    }

    /// The exported snapshot's id, for `SET TRANSACTION SNAPSHOT` or `pg_dump --snapshot`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The connection inside the snapshot: what it reads (the schema and data fingerprints
    /// included, which nest in savepoints) is that moment. It must only read.
    pub fn database(&mut self) -> &mut Database {
        &mut self.db
    }

    /// Lists the tables to fingerprint (in the snapshot) and returns the work, which
    /// [`DataJob::run`] does on connections of its own: on another thread while this
    /// connection is busy, or while `pg_dump --snapshot` runs.
    pub fn data_job(&mut self) -> Result<DataJob> {
        let AnyConnection::Postgresql(pg) = &mut self.db.conn else {
            return Err(Error::Failed("not a PostgreSQL connection".into()));
        };
        let tables = stable(pg, |pg| data_tables(pg, None))?;
        Ok(DataJob {
            url: self.db.url().clone(),
            snapshot: self.id.clone(),
            tables,
        })
    }

    /// Ends the transaction (the snapshot can no longer be imported).
    pub fn end(mut self) -> Result<()> {
        if let AnyConnection::Postgresql(pg) = &mut self.db.conn {
            AnsiTransactionManager::rollback_transaction(pg)
                .map_err(|e| Error::db("ending a PostgreSQL read snapshot", e))?;
        }
        Ok(())
    }
}

/// Every table's data fingerprint in a [`SharedSnapshot`], to compute on other connections.
#[derive(Clone)]
pub struct DataJob {
    url: DatabaseUrl,
    snapshot: String,
    tables: Vec<Table>,
}

impl DataJob {
    /// The fingerprints, sorted by table name, on up to `jobs` connections that import the
    /// snapshot (which must still be open when this starts).
    pub fn run(self, jobs: usize) -> Result<Vec<TableFingerprint>> {
        if self.tables.is_empty() {
            return Ok(Vec::new());
        }
        fingerprint_tables(&self.url, &self.snapshot, self.tables, jobs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str, builtin: &str, not_null: bool) -> Column {
        Column {
            name: name.into(),
            builtin: builtin.into(),
            typmod: -1,
            not_null,
        }
    }

    #[test]
    fn row_hash_chains_columns_and_masks_nulls() {
        let expr = row_hash(&[column("id", "int4", true), column("Name", "text", false)]);
        assert_eq!(
            expr,
            "hashtextextended(coalesce(t.\"Name\", '')::text COLLATE \"C\", \
             hashint4extended(t.\"id\"::int4, \
             hashint4extended(((t.\"Name\" IS NULL)::int4 << 0), 0)))"
        );
        assert_eq!(row_hash(&[]), "1::bigint");
    }

    #[test]
    fn wide_tables_are_hashed_in_groups() {
        let columns: Vec<Column> = (0..120)
            .map(|i| column(&format!("c{i}"), "int4", true))
            .collect();
        let expr = row_hash(&columns);
        assert_eq!(expr.matches("hash_numeric_extended(").count(), 3);
        assert!(expr.contains("hashint4extended(t.\"c50\"::int4, 1)"));
        assert_eq!(expr.matches("hashint4extended(").count(), 120);
    }

    #[test]
    fn names_outside_public_are_qualified() {
        assert_eq!(qualified("public", "users"), "users");
        assert_eq!(qualified("audit", "Log"), "audit.Log");
        assert_eq!(sql_ident("a\"b"), "\"a\"\"b\"");
    }
}
