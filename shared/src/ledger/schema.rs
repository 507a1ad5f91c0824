//! The ledger's tables and diesel's history table, for diesel's query builder.

#![allow(missing_docs)] // columns are documented in the DDL (ledger/ddl.rs)

diesel::table! {
    /// Key-value facts about the target: ledger version, bound identity.
    dbsafe_meta (name) {
        /// The fact's name.
        name -> Text,
        /// Its value.
        value -> Text,
    }
}

diesel::table! {
    /// One row per run.
    dbsafe_runs (id) {
        id -> Text,
        kind -> Text,
        target -> Text,
        environment -> Text,
        operator -> Text,
        host -> Text,
        tool_version -> Text,
        git_commit -> Nullable<Text>,
        git_dirty -> Nullable<Bool>,
        started_at -> Text,
        finished_at -> Nullable<Text>,
        status -> Text,
        snapshot_id -> Nullable<Text>,
        bundle_hash -> Nullable<Text>,
        error -> Nullable<Text>,
        parent_run -> Nullable<Text>,
        restored_by -> Nullable<Text>,
        fleet_run -> Nullable<Text>,
    }
}

diesel::table! {
    /// One row per migration applied or reverted in a run.
    dbsafe_steps (run_id, seq) {
        run_id -> Text,
        seq -> Integer,
        version -> Text,
        name -> Text,
        direction -> Text,
        status -> Text,
        transactional -> Bool,
        up_checksum -> Text,
        down_checksum -> Nullable<Text>,
        started_at -> Text,
        finished_at -> Nullable<Text>,
        duration_ms -> Nullable<BigInt>,
        attempts -> Integer,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    /// The append-only audit trail.
    dbsafe_events (run_id, seq) {
        run_id -> Text,
        seq -> Integer,
        event_type -> Text,
        at -> Text,
        operator -> Nullable<Text>,
        payload -> Text,
    }
}

diesel::table! {
    /// The row count of each table a run changed, before and after it (version 3).
    dbsafe_row_counts (run_id, table_name) {
        run_id -> Text,
        table_name -> Text,
        rows_before -> Nullable<BigInt>,
        rows_after -> Nullable<BigInt>,
        estimated -> Bool,
    }
}

diesel::allow_tables_to_appear_in_same_query!(dbsafe_runs, dbsafe_steps);

diesel::table! {
    /// diesel's own table (read only: diesel_cli reads it).
    __diesel_schema_migrations (version) {
        version -> Text,
        run_on -> Timestamp,
    }
}
