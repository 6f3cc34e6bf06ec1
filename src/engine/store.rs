//! The durable job registry: one SQLite row per job (bundled SQLite, WAL), written before
//! each network step so that a crash or an unmount loses nothing and bills nothing twice.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use super::job::{Job, JobId};

pub struct Store {
    conn: Connection,
}

#[derive(Debug, thiserror::Error)]
#[error("job store: {0}")]
pub struct StoreError(#[from] rusqlite::Error);

impl Store {
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let conn = Connection::open(path)?;
        // WAL + FULL: every commit is on disk before the network call it precedes, so even a
        // power loss cannot roll a job back to before its create was sent.
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Rows are read once at mount and then written one at a time by id: a small page
        // cache does, and SQLite's default (2 MiB) counts in the daemon's memory at 10,000 jobs.
        conn.pragma_update(None, "cache_size", -512)?;
        // A job is small: one JSON document per row, written whole at each step. AUTOINCREMENT:
        // ids (and so job folders) are never reused.
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL UNIQUE,
                data TEXT NOT NULL
            );",
        )?;
        Ok(Store { conn })
    }

    /// Inserts a new job under the id it was given (see `last_id`).
    pub fn insert(&self, job: &Job) -> Result<(), StoreError> {
        self.conn.execute(
            "INSERT INTO jobs (id, name, data) VALUES (?1, ?2, ?3)",
            params![job.id, job.name, to_json(job)],
        )?;
        Ok(())
    }

    /// The highest id ever used, deleted jobs included: new ids start above it, so a job
    /// folder's id is never reused.
    pub fn last_id(&self) -> Result<JobId, StoreError> {
        let seq: Option<JobId> = self
            .conn
            .query_row(
                "SELECT seq FROM sqlite_sequence WHERE name = 'jobs'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let max: Option<JobId> = self
            .conn
            .query_row("SELECT MAX(id) FROM jobs", [], |r| r.get(0))?;
        Ok(seq.unwrap_or(0).max(max.unwrap_or(0)))
    }

    /// Writes the whole job in one statement, so each step is atomic.
    pub fn save(&self, job: &Job) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE jobs SET name = ?2, data = ?3 WHERE id = ?1",
            params![job.id, job.name, to_json(job)],
        )?;
        Ok(())
    }

    pub fn delete(&self, id: JobId) -> Result<(), StoreError> {
        self.conn
            .execute("DELETE FROM jobs WHERE id = ?1", params![id])?;
        Ok(())
    }

    pub fn all(&self) -> Result<Vec<Job>, StoreError> {
        Ok(self.load()?.0)
    }

    /// Every job that reads back, and the ids of every row (readable or not). A row that does
    /// not read (written by another version, or damaged) is logged and left alone, never a panic.
    pub fn load(&self) -> Result<(Vec<Job>, std::collections::HashSet<JobId>), StoreError> {
        let mut stmt = self.conn.prepare("SELECT id, data FROM jobs ORDER BY id")?;
        let mut rows = stmt.query([])?;
        let mut ids = std::collections::HashSet::new();
        let mut jobs = Vec::new();
        // Each row is parsed from SQLite's own buffer as it is stepped: no copy of every row's
        // text is held at once.
        while let Some(row) = rows.next()? {
            let id: JobId = row.get(0)?;
            ids.insert(id);
            let data = row.get_ref(1)?;
            let parsed = match data.as_str() {
                Ok(text) => from_json(text),
                Err(e) => Err(StoreError(e.into())),
            };
            match parsed {
                Ok(mut job) => {
                    job.drop_spent_urls();
                    jobs.push(job)
                }
                Err(e) => log::error!("job {id}: cannot read its record, leaving it alone: {e}"),
            }
        }
        Ok((jobs, ids))
    }
}

fn to_json(job: &Job) -> String {
    serde_json::to_string(job).expect("serializable")
}

fn from_json(data: &str) -> Result<Job, StoreError> {
    serde_json::from_str(data).map_err(|e| {
        StoreError(rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            Box::new(e),
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::job::{InputFile, JobStatus, OutputFile, Stage};
    use serde_json::json;

    #[test]
    fn jobs_round_trip_through_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let mut job = Job::new(
            "holiday".into(),
            crate::api::catalog::tool("ai-image-upscaler").unwrap(),
            crate::engine::job::Source::File,
        );
        job.inputs.push(InputFile {
            name: "holiday.jpg".into(),
            path: "/x/holiday.jpg".into(),
            remote: None,
        });
        job.id = store.last_id().unwrap() + 1;
        store.insert(&job).unwrap();
        assert_eq!(store.last_id().unwrap(), job.id);
        job.stage = Stage::Created;
        job.status = JobStatus::Complete;
        job.project_id = Some("cxyz".into());
        job.request = Some(json!({"scale_factor": 2}).into());
        job.outputs.push(OutputFile {
            name: "output.png".into(),
            url: "http://x/output.png".into(),
            done: true,
            removed: false,
            size: 10,
            mtime: Some(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(7)),
        });
        store.save(&job).unwrap();
        drop(store);

        let store = Store::open(&dir.path().join("jobs.db")).unwrap();
        let back = store.all().unwrap().pop().unwrap();
        assert_eq!(back.stage, Stage::Created);
        // A downloaded output's signed URL is not kept in memory (it expires anyway).
        let mut spent = job.outputs.clone();
        spent[0].url.clear();
        assert_eq!(back.outputs, spent);
        assert_eq!(back.request, job.request);
        assert_eq!(store.all().unwrap().len(), 1);
        store.delete(job.id).unwrap();
        assert!(store.all().unwrap().is_empty());
    }
}
