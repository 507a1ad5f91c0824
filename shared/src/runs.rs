//! `cargo dbsafe runs [show RUN]`: the ledger's runs, and one run with its steps, events
//! and the row counts it changed.

use serde::Serialize;

use crate::connection::{Create, Database};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::ledger::{self, RunRow, StepRow};
use crate::run_id::RunId;
use crate::target::Target;
use crate::verify::baseline::RowChange;

/// One run in full.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    /// The run.
    pub run: RunRow,
    /// Its steps in order.
    pub steps: Vec<StepRow>,
    /// Its events in order.
    pub events: Vec<Event>,
    /// The row count of each table it changed, before and after.
    pub row_counts: Vec<RowChange>,
}

fn open(target: &Target) -> Result<Option<Database>> {
    let mut db = Database::connect(&target.url, Create::Never)?;
    Ok(ledger::exists(&mut db)?.then_some(db))
}

/// The newest runs first, at most `limit`; empty when the database has no ledger yet.
pub fn list(target: &Target, limit: i64) -> Result<Vec<RunRow>> {
    match open(target)? {
        Some(mut db) => ledger::runs(&mut db, limit),
        None => Ok(Vec::new()),
    }
}

/// One run by id (or unique id prefix); an unknown id names the runs that exist.
pub fn show(target: &Target, id: &str) -> Result<RunDetail> {
    let unknown = |known: Vec<RunRow>| {
        let known: Vec<String> = known.into_iter().map(|r| r.id.to_string()).collect();
        Error::Usage(format!(
            "no run `{id}` in the ledger of target `{}`; {}",
            target.name,
            if known.is_empty() {
                "it has no runs yet".to_owned()
            } else {
                format!("newest runs: {}", known.join(", "))
            }
        ))
    };
    let Some(mut db) = open(target)? else {
        return Err(unknown(Vec::new()));
    };
    let exact = match RunId::parse_opt(id) {
        Some(full) => ledger::run(&mut db, &full)?,
        None => None,
    };
    let run = match exact {
        Some(run) => run,
        None => {
            let all = ledger::runs(&mut db, i64::MAX)?;
            let matches: Vec<&RunRow> = all
                .iter()
                .filter(|r| r.id.as_str().starts_with(id) && !id.is_empty())
                .collect();
            match matches.as_slice() {
                [one] => (*one).clone(),
                [] => return Err(unknown(all.into_iter().take(5).collect())),
                several => {
                    let ids: Vec<&str> = several.iter().map(|r| r.id.as_str()).collect();
                    return Err(Error::Usage(format!(
                        "`{id}` is the start of several runs in the ledger of target `{}`: {}; give more of the run id",
                        target.name,
                        ids.join(", ")
                    )));
                }
            }
        }
    };
    let steps = ledger::steps(&mut db, &run.id)?;
    let events = ledger::events(&mut db, &run.id)?;
    let row_counts = ledger::row_counts(&mut db, &run.id)?;
    Ok(RunDetail {
        run,
        steps,
        events,
        row_counts,
    })
}

/// A run in a listing, with the number of migration steps it recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RunListing {
    /// The run.
    #[serde(flatten)]
    pub run: RunRow,
    /// Its migration steps (applied, reverted or failed).
    pub migrations: i64,
}

impl RunListing {
    /// An apply that found nothing to do.
    pub fn is_noop(&self) -> bool {
        self.migrations == 0 && self.run.kind == "apply" && self.run.status == "succeeded"
    }
}

/// [`list`] with each run's number of migration steps.
pub fn list_with_steps(target: &Target, limit: i64) -> Result<Vec<RunListing>> {
    let Some(mut db) = open(target)? else {
        return Ok(Vec::new());
    };
    let counts = ledger::step_counts(&mut db)?;
    Ok(ledger::runs(&mut db, limit)?
        .into_iter()
        .map(|run| RunListing {
            migrations: counts.get(&run.id).copied().unwrap_or(0),
            run,
        })
        .collect())
}
