//! The outbox's SQL schema (version 2) and the migration from version 1, apart from the
//! store's operations so the table's shape and its reasons can be read in one place.

/// Version 2 stores the records clustered by lane (a `WITHOUT ROWID` table keyed by
/// `(lane, id)`): a lane's records share pages, so delivering a backlog lane by lane frees
/// whole pages instead of rewriting every page once per lane (version 1 kept the lanes
/// interleaved in id order, which made a drain write ~5 bytes per payload byte), and there is
/// no second index to write on every insert. Ids come from `sequence`, the last one handed out.
/// The price: a `WITHOUT ROWID` table packs pages less densely than a rowid table when
/// appending (1.31× against 1.15× the payload for append-only rows, measured with SQLite
/// 3.40), which is most of the 1.68 bytes written per payload byte at ingest (with payload format 2).
pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS records (
    lane       INTEGER NOT NULL CHECK (lane IN (0, 1, 2)),
    id         INTEGER NOT NULL,
    topic      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    payload    BLOB    NOT NULL,
    PRIMARY KEY (lane, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sequence (last_id INTEGER NOT NULL);
INSERT INTO sequence (last_id) SELECT 0 WHERE NOT EXISTS (SELECT 1 FROM sequence);
";

/// From version 1 (a rowid table in id order, ids from AUTOINCREMENT): the rows move into
/// the version-2 table and the last id handed out carries over.
pub(super) const MIGRATE_FROM_1: &str = "
ALTER TABLE records RENAME TO records_v1;
DROP INDEX IF EXISTS records_lane_id;
CREATE TABLE records (
    lane       INTEGER NOT NULL CHECK (lane IN (0, 1, 2)),
    id         INTEGER NOT NULL,
    topic      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    payload    BLOB    NOT NULL,
    PRIMARY KEY (lane, id)
) WITHOUT ROWID;
INSERT INTO records (lane, id, topic, created_at, payload)
    SELECT lane, id, topic, created_at, payload FROM records_v1 ORDER BY lane, id;
CREATE TABLE sequence (last_id INTEGER NOT NULL);
INSERT INTO sequence (last_id) SELECT MAX(
    COALESCE((SELECT MAX(seq) FROM sqlite_sequence WHERE name IN ('records', 'records_v1')), 0),
    COALESCE((SELECT MAX(id) FROM records_v1), 0));
DROP TABLE records_v1;
";

/// Rows per multi-row `INSERT` (5 parameters each, far below SQLite's limit of 32,766).
pub(super) const INSERT_ROWS: usize = 64;

/// `OR FAIL`: a statement that changes many rows otherwise keeps a statement journal (a
/// temporary file, written for every statement) so it can undo itself alone on a conflict.
/// Ids only grow, so no conflict happens; if one did, the error aborts the whole
/// transaction anyway.
pub(super) fn insert_sql(rows: usize) -> String {
    let mut sql =
        String::from("INSERT OR FAIL INTO records (lane, id, topic, created_at, payload) VALUES ");
    for i in 0..rows {
        sql.push_str(if i == 0 {
            "(?,?,?,?,?)"
        } else {
            ",(?,?,?,?,?)"
        });
    }
    sql
}

pub(super) fn row_params<'a>(
    rows: &'a [(i64, i64, &'a super::NewRecord)],
) -> impl Iterator<Item = &'a dyn rusqlite::ToSql> {
    rows.iter().flat_map(|(lane, id, r)| {
        [
            lane as &dyn rusqlite::ToSql,
            id,
            &r.topic,
            &r.created_at,
            &r.payload,
        ]
    })
}
