//! The seed files the migration inserts: the seven strategic priorities and
//! the seven operational-library files of Medical Affairs workflows
//! (DATA_MODEL.md §2 and §3).
//!
//! Layout of a seed directory:
//!
//! ```text
//! strategic_priorities.json      [ {code, name, description, color, icon, position}, ... ]
//! library/*.json                 one file per strategic priority:
//!                                { "strategic_priority": "SP01",
//!                                  "source": "SP01 Operational Library",
//!                                  "jtbds": [ { "jtbd_id": "JTBD-MA-001", "title": "...",
//!                                               "workflows": [ {workflow object}, ... ] } ] }
//! ```
//!
//! Files are walked by hand rather than through `#[derive(Deserialize)]`:
//! serde's derive errors say "missing field `owner`" but not *where*, and a
//! seed file holds a few thousand tasks. Every error here names the file, the
//! JSON path and what to do about it.
//!
//! Only rules that hold inside one file (plus "the file's SP exists" and "one
//! file per SP") are load errors. A JTBD listed under two priorities is legal
//! input: the rehearsal reports it as a data conflict, so the loader must not
//! hide it (see [`Seeds::jtbd_allocation`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Name of the priorities file inside a seed directory.
pub const PRIORITIES_FILE: &str = "strategic_priorities.json";
/// Name of the sub-directory that holds the operational-library files.
pub const LIBRARY_DIR: &str = "library";

/// One row of `strategic_priorities` (minus `id`/`created_at`, which the
/// migration derives).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StrategicPriority {
    pub code: String,
    pub name: String,
    pub description: String,
    pub color: String,
    pub icon: String,
    pub position: i64,
}

/// One operational-library file: the workflows of one strategic priority.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryFile {
    /// Where the file was read from (for embedded seeds: its path relative
    /// to the crate root). Reports name it, so it is kept next to the data.
    #[serde(skip)]
    pub path: PathBuf,
    /// `SP01` … `SP07`; always present in the loaded priorities.
    pub strategic_priority: String,
    /// `"{strategic_priority} Operational Library"`.
    pub source: String,
    pub jtbds: Vec<LibraryJtbd>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryJtbd {
    /// `JTBD-MA-NNN`.
    pub jtbd_id: String,
    pub title: String,
    pub workflows: Vec<LibraryWorkflow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LibraryWorkflow {
    /// `WF-NNN-A`; unique inside its file only.
    pub workflow_id: String,
    pub workflow_name: String,
    /// A JTBD listed in the same file (not necessarily the enclosing one).
    pub jtbd_id: String,
    pub duration: String,
    pub total_effort: String,
    pub phase_count: u64,
    pub task_count: u64,
    pub source: String,
    /// Present on SP02 onward; the loader does not require it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pillar: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pillar_name: Option<String>,
    pub phases: Vec<LibraryPhase>,
    /// The workflow object exactly as parsed (key order and number text
    /// preserved). The migration stores this, not a re-serialisation of the
    /// typed fields, in `workflows.definition`, so fields this struct does
    /// not know about survive.
    #[serde(skip)]
    pub raw: Value,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryPhase {
    pub phase_number: u64,
    pub phase_name: String,
    pub duration: String,
    pub tasks: Vec<LibraryTask>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LibraryTask {
    pub task_id: String,
    pub task_name: String,
    pub duration: String,
    pub owner: String,
    pub outputs: Vec<String>,
    pub tools: Vec<String>,
}

/// Everything under a seed directory, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Seeds {
    /// In file order.
    pub priorities: Vec<StrategicPriority>,
    /// Sorted by strategic-priority code.
    pub files: Vec<LibraryFile>,
}

impl Seeds {
    /// Every (JTBD code, SP code, file) pair, files in SP order and JTBDs in
    /// file order. A JTBD listed in two files appears twice: deciding what
    /// that means is the rehearsal's job, not the loader's.
    pub fn jtbd_allocation(&self) -> Vec<(String, String, String)> {
        self.files
            .iter()
            .flat_map(|file| {
                let label = file.path.display().to_string();
                file.jtbds.iter().map(move |jtbd| {
                    (
                        jtbd.jtbd_id.clone(),
                        file.strategic_priority.clone(),
                        label.clone(),
                    )
                })
            })
            .collect()
    }

    /// Every workflow with the file it came from, in file order.
    pub fn workflows(&self) -> impl Iterator<Item = (&LibraryFile, &LibraryWorkflow)> {
        self.files
            .iter()
            .flat_map(|file| file.workflows().map(move |wf| (file, wf)))
    }

    pub fn priority(&self, code: &str) -> Option<&StrategicPriority> {
        self.priorities.iter().find(|p| p.code == code)
    }
}

impl LibraryFile {
    /// The workflows of every JTBD of this file, in file order.
    pub fn workflows(&self) -> impl Iterator<Item = &LibraryWorkflow> {
        self.jtbds.iter().flat_map(|j| j.workflows.iter())
    }
}

/// A seed file that cannot be used. `Display` reads
/// `FILE: PATH: REASON. Fix: WHAT TO DO`.
#[derive(Debug, thiserror::Error)]
#[error("{file}: {}{kind}. Fix: {}", path_prefix(.path), .kind.hint())]
pub struct SeedError {
    /// The file (or directory) at fault, as it was opened.
    pub file: String,
    /// JSON path inside the file, e.g. `jtbds[3].workflows[0].phases[1]`;
    /// empty when the problem is the whole file.
    pub path: String,
    pub kind: SeedErrorKind,
}

fn path_prefix(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}: ")
    }
}

/// Why a seed file was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SeedErrorKind {
    #[error("cannot read: {0}")]
    Io(#[source] std::io::Error),
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("missing required field `{field}`")]
    MissingField { field: String },
    #[error("wrong type: expected {expected}, found {found}")]
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    #[error("`{value}` is not a Medical Affairs JTBD code (expected JTBD-MA-NNN, three digits)")]
    BadJtbdCode { value: String },
    #[error("duplicate strategic priority code `{code}` (already used by {first})")]
    DuplicatePriority { code: String, first: String },
    #[error("no strategic priorities defined")]
    NoPriorities,
    #[error("no library files (*.json) found")]
    NoLibraryFiles,
}

impl SeedErrorKind {
    /// What the user should do about it.
    pub fn hint(&self) -> &'static str {
        use SeedErrorKind::*;
        match self {
            Io(_) => "check that the seed directory holds strategic_priorities.json and library/*.json and that they are readable",
            Json { .. } => "correct the JSON syntax at that position",
            MissingField { .. } => "add the field; the workflow shape is documented in DATA_MODEL.md §3",
            WrongType { .. } => "change the value to the expected JSON type",
            BadJtbdCode { .. } => "write Medical Affairs JTBD codes as JTBD-MA-001 … JTBD-MA-105",
            DuplicatePriority { .. } => "each strategic priority code must be defined once and have exactly one library file; remove or merge the duplicate",
            NoPriorities => "list SP01 … SP07 in strategic_priorities.json",
            NoLibraryFiles => "put the seven operational-library files (one per strategic priority) into the library/ directory",
        }
    }
}

/// Read and validate `dir/strategic_priorities.json` and every
/// `dir/library/*.json` (other files in `library/` are ignored).
pub fn load_seeds(dir: &Path) -> Result<Seeds, SeedError> {
    let priorities_path = dir.join(PRIORITIES_FILE);
    let priorities_text = read_text(&priorities_path)?;

    let library_dir = dir.join(LIBRARY_DIR);
    let library_label = library_dir.display().to_string();
    let entries = std::fs::read_dir(&library_dir).map_err(|e| SeedError {
        file: library_label.clone(),
        path: String::new(),
        kind: SeedErrorKind::Io(e),
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| SeedError {
            file: library_label.clone(),
            path: String::new(),
            kind: SeedErrorKind::Io(e),
        })?;
        let path = entry.path();
        if path.extension().is_some_and(|ext| ext == "json") && path.is_file() {
            paths.push(path);
        }
    }
    // Directory order is not stable across file systems; sorting makes the
    // first reported error and the tie-break between files deterministic.
    paths.sort();

    let mut library = Vec::with_capacity(paths.len());
    for path in paths {
        let text = read_text(&path)?;
        library.push((path, text));
    }
    build(
        &priorities_path.display().to_string(),
        &priorities_text,
        library,
        &library_label,
    )
}

/// The seeds shipped in the binary, so `sandbox demo` works without a
/// checkout. Validated exactly like [`load_seeds`].
pub fn load_embedded() -> Result<Seeds, SeedError> {
    let library = EMBEDDED_LIBRARY
        .iter()
        .map(|(path, text)| (PathBuf::from(path), (*text).to_string()))
        .collect();
    build(
        EMBEDDED_PRIORITIES.0,
        EMBEDDED_PRIORITIES.1,
        library,
        "seeds/library",
    )
}

/// The shipped seed files as (path relative to the crate root, text):
/// the priorities file first, then the library files in SP order. For
/// fingerprinting the seeds a plan runs with.
pub fn embedded_texts() -> impl Iterator<Item = (&'static str, &'static str)> {
    std::iter::once(EMBEDDED_PRIORITIES).chain(EMBEDDED_LIBRARY)
}

// Paths are relative to this source file (include_str! resolves them that
// way), so the module compiles from any crate that includes it.
const EMBEDDED_PRIORITIES: (&str, &str) = (
    "seeds/strategic_priorities.json",
    include_str!("../../seeds/strategic_priorities.json"),
);

const EMBEDDED_LIBRARY: [(&str, &str); 7] = [
    (
        "seeds/library/SP01_growth_market_access.json",
        include_str!("../../seeds/library/SP01_growth_market_access.json"),
    ),
    (
        "seeds/library/SP02_scientific_excellence.json",
        include_str!("../../seeds/library/SP02_scientific_excellence.json"),
    ),
    (
        "seeds/library/SP03_stakeholder_engagement.json",
        include_str!("../../seeds/library/SP03_stakeholder_engagement.json"),
    ),
    (
        "seeds/library/SP04_compliance_quality.json",
        include_str!("../../seeds/library/SP04_compliance_quality.json"),
    ),
    (
        "seeds/library/SP05_operational_excellence.json",
        include_str!("../../seeds/library/SP05_operational_excellence.json"),
    ),
    (
        "seeds/library/SP06_talent_development.json",
        include_str!("../../seeds/library/SP06_talent_development.json"),
    ),
    (
        "seeds/library/SP07_innovation_digital.json",
        include_str!("../../seeds/library/SP07_innovation_digital.json"),
    ),
];

fn read_text(path: &Path) -> Result<String, SeedError> {
    std::fs::read_to_string(path).map_err(|e| SeedError {
        file: path.display().to_string(),
        path: String::new(),
        kind: SeedErrorKind::Io(e),
    })
}

/// The validation shared by [`load_seeds`] and [`load_embedded`]. `library`
/// is in the order errors should be looked for (sorted by path).
fn build(
    priorities_label: &str,
    priorities_text: &str,
    library: Vec<(PathBuf, String)>,
    library_label: &str,
) -> Result<Seeds, SeedError> {
    let priorities = parse_priorities(priorities_label, priorities_text)?;

    if library.is_empty() {
        return Err(SeedError {
            file: library_label.to_string(),
            path: String::new(),
            kind: SeedErrorKind::NoLibraryFiles,
        });
    }

    let mut files: Vec<LibraryFile> = Vec::with_capacity(library.len());
    // SP code -> file that claimed it first. A file is the library of one
    // SP and workflow_id uniqueness is checked per file, so a second file
    // for the same SP would let one `source` carry a workflow_id twice
    // unnoticed (and make the SP order of `files` ambiguous).
    let mut claimed: HashMap<String, String> = HashMap::new();
    for (path, text) in library {
        let label = path.display().to_string();
        let file = parse_library_file(&label, &text, path)?;
        if let Some(first) = claimed.get(&file.strategic_priority) {
            return Err(SeedError {
                file: label,
                path: "strategic_priority".to_string(),
                kind: SeedErrorKind::DuplicatePriority {
                    code: file.strategic_priority.clone(),
                    first: first.clone(),
                },
            });
        }
        claimed.insert(file.strategic_priority.clone(), label);
        files.push(file);
    }
    files.sort_by(|a, b| a.strategic_priority.cmp(&b.strategic_priority));

    Ok(Seeds { priorities, files })
}

fn parse_priorities(label: &str, text: &str) -> Result<Vec<StrategicPriority>, SeedError> {
    let cx = Cx { file: label };
    let root = cx.parse(text)?;
    let items = cx.as_array(&root, "", "an array of strategic priorities")?;
    if items.is_empty() {
        return Err(cx.err("", SeedErrorKind::NoPriorities));
    }
    let mut out: Vec<StrategicPriority> = Vec::with_capacity(items.len());
    let mut seen: HashMap<String, String> = HashMap::new();
    for (i, item) in items.iter().enumerate() {
        let path = format!("[{i}]");
        let obj = cx.as_object(item, &path)?;
        let code = cx.string(obj, &path, "code")?;
        let code_path = join(&path, "code");
        if let Some(first) = seen.get(&code) {
            return Err(cx.err(
                &code_path,
                SeedErrorKind::DuplicatePriority {
                    code,
                    first: first.clone(),
                },
            ));
        }
        seen.insert(code.clone(), code_path);
        out.push(StrategicPriority {
            code,
            name: cx.string(obj, &path, "name")?,
            description: cx.string(obj, &path, "description")?,
            color: cx.string(obj, &path, "color")?,
            icon: cx.string(obj, &path, "icon")?,
            position: cx.int(obj, &path, "position")?,
        });
    }
    Ok(out)
}

/// The shape of one library file: fields, types, JTBD codes. What the
/// content must agree with (its priority, its sources, counts, the JTBDs a
/// workflow names) is the plan's to check, as SQL on the seed tables
/// (phase 1's conflicts), so another plan's seeds get the same power.
fn parse_library_file(label: &str, text: &str, path: PathBuf) -> Result<LibraryFile, SeedError> {
    let cx = Cx { file: label };
    let root_value = cx.parse(text)?;
    let root = cx.as_object(&root_value, "")?;

    let sp_code = cx.string(root, "", "strategic_priority")?;
    let source = cx.string(root, "", "source")?;
    let jtbd_values = cx.array(root, "", "jtbds")?;
    let mut jtbds = Vec::with_capacity(jtbd_values.len());
    for (i, jv) in jtbd_values.iter().enumerate() {
        let jpath = format!("jtbds[{i}]");
        let jobj = cx.as_object(jv, &jpath)?;
        let jtbd_id = cx.string(jobj, &jpath, "jtbd_id")?;
        cx.check_jtbd_code(&join(&jpath, "jtbd_id"), &jtbd_id)?;
        let title = cx.string(jobj, &jpath, "title")?;
        let wf_values = cx.array(jobj, &jpath, "workflows")?;
        let mut workflows = Vec::with_capacity(wf_values.len());
        for (w, wv) in wf_values.iter().enumerate() {
            let wpath = format!("{jpath}.workflows[{w}]");
            workflows.push(parse_workflow(&cx, wv, &wpath)?);
        }
        jtbds.push(LibraryJtbd {
            jtbd_id,
            title,
            workflows,
        });
    }

    Ok(LibraryFile {
        path,
        strategic_priority: sp_code,
        source,
        jtbds,
    })
}

fn parse_workflow(cx: &Cx<'_>, value: &Value, path: &str) -> Result<LibraryWorkflow, SeedError> {
    let obj = cx.as_object(value, path)?;
    let workflow_id = cx.string(obj, path, "workflow_id")?;
    let workflow_name = cx.string(obj, path, "workflow_name")?;
    let jtbd_id = cx.string(obj, path, "jtbd_id")?;
    cx.check_jtbd_code(&join(path, "jtbd_id"), &jtbd_id)?;
    let duration = cx.string(obj, path, "duration")?;
    let total_effort = cx.string(obj, path, "total_effort")?;
    let phase_count = cx.uint(obj, path, "phase_count")?;
    let task_count = cx.uint(obj, path, "task_count")?;
    let source = cx.string(obj, path, "source")?;
    let pillar = cx.opt_string(obj, path, "pillar")?;
    let pillar_name = cx.opt_string(obj, path, "pillar_name")?;

    let phase_values = cx.array(obj, path, "phases")?;
    let mut phases = Vec::with_capacity(phase_values.len());
    for (p, pv) in phase_values.iter().enumerate() {
        let ppath = format!("{path}.phases[{p}]");
        let pobj = cx.as_object(pv, &ppath)?;
        let phase_number = cx.uint(pobj, &ppath, "phase_number")?;
        let phase_name = cx.string(pobj, &ppath, "phase_name")?;
        let phase_duration = cx.string(pobj, &ppath, "duration")?;
        let task_values = cx.array(pobj, &ppath, "tasks")?;
        let mut tasks = Vec::with_capacity(task_values.len());
        for (t, tv) in task_values.iter().enumerate() {
            let tpath = format!("{ppath}.tasks[{t}]");
            let tobj = cx.as_object(tv, &tpath)?;
            tasks.push(LibraryTask {
                task_id: cx.string(tobj, &tpath, "task_id")?,
                task_name: cx.string(tobj, &tpath, "task_name")?,
                duration: cx.string(tobj, &tpath, "duration")?,
                owner: cx.string(tobj, &tpath, "owner")?,
                outputs: cx.string_list(tobj, &tpath, "outputs")?,
                tools: cx.string_list(tobj, &tpath, "tools")?,
            });
        }
        phases.push(LibraryPhase {
            phase_number,
            phase_name,
            duration: phase_duration,
            tasks,
        });
    }

    Ok(LibraryWorkflow {
        workflow_id,
        workflow_name,
        jtbd_id,
        duration,
        total_effort,
        phase_count,
        task_count,
        source,
        pillar,
        pillar_name,
        phases,
        raw: value.clone(),
    })
}

/// `JTBD-MA-` followed by exactly three ASCII digits.
fn is_ma_jtbd_code(s: &str) -> bool {
    s.strip_prefix("JTBD-MA-")
        .is_some_and(|n| n.len() == 3 && n.bytes().all(|b| b.is_ascii_digit()))
}

fn join(path: &str, field: &str) -> String {
    if path.is_empty() {
        field.to_string()
    } else {
        format!("{path}.{field}")
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The file being validated; every accessor turns a mismatch into a
/// [`SeedError`] that carries the file and JSON path.
struct Cx<'a> {
    file: &'a str,
}

impl Cx<'_> {
    fn err(&self, path: &str, kind: SeedErrorKind) -> SeedError {
        SeedError {
            file: self.file.to_string(),
            path: path.to_string(),
            kind,
        }
    }

    fn parse(&self, text: &str) -> Result<Value, SeedError> {
        serde_json::from_str(text).map_err(|e| {
            self.err(
                "",
                SeedErrorKind::Json {
                    line: e.line(),
                    column: e.column(),
                    // serde's own Display repeats "at line L column C".
                    message: strip_position(&e.to_string()),
                },
            )
        })
    }

    fn wrong_type(&self, path: &str, expected: &'static str, found: &Value) -> SeedError {
        self.err(
            path,
            SeedErrorKind::WrongType {
                expected,
                found: type_name(found),
            },
        )
    }

    fn as_object<'v>(&self, v: &'v Value, path: &str) -> Result<&'v Map<String, Value>, SeedError> {
        v.as_object()
            .ok_or_else(|| self.wrong_type(path, "an object", v))
    }

    fn as_array<'v>(
        &self,
        v: &'v Value,
        path: &str,
        expected: &'static str,
    ) -> Result<&'v Vec<Value>, SeedError> {
        v.as_array()
            .ok_or_else(|| self.wrong_type(path, expected, v))
    }

    fn field<'v>(
        &self,
        obj: &'v Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Result<&'v Value, SeedError> {
        obj.get(name).ok_or_else(|| {
            self.err(
                &join(path, name),
                SeedErrorKind::MissingField {
                    field: name.to_string(),
                },
            )
        })
    }

    fn string(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Result<String, SeedError> {
        let v = self.field(obj, path, name)?;
        v.as_str()
            .map(str::to_string)
            .ok_or_else(|| self.wrong_type(&join(path, name), "a string", v))
    }

    /// Absent or null is `None`: pillars are optional (SP01 has none).
    fn opt_string(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Result<Option<String>, SeedError> {
        match obj.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(v) => Err(self.wrong_type(&join(path, name), "a string or null", v)),
        }
    }

    fn uint(&self, obj: &Map<String, Value>, path: &str, name: &str) -> Result<u64, SeedError> {
        let v = self.field(obj, path, name)?;
        v.as_u64()
            .ok_or_else(|| self.wrong_type(&join(path, name), "a non-negative integer", v))
    }

    fn int(&self, obj: &Map<String, Value>, path: &str, name: &str) -> Result<i64, SeedError> {
        let v = self.field(obj, path, name)?;
        v.as_i64()
            .ok_or_else(|| self.wrong_type(&join(path, name), "an integer", v))
    }

    fn array<'v>(
        &self,
        obj: &'v Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Result<&'v Vec<Value>, SeedError> {
        let v = self.field(obj, path, name)?;
        self.as_array(v, &join(path, name), "an array")
    }

    fn string_list(
        &self,
        obj: &Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Result<Vec<String>, SeedError> {
        let list_path = join(path, name);
        let items = self.array(obj, path, name)?;
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.wrong_type(&format!("{list_path}[{i}]"), "a string", v))
            })
            .collect()
    }

    fn check_jtbd_code(&self, path: &str, value: &str) -> Result<(), SeedError> {
        if is_ma_jtbd_code(value) {
            Ok(())
        } else {
            Err(self.err(
                path,
                SeedErrorKind::BadJtbdCode {
                    value: value.to_string(),
                },
            ))
        }
    }
}

/// `"expected `,` or `}` at line 4 column 3"` -> `"expected `,` or `}`"`.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::collections::HashSet;

    // ---- the shipped seeds -------------------------------------------------

    /// (SP, first JTBD, last JTBD, JTBD count, workflow count) per DATA_MODEL §3.
    const ALLOCATION: [(&str, u32, u32, usize, usize); 7] = [
        ("SP01", 1, 17, 17, 19),
        ("SP02", 18, 36, 19, 20),
        ("SP03", 37, 54, 18, 19),
        ("SP04", 55, 68, 14, 15),
        ("SP05", 69, 83, 15, 16),
        ("SP06", 84, 91, 8, 8),
        ("SP07", 92, 105, 14, 14),
    ];

    fn check_shipped(seeds: &Seeds) {
        let expected_sps = [
            ("SP01", "Growth & Market Access", "emerald", "TrendingUp"),
            ("SP02", "Scientific Excellence", "blue", "Microscope"),
            ("SP03", "Stakeholder Engagement", "purple", "Users"),
            ("SP04", "Compliance & Quality", "red", "Shield"),
            ("SP05", "Operational Excellence", "orange", "Settings"),
            ("SP06", "Talent Development", "indigo", "GraduationCap"),
            ("SP07", "Innovation & Digital", "pink", "Sparkles"),
        ];
        assert_eq!(seeds.priorities.len(), 7);
        for (i, (p, (code, name, color, icon))) in
            seeds.priorities.iter().zip(expected_sps).enumerate()
        {
            assert_eq!(
                (
                    p.code.as_str(),
                    p.name.as_str(),
                    p.color.as_str(),
                    p.icon.as_str()
                ),
                (code, name, color, icon)
            );
            assert_eq!(p.position, i as i64 + 1);
            assert!(!p.description.is_empty());
        }

        assert_eq!(seeds.files.len(), 7);
        let mut total_jtbds = 0;
        let mut total_workflows = 0;
        for (file, (sp, first, last, n_jtbd, n_wf)) in seeds.files.iter().zip(ALLOCATION) {
            assert_eq!(file.strategic_priority, sp);
            assert_eq!(file.source, format!("{sp} Operational Library"));
            let codes: Vec<String> = file.jtbds.iter().map(|j| j.jtbd_id.clone()).collect();
            let want: Vec<String> = (first..=last).map(|n| format!("JTBD-MA-{n:03}")).collect();
            assert_eq!(codes, want, "{sp} JTBDs");
            assert_eq!(file.jtbds.len(), n_jtbd, "{sp} JTBD count");
            assert_eq!(file.workflows().count(), n_wf, "{sp} workflow count");
            for jtbd in &file.jtbds {
                let num = &jtbd.jtbd_id["JTBD-MA-".len()..];
                assert_eq!(jtbd.workflows[0].workflow_id, format!("WF-{num}-A"));
            }
            for wf in file.workflows() {
                assert_eq!(wf.source, file.source);
                assert!((2..=5).contains(&wf.phases.len()), "{}", wf.workflow_id);
                for phase in &wf.phases {
                    assert!((2..=5).contains(&phase.tasks.len()), "{}", wf.workflow_id);
                }
                // SP02 onward carry a pillar, SP01 does not.
                assert_eq!(wf.pillar.is_some(), sp != "SP01", "{}", wf.workflow_id);
                assert_eq!(wf.pillar_name.is_some(), sp != "SP01", "{}", wf.workflow_id);
                assert_eq!(
                    wf.raw.get("workflow_id").and_then(Value::as_str),
                    Some(wf.workflow_id.as_str())
                );
            }
            total_jtbds += file.jtbds.len();
            total_workflows += file.workflows().count();
        }
        assert_eq!(total_jtbds, 105);
        assert_eq!(total_workflows, 111);

        let mut extras: Vec<&str> = seeds
            .workflows()
            .map(|(_, wf)| wf.workflow_id.as_str())
            .filter(|id| id.ends_with("-B"))
            .collect();
        extras.sort();
        assert_eq!(
            extras,
            ["WF-001-B", "WF-002-B", "WF-018-B", "WF-037-B", "WF-055-B", "WF-069-B"]
        );

        // The shipped files have no cross-file repeats at all.
        let ids: HashSet<&str> = seeds
            .workflows()
            .map(|(_, wf)| wf.workflow_id.as_str())
            .collect();
        assert_eq!(ids.len(), 111);
        let allocation = seeds.jtbd_allocation();
        assert_eq!(allocation.len(), 105);
        let distinct: HashSet<&str> = allocation.iter().map(|(j, _, _)| j.as_str()).collect();
        assert_eq!(distinct.len(), 105);
        for (sp, first, last, _, _) in ALLOCATION {
            for n in first..=last {
                let code = format!("JTBD-MA-{n:03}");
                assert!(
                    allocation.iter().any(|(j, s, _)| *j == code && s == sp),
                    "{code} under {sp}"
                );
            }
        }
    }

    #[test]
    fn embedded_seeds_load_with_documented_counts() {
        let seeds = load_embedded().expect("embedded seeds are valid");
        check_shipped(&seeds);
        assert_eq!(
            seeds.files[0].path,
            PathBuf::from("seeds/library/SP01_growth_market_access.json")
        );
    }

    #[test]
    fn embedded_texts_list_every_shipped_file() {
        let names: Vec<&str> = embedded_texts().map(|(name, _)| name).collect();
        assert_eq!(names.len(), 8);
        assert_eq!(names[0], "seeds/strategic_priorities.json");
        assert!(names[1..]
            .iter()
            .all(|n| n.starts_with("seeds/library/SP0")));
        assert!(embedded_texts().all(|(_, text)| !text.is_empty()));
    }

    #[test]
    fn seed_directory_loads_and_matches_embedded() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds");
        let from_disk = load_seeds(&dir).expect("seeds/ is valid");
        check_shipped(&from_disk);
        let embedded = load_embedded().expect("embedded seeds are valid");
        assert_eq!(from_disk.priorities, embedded.priorities);
        for (a, b) in from_disk.files.iter().zip(&embedded.files) {
            assert_eq!(a.path.file_name(), b.path.file_name());
            assert!(a.path.starts_with(&dir));
            assert_eq!(a.jtbds, b.jtbds);
        }
    }

    #[test]
    fn raw_keeps_key_order_and_number_text() {
        let text = sample_file("SP01", 1, 1)
            .to_string()
            .replace("\"phase_count\":2", "\"phase_count\":2.0e0");
        // 2.0e0 is not an integer: the loader must refuse it rather than round.
        let dir = write_seeds(&[("SP01_a.json", text)]);
        let err = load_seeds(dir.path()).unwrap_err();
        assert!(matches!(err.kind, SeedErrorKind::WrongType { .. }), "{err}");

        // Fields the typed structs do not know, and number text such as
        // 1.50, must reach workflows.definition unchanged.
        let text = sample_file("SP01", 1, 1)
            .to_string()
            .replace("\"extra_field\":", "\"score\":1.50,\"extra_field\":");
        let dir = write_seeds(&[("SP01_a.json", text)]);
        let seeds = load_seeds(dir.path()).unwrap();
        let wf = &seeds.files[0].jtbds[0].workflows[0];
        let keys: Vec<&str> = wf
            .raw
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys[..3], ["workflow_id", "workflow_name", "jtbd_id"]);
        assert_eq!(keys[keys.len() - 2..], ["score", "extra_field"]);
        assert_eq!(wf.raw["score"].to_string(), "1.50");
        assert_eq!(wf.raw["extra_field"], json!({"kept": true}));
    }

    // ---- fixtures for the malformed cases ---------------------------------

    fn task(n: usize) -> Value {
        json!({"task_id": format!("T{n:03}"), "task_name": format!("Task {n}"),
               "duration": "4 hours", "owner": "Medical Director",
               "outputs": ["Memo"], "tools": ["Word"]})
    }

    fn workflow(sp: &str, num: u32, letter: &str) -> Value {
        let phases: Vec<Value> = (0..2)
            .map(|p| {
                json!({"phase_number": p + 1, "phase_name": format!("Phase {}", p + 1),
                       "duration": "1 week",
                       "tasks": (0..3).map(|t| task(p * 3 + t + 1)).collect::<Vec<_>>()})
            })
            .collect();
        json!({"workflow_id": format!("WF-{num:03}-{letter}"), "workflow_name": "Sample",
               "jtbd_id": format!("JTBD-MA-{num:03}"), "duration": "2–3 weeks",
               "total_effort": "20–30 hours", "phase_count": 2, "task_count": 6,
               "source": format!("{sp} Operational Library"), "phases": phases,
               "extra_field": {"kept": true}})
    }

    /// A valid library file with `count` JTBDs starting at `first`, one
    /// workflow each, two phases of three tasks each.
    fn sample_file(sp: &str, first: u32, count: u32) -> Value {
        let jtbds: Vec<Value> = (first..first + count)
            .map(|n| {
                json!({"jtbd_id": format!("JTBD-MA-{n:03}"), "title": format!("Job {n}"),
                       "workflows": [workflow(sp, n, "A")]})
            })
            .collect();
        json!({"strategic_priority": sp, "source": format!("{sp} Operational Library"),
               "jtbds": jtbds})
    }

    fn write_seeds(library: &[(&str, String)]) -> tempfile::TempDir {
        write_seeds_with(EMBEDDED_PRIORITIES.1, library)
    }

    fn write_seeds_with(priorities: &str, library: &[(&str, String)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PRIORITIES_FILE), priorities).unwrap();
        std::fs::create_dir(dir.path().join(LIBRARY_DIR)).unwrap();
        for (name, text) in library {
            std::fs::write(dir.path().join(LIBRARY_DIR).join(name), text).unwrap();
        }
        dir
    }

    /// Write `file` as library/`name` next to a valid SP02 file, load, and
    /// return the error.
    fn load_bad(name: &str, file: &Value) -> SeedError {
        let dir = write_seeds(&[
            (name, serde_json::to_string_pretty(file).unwrap()),
            ("SP02_ok.json", sample_file("SP02", 18, 2).to_string()),
        ]);
        load_seeds(dir.path()).expect_err("the file is malformed")
    }

    /// The message names the file, the JSON path and the reason, and says
    /// what to do.
    fn assert_names(err: &SeedError, file: &str, path: &str, reason: &str) {
        let msg = err.to_string();
        assert!(err.file.ends_with(file), "file {file:?} not in {msg}");
        assert!(msg.contains(&err.file), "{msg}");
        assert_eq!(err.path, path, "{msg}");
        if !path.is_empty() {
            assert!(msg.contains(&format!(": {path}: ")), "path not in {msg}");
        }
        assert!(msg.contains(reason), "reason {reason:?} not in {msg}");
        assert!(msg.contains(". Fix: "), "no hint in {msg}");
    }

    fn deep<'v>(v: &'v mut Value, pointer: &str) -> &'v mut Value {
        v.pointer_mut(pointer).unwrap()
    }

    // ---- one test per malformed case ---------------------------------------

    #[test]
    fn bad_json_reports_line_and_column() {
        let text = "{\n  \"strategic_priority\": \"SP01\",\n  \"source\": \"SP01 Operational Library\"\n  \"jtbds\": []\n}\n";
        let dir = write_seeds(&[("SP01_bad.json", text.to_string())]);
        let err = load_seeds(dir.path()).unwrap_err();
        assert!(
            matches!(
                err.kind,
                SeedErrorKind::Json {
                    line: 4,
                    column: 3,
                    ..
                }
            ),
            "{err}"
        );
        assert_names(
            &err,
            "library/SP01_bad.json",
            "",
            "invalid JSON at line 4, column 3",
        );
        assert!(!err.to_string().contains("column 3 at line"), "{err}");
    }

    #[test]
    fn missing_field_names_the_full_path() {
        let mut file = sample_file("SP01", 1, 4);
        let tasks = deep(&mut file, "/jtbds/3/workflows/0/phases/1/tasks/2");
        tasks.as_object_mut().unwrap().remove("task_name");
        let err = load_bad("SP01_missing.json", &file);
        assert!(matches!(err.kind, SeedErrorKind::MissingField { .. }));
        assert_names(
            &err,
            "SP01_missing.json",
            "jtbds[3].workflows[0].phases[1].tasks[2].task_name",
            "missing required field `task_name`",
        );
    }

    #[test]
    fn missing_top_level_field() {
        let mut file = sample_file("SP01", 1, 1);
        file.as_object_mut().unwrap().remove("jtbds");
        let err = load_bad("SP01_nojtbds.json", &file);
        assert_names(
            &err,
            "SP01_nojtbds.json",
            "jtbds",
            "missing required field `jtbds`",
        );
    }

    #[test]
    fn wrong_type_names_expected_and_found() {
        let mut file = sample_file("SP01", 1, 2);
        *deep(&mut file, "/jtbds/1/workflows/0/phase_count") = json!("2");
        let err = load_bad("SP01_type.json", &file);
        assert!(matches!(err.kind, SeedErrorKind::WrongType { .. }));
        assert_names(
            &err,
            "SP01_type.json",
            "jtbds[1].workflows[0].phase_count",
            "expected a non-negative integer, found a string",
        );
    }

    #[test]
    fn wrong_type_inside_a_string_list() {
        let mut file = sample_file("SP01", 1, 1);
        *deep(&mut file, "/jtbds/0/workflows/0/phases/0/tasks/1/tools/0") = json!(7);
        let err = load_bad("SP01_tools.json", &file);
        assert_names(
            &err,
            "SP01_tools.json",
            "jtbds[0].workflows[0].phases[0].tasks[1].tools[0]",
            "expected a string, found a number",
        );
    }

    #[test]
    fn top_level_list_is_rejected_as_wrong_type() {
        let file = json!([sample_file("SP01", 1, 1)["jtbds"][0]]);
        let err = load_bad("SP01_list.json", &file);
        assert_names(
            &err,
            "SP01_list.json",
            "",
            "expected an object, found an array",
        );
    }

    #[test]
    fn same_workflow_id_in_two_files_is_allowed() {
        // workflow_id is unique only inside one file (DATA_MODEL §3).
        let mut sp02 = sample_file("SP02", 18, 1);
        *deep(&mut sp02, "/jtbds/0/workflows/0/workflow_id") = json!("WF-001-A");
        let dir = write_seeds(&[
            ("SP01_a.json", sample_file("SP01", 1, 1).to_string()),
            ("SP02_b.json", sp02.to_string()),
        ]);
        let seeds = load_seeds(dir.path()).expect("cross-file repeats are not load errors");
        assert_eq!(seeds.workflows().count(), 2);
    }

    #[test]
    fn workflow_may_reference_a_jtbd_listed_later_in_the_file() {
        let mut file = sample_file("SP01", 1, 2);
        *deep(&mut file, "/jtbds/0/workflows/0/jtbd_id") = json!("JTBD-MA-002");
        let dir = write_seeds(&[("SP01_a.json", file.to_string())]);
        load_seeds(dir.path()).expect("JTBD-MA-002 is listed in the file");
    }

    #[test]
    fn malformed_jtbd_code_in_a_jtbd_entry() {
        let mut file = sample_file("SP01", 1, 2);
        *deep(&mut file, "/jtbds/1/jtbd_id") = json!("JTBD-MA-2");
        let err = load_bad("SP01_code.json", &file);
        assert!(matches!(err.kind, SeedErrorKind::BadJtbdCode { .. }));
        assert_names(
            &err,
            "SP01_code.json",
            "jtbds[1].jtbd_id",
            "`JTBD-MA-2` is not a Medical Affairs JTBD code (expected JTBD-MA-NNN",
        );
    }

    #[test]
    fn malformed_jtbd_code_in_a_workflow() {
        let mut file = sample_file("SP01", 1, 1);
        *deep(&mut file, "/jtbds/0/workflows/0/jtbd_id") = json!("JTBD-DH-001");
        let err = load_bad("SP01_wfcode.json", &file);
        assert_names(
            &err,
            "SP01_wfcode.json",
            "jtbds[0].workflows[0].jtbd_id",
            "`JTBD-DH-001` is not a Medical Affairs JTBD code",
        );
    }

    #[test]
    fn duplicate_code_in_strategic_priorities() {
        let mut priorities: Value = serde_json::from_str(EMBEDDED_PRIORITIES.1).unwrap();
        priorities[4]["code"] = json!("SP02");
        let dir = write_seeds_with(
            &priorities.to_string(),
            &[("SP01_a.json", sample_file("SP01", 1, 1).to_string())],
        );
        let err = load_seeds(dir.path()).unwrap_err();
        assert!(matches!(err.kind, SeedErrorKind::DuplicatePriority { .. }));
        assert_names(
            &err,
            "strategic_priorities.json",
            "[4].code",
            "duplicate strategic priority code `SP02` (already used by [1].code)",
        );
    }

    #[test]
    fn two_library_files_for_one_priority() {
        let dir = write_seeds(&[
            ("SP01_a.json", sample_file("SP01", 1, 1).to_string()),
            ("SP01_b.json", sample_file("SP01", 2, 1).to_string()),
        ]);
        let err = load_seeds(dir.path()).unwrap_err();
        assert_names(
            &err,
            "SP01_b.json",
            "strategic_priority",
            "duplicate strategic priority code `SP01` (already used by ",
        );
        assert!(err.to_string().contains("SP01_a.json"), "{err}");
    }

    #[test]
    fn no_library_files() {
        // A stray non-JSON file does not count as a library file.
        let dir = write_seeds(&[("README.md", "notes".to_string())]);
        let err = load_seeds(dir.path()).unwrap_err();
        assert!(matches!(err.kind, SeedErrorKind::NoLibraryFiles));
        assert_names(&err, "library", "", "no library files (*.json) found");
    }

    #[test]
    fn missing_library_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PRIORITIES_FILE), EMBEDDED_PRIORITIES.1).unwrap();
        let err = load_seeds(dir.path()).unwrap_err();
        assert!(matches!(err.kind, SeedErrorKind::Io(_)));
        assert_names(&err, "library", "", "cannot read: ");
    }

    #[test]
    fn empty_strategic_priorities() {
        let dir = write_seeds_with(
            "[]",
            &[("SP01_a.json", sample_file("SP01", 1, 1).to_string())],
        );
        let err = load_seeds(dir.path()).unwrap_err();
        assert!(matches!(err.kind, SeedErrorKind::NoPriorities));
        assert_names(
            &err,
            "strategic_priorities.json",
            "",
            "no strategic priorities defined",
        );
    }

    #[test]
    fn strategic_priority_field_errors_name_the_entry() {
        let mut priorities: Value = serde_json::from_str(EMBEDDED_PRIORITIES.1).unwrap();
        priorities[2]["position"] = json!("three");
        let dir = write_seeds_with(
            &priorities.to_string(),
            &[("SP01_a.json", sample_file("SP01", 1, 1).to_string())],
        );
        let err = load_seeds(dir.path()).unwrap_err();
        assert_names(
            &err,
            "strategic_priorities.json",
            "[2].position",
            "expected an integer, found a string",
        );
    }

    #[test]
    fn jtbd_in_two_files_is_not_a_load_error() {
        let mut sp02 = sample_file("SP02", 18, 2);
        // List JTBD-MA-001 under SP02 as well: a data conflict for the
        // rehearsal to report, not something the loader may hide.
        *deep(&mut sp02, "/jtbds/1/jtbd_id") = json!("JTBD-MA-001");
        *deep(&mut sp02, "/jtbds/1/workflows/0/jtbd_id") = json!("JTBD-MA-001");
        let dir = write_seeds(&[
            ("SP02_b.json", sp02.to_string()),
            ("SP01_a.json", sample_file("SP01", 1, 2).to_string()),
        ]);
        let seeds = load_seeds(dir.path()).expect("a JTBD under two SPs loads");
        let allocation = seeds.jtbd_allocation();
        let pairs: Vec<(&str, &str)> = allocation
            .iter()
            .map(|(j, s, _)| (j.as_str(), s.as_str()))
            .collect();
        assert_eq!(
            pairs,
            [
                ("JTBD-MA-001", "SP01"),
                ("JTBD-MA-002", "SP01"),
                ("JTBD-MA-018", "SP02"),
                ("JTBD-MA-001", "SP02"),
            ]
        );
        assert!(allocation[0].2.ends_with("SP01_a.json"));
        assert!(allocation[3].2.ends_with("SP02_b.json"));
    }

    #[test]
    fn display_format_is_file_path_reason_fix() {
        let err = SeedError {
            file: "seeds/library/SP01.json".to_string(),
            path: "jtbds[0].title".to_string(),
            kind: SeedErrorKind::MissingField {
                field: "title".to_string(),
            },
        };
        assert_eq!(
            err.to_string(),
            "seeds/library/SP01.json: jtbds[0].title: missing required field `title`. \
             Fix: add the field; the workflow shape is documented in DATA_MODEL.md §3"
        );
    }
}
