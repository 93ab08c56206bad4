//! What a snapshot knows about each pulled table: columns with their
//! Postgres types, keys and constraints, exactly as the source catalog
//! described them.

use serde::{Deserialize, Serialize};

use crate::types::Storage;

/// Why a table is in the snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TableRole {
    /// Must be byte-identical after a push (new rows aside).
    Protected,
    /// Read-only input of the migration (`dh_*`).
    Source,
    /// Created by the plan (`schema/target.json`).
    Target,
}

impl TableRole {
    pub fn as_str(self) -> &'static str {
        match self {
            TableRole::Protected => "protected",
            TableRole::Source => "source",
            TableRole::Target => "target",
        }
    }
    pub fn parse(s: &str) -> Option<TableRole> {
        match s {
            "protected" => Some(TableRole::Protected),
            "source" => Some(TableRole::Source),
            "target" => Some(TableRole::Target),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnMeta {
    pub name: String,
    /// 1-based position among live columns.
    pub ordinal: u32,
    /// `format_type()` text, e.g. `character varying(20)`, `text[]`.
    pub pg_type: String,
    pub not_null: bool,
    pub default: Option<String>,
    /// Expression of a `GENERATED ALWAYS AS (...) STORED` column.
    pub generated: Option<String>,
}

impl ColumnMeta {
    pub fn storage(&self) -> Storage {
        Storage::for_pg_type(&self.pg_type)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConstraintMeta {
    pub name: String,
    /// `p` primary key, `f` foreign key, `u` unique, `c` check.
    pub kind: String,
    pub columns: Vec<String>,
    pub ref_table: Option<String>,
    pub ref_columns: Vec<String>,
    /// `pg_get_constraintdef()` text.
    pub definition: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableMeta {
    pub name: String,
    pub role: TableRole,
    pub columns: Vec<ColumnMeta>,
    pub constraints: Vec<ConstraintMeta>,
}

impl TableMeta {
    pub fn primary_key(&self) -> Vec<String> {
        self.constraints
            .iter()
            .find(|c| c.kind == "p")
            .map(|c| c.columns.clone())
            .unwrap_or_default()
    }

    pub fn column(&self, name: &str) -> Option<&ColumnMeta> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.name.clone()).collect()
    }
}
