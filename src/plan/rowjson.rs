//! A pulled row as JSON, for the plan's "every other column goes into a
//! jsonb" moves. Values keep their exact text: numbers stay the digits
//! Postgres printed, arrays become JSON arrays of their typed elements,
//! json/jsonb columns are embedded as documents, a row (composite) value
//! is an object of its fields and an hstore an object of its pairs — all
//! as Postgres's `to_jsonb` gives them — and everything else is the string
//! Postgres prints.

use serde_json::{Map, Value};

use crate::catalog::{ColumnMeta, CompositeField, TableMeta};

/// Converts one Postgres text value of type `pg_type` to JSON (arrays with
/// the `,` delimiter almost every element type uses).
pub fn value_to_json(pg_type: &str, text: Option<&str>) -> Result<Value, String> {
    value_to_json_delimited(pg_type, ',', text)
}

/// Converts one Postgres text value to JSON; an array's elements are
/// separated by `delimiter`, its element type's `pg_type.typdelim` (`;`
/// for `box`, whose values hold commas).
pub fn value_to_json_delimited(
    pg_type: &str,
    delimiter: char,
    text: Option<&str>,
) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(Value::Null);
    };
    if let Some(elem) = pg_type.strip_suffix("[]") {
        let node = parse_array_delimited(text, delimiter)?;
        return node_to_json(elem, &node);
    }
    scalar_to_json(pg_type, text)
}

/// One value of `column` as Postgres's `to_jsonb` gives it: a row (of a
/// composite type) as an object of its fields, each converted by its own
/// type, at any depth; an array of rows as an array of such objects.
pub fn column_to_json(column: &ColumnMeta, text: Option<&str>) -> Result<Value, String> {
    let Some(text) = text else {
        return Ok(Value::Null);
    };
    let value_type = column.value_type();
    match &column.composite {
        Some(fields) => rows_to_json(&value_type, column.delimiter(), fields, text),
        None => value_to_json_delimited(&value_type, column.delimiter(), Some(text)),
    }
}

/// A row value of type `pg_type` (whose fields are `fields`), or an array
/// of them (elements separated by `delimiter`), as to_jsonb gives it.
fn rows_to_json(
    pg_type: &str,
    delimiter: char,
    fields: &[CompositeField],
    text: &str,
) -> Result<Value, String> {
    if !pg_type.ends_with("[]") {
        return row_value_to_json(fields, text);
    }
    fn each(node: &ArrayNode, fields: &[CompositeField]) -> Result<Value, String> {
        Ok(match node {
            ArrayNode::Elem(None) => Value::Null,
            ArrayNode::Elem(Some(t)) => row_value_to_json(fields, t)?,
            ArrayNode::List(items) => Value::Array(
                items
                    .iter()
                    .map(|n| each(n, fields))
                    .collect::<Result<_, _>>()?,
            ),
        })
    }
    each(&parse_array_delimited(text, delimiter)?, fields)
}

/// One row value (`record_out`'s text) as an object of its fields; a NULL
/// field is JSON null.
fn row_value_to_json(fields: &[CompositeField], text: &str) -> Result<Value, String> {
    let values = crate::plan::canonical::record_fields(fields.len(), text)?;
    let mut map = Map::new();
    for (f, raw) in fields.iter().zip(values) {
        let v = match raw {
            None => Value::Null,
            Some(raw) => field_to_json(f, &raw)?,
        };
        map.insert(f.name.clone(), v);
    }
    Ok(Value::Object(map))
}

fn field_to_json(f: &CompositeField, raw: &str) -> Result<Value, String> {
    if f.holds_rows() {
        return match &f.fields {
            Some(inner) => rows_to_json(&f.pg_type, f.delimiter(), inner, raw),
            // A file pulled before nested row types' fields were recorded.
            None => Err(format!(
                "field {} ({}) is a row whose own fields the snapshot does not record, so its \
                 JSON cannot be built as Postgres's to_jsonb builds it; pull again",
                f.name, f.pg_type
            )),
        };
    }
    match f.kind.as_str() {
        "e" => Ok(Value::String(raw.to_string())),
        _ => value_to_json_delimited(&f.pg_type, f.delimiter(), Some(raw))
            .map_err(|e| format!("field {} ({}): {e}", f.name, f.pg_type)),
    }
}

/// An `hstore` as to_jsonb gives it (through hstore's cast to json): an
/// object of its pairs, every value a string, NULL values null.
fn hstore_to_json(text: &str) -> Result<Value, String> {
    let utf8 = |b: Vec<u8>| {
        String::from_utf8(b).map_err(|_| format!("hstore value '{text}' is not UTF-8 text"))
    };
    let mut map = Map::new();
    for (key, value) in crate::plan::canonical::hstore_pairs(text)? {
        let v = match value {
            Some(v) => Value::String(utf8(v)?),
            None => Value::Null,
        };
        map.insert(utf8(key)?, v);
    }
    Ok(Value::Object(map))
}

fn scalar_to_json(pg_type: &str, text: &str) -> Result<Value, String> {
    if crate::plan::canonical::unqualified(pg_type) == "hstore" {
        return hstore_to_json(text);
    }
    let base = pg_type.split('(').next().unwrap_or(pg_type).trim();
    Ok(match base {
        "smallint" | "integer" | "bigint" | "numeric" | "real" | "double precision" => {
            // NaN and ±Infinity have no JSON number form; keep their text.
            match serde_json::from_str::<Value>(text) {
                Ok(v @ Value::Number(_)) => v,
                _ => Value::String(text.to_string()),
            }
        }
        "boolean" => match text {
            "t" => Value::Bool(true),
            "f" => Value::Bool(false),
            other => return Err(format!("boolean value '{other}'")),
        },
        "json" | "jsonb" => serde_json::from_str::<Value>(text).map_err(|e| {
            match crate::plan::sql::lone_surrogate_escape(text) {
                // A json column keeps such a value as text; Postgres's
                // to_jsonb refuses it ('Unicode low surrogate must follow a
                // high surrogate'), as this does.
                Some(esc) => format!(
                    "{pg_type} value holds the escape {esc}, a lone UTF-16 surrogate, which \
                     Postgres's jsonb (and so to_jsonb) refuses"
                ),
                None => format!("{pg_type} value is not JSON: {e}"),
            }
        })?,
        _ => match time_zone_kind(pg_type) {
            Some(with_zone) => Value::String(timestamp_json(text, with_zone)),
            None => Value::String(text.to_string()),
        },
    })
}

/// For a timestamp type, whether it has a time zone; None for every other
/// type (date, time and timetz print in JSON as in text).
fn time_zone_kind(pg_type: &str) -> Option<bool> {
    // The typmod (`timestamp(3) with time zone`) does not change the form.
    let plain: String = match (pg_type.find('('), pg_type.find(')')) {
        (Some(open), Some(close)) if open < close => {
            format!("{}{}", &pg_type[..open], &pg_type[close + 1..])
        }
        _ => pg_type.to_string(),
    };
    match plain.trim() {
        "timestamp with time zone" | "timestamptz" => Some(true),
        "timestamp without time zone" | "timestamp" => Some(false),
        _ => None,
    }
}

/// A timestamp as Postgres's to_jsonb prints it (ISO 8601, XSD style): the
/// text form `2024-01-01 10:00:00+00` becomes `2024-01-01T10:00:00+00:00` —
/// a `T` between date and time and, with a time zone, an offset with its
/// minutes (`+05:30`, `-03:30:52` stay as they are). `infinity`, and a
/// ` BC` suffix, are kept as Postgres keeps them. Anything else is returned
/// as it is (the exactness check names a value Postgres would not print).
fn timestamp_json(text: &str, with_zone: bool) -> String {
    let (body, era) = match text.strip_suffix(" BC") {
        Some(body) => (body, " BC"),
        None => (text, ""),
    };
    let Some((date, time)) = body.split_once(' ') else {
        return text.to_string();
    };
    if !with_zone {
        return format!("{date}T{time}{era}");
    }
    let Some(sign) = time.rfind(['+', '-']) else {
        return text.to_string();
    };
    let (clock, offset) = time.split_at(sign);
    let minutes = if offset.contains(':') { "" } else { ":00" };
    format!("{date}T{clock}{offset}{minutes}{era}")
}

/// A parsed Postgres array literal.
#[derive(Debug, Clone, PartialEq)]
pub enum ArrayNode {
    List(Vec<ArrayNode>),
    Elem(Option<String>),
}

fn node_to_json(elem_type: &str, node: &ArrayNode) -> Result<Value, String> {
    Ok(match node {
        ArrayNode::Elem(v) => match v {
            None => Value::Null,
            Some(t) => scalar_to_json(elem_type, t)?,
        },
        ArrayNode::List(items) => Value::Array(
            items
                .iter()
                .map(|n| node_to_json(elem_type, n))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// Calls `f` with every element of a parsed array, in order, at any depth.
pub fn each_element(node: &ArrayNode, f: &mut impl FnMut(Option<&str>)) {
    match node {
        ArrayNode::Elem(v) => f(v.as_deref()),
        ArrayNode::List(items) => items.iter().for_each(|i| each_element(i, f)),
    }
}

/// Parses Postgres's array output (`{a,"b c",NULL,{1,2}}`, optionally with
/// a `[lo:hi]=` dimension prefix).
pub fn parse_array(text: &str) -> Result<ArrayNode, String> {
    parse_array_delimited(text, ',')
}

/// Parses Postgres's array output whose elements are separated by
/// `delimiter` (the element type's `typdelim`).
pub fn parse_array_delimited(text: &str, delimiter: char) -> Result<ArrayNode, String> {
    let body = match text.find('=') {
        Some(i) if text.starts_with('[') => &text[i + 1..],
        _ => text,
    };
    let chars: Vec<char> = body.chars().collect();
    let mut pos = 0;
    let node = parse_list(&chars, &mut pos, 1, delimiter)?;
    if pos != chars.len() {
        return Err(format!("trailing text after array literal '{text}'"));
    }
    Ok(node)
}

/// Postgres's MAXDIM: no array it prints nests deeper. The limit also keeps
/// a hand-edited value like `{{{{…` from overflowing the stack.
const MAX_DIMENSIONS: usize = 6;

fn parse_list(
    c: &[char],
    pos: &mut usize,
    depth: usize,
    delimiter: char,
) -> Result<ArrayNode, String> {
    if c.get(*pos) != Some(&'{') {
        return Err("array literal must start with '{'".into());
    }
    if depth > MAX_DIMENSIONS {
        return Err(format!(
            "array literal nested deeper than Postgres's {MAX_DIMENSIONS} dimensions"
        ));
    }
    *pos += 1;
    let mut items = Vec::new();
    while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
        *pos += 1;
    }
    if c.get(*pos) == Some(&'}') {
        *pos += 1;
        return Ok(ArrayNode::List(items));
    }
    // Postgres reads white space around elements and ignores it.
    let skip_space = |pos: &mut usize| {
        while c.get(*pos).is_some_and(|ch| ch.is_whitespace()) {
            *pos += 1;
        }
    };
    loop {
        skip_space(pos);
        match c.get(*pos) {
            Some('{') => items.push(parse_list(c, pos, depth + 1, delimiter)?),
            Some('"') => {
                *pos += 1;
                let mut s = String::new();
                loop {
                    match c.get(*pos) {
                        Some('\\') => {
                            *pos += 1;
                            match c.get(*pos) {
                                Some(ch) => s.push(*ch),
                                None => return Err("unterminated escape in array".into()),
                            }
                        }
                        Some('"') => break,
                        Some(ch) => s.push(*ch),
                        None => return Err("unterminated quoted array element".into()),
                    }
                    *pos += 1;
                }
                *pos += 1;
                items.push(ArrayNode::Elem(Some(s)));
            }
            Some(_) => {
                let start = *pos;
                while let Some(ch) = c.get(*pos) {
                    if *ch == delimiter || *ch == '}' {
                        break;
                    }
                    *pos += 1;
                }
                let raw: String = c[start..*pos].iter().collect();
                let raw = raw.trim();
                items.push(ArrayNode::Elem(if raw.eq_ignore_ascii_case("NULL") {
                    None
                } else {
                    Some(raw.to_string())
                }));
            }
            None => return Err("unterminated array literal".into()),
        }
        skip_space(pos);
        match c.get(*pos) {
            Some(d) if *d == delimiter => *pos += 1,
            Some('}') => {
                *pos += 1;
                return Ok(ArrayNode::List(items));
            }
            _ => return Err(format!("expected '{delimiter}' or '}}' in array literal")),
        }
    }
}

/// Every column of a row, except `skip`, as a JSON object in column order.
pub fn row_to_json(
    meta: &TableMeta,
    values: &[Option<String>],
    skip: &[&str],
) -> Result<Map<String, Value>, String> {
    let mut map = Map::new();
    for (col, val) in meta.columns.iter().zip(values) {
        if skip.contains(&col.name.as_str()) {
            continue;
        }
        let v = column_to_json(col, val.as_deref()).map_err(|e| {
            format!(
                "{}.{} of row {}: {e}",
                meta.name,
                col.name,
                key_of(meta, values)
            )
        })?;
        map.insert(col.name.clone(), v);
    }
    Ok(map)
}

/// The row's key as the rehearsal names rows ([`crate::types::row_key`]
/// over the primary key, or every column without one).
fn key_of(meta: &TableMeta, values: &[Option<String>]) -> String {
    let pk = meta.primary_key();
    let at: Vec<usize> = if pk.is_empty() {
        (0..meta.columns.len()).collect()
    } else {
        pk.iter()
            .filter_map(|k| meta.columns.iter().position(|c| &c.name == k))
            .collect()
    };
    crate::types::row_key(at.iter().map(|i| values.get(*i).and_then(|v| v.as_deref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_take_the_form_postgres_to_jsonb_prints() {
        let tz = |t: &str| value_to_json("timestamp with time zone", Some(t)).unwrap();
        assert_eq!(tz("2024-01-01 10:00:00+00"), "2024-01-01T10:00:00+00:00");
        assert_eq!(
            tz("2024-01-01 15:30:00.5+05:30"),
            "2024-01-01T15:30:00.5+05:30"
        );
        assert_eq!(
            tz("1900-01-01 06:29:08-03:30:52"),
            "1900-01-01T06:29:08-03:30:52"
        );
        assert_eq!(
            tz("0044-03-15 12:00:00+00 BC"),
            "0044-03-15T12:00:00+00:00 BC"
        );
        assert_eq!(tz("-infinity"), "-infinity");
        let ts = value_to_json(
            "timestamp(3) without time zone",
            Some("12345-01-01 10:00:00.123"),
        );
        assert_eq!(ts.unwrap(), "12345-01-01T10:00:00.123");
        let a = value_to_json(
            "timestamp with time zone[]",
            Some(r#"{"2024-01-01 10:00:00+00",NULL}"#),
        );
        assert_eq!(
            a.unwrap(),
            serde_json::json!(["2024-01-01T10:00:00+00:00", null])
        );
        // date, time and timetz print in JSON as in text.
        assert_eq!(
            value_to_json("time with time zone", Some("10:00:00+00")).unwrap(),
            "10:00:00+00"
        );
        assert_eq!(
            value_to_json("date", Some("2024-01-01 BC")).unwrap(),
            "2024-01-01 BC"
        );
    }

    #[test]
    fn arrays_with_nulls_quotes_and_nesting() {
        let v = value_to_json("text[]", Some(r#"{a,"b c",NULL,"x\"y","NULL",""}"#)).unwrap();
        assert_eq!(v, serde_json::json!(["a", "b c", null, "x\"y", "NULL", ""]));
        let v = value_to_json("integer[]", Some("{{1,2},{3,NULL}}")).unwrap();
        assert_eq!(v.to_string(), "[[1,2],[3,null]]");
        let v = value_to_json("numeric[]", Some("[0:1]={1.50,NaN}")).unwrap();
        assert_eq!(v.to_string(), r#"[1.50,"NaN"]"#);
        assert_eq!(
            value_to_json("text[]", Some("{}")).unwrap(),
            serde_json::json!([])
        );
    }

    /// `box` prints its corners with commas and separates array elements
    /// with `;` (its typdelim).
    #[test]
    fn box_arrays_split_at_their_delimiter() {
        let text = "{(1,1),(0,0);(3,3),(2,2)}";
        let v = value_to_json_delimited("box[]", ';', Some(text)).unwrap();
        assert_eq!(v, serde_json::json!(["(1,1),(0,0)", "(3,3),(2,2)"]));
        let v = value_to_json_delimited("box[]", ';', Some("{{(1,1),(0,0)};{NULL}}")).unwrap();
        assert_eq!(v, serde_json::json!([["(1,1),(0,0)"], [null]]));
    }

    #[test]
    fn scalars_keep_their_text() {
        assert_eq!(
            value_to_json("numeric(20,0)", Some("12345678901234567890"))
                .unwrap()
                .to_string(),
            "12345678901234567890"
        );
        assert_eq!(
            value_to_json("double precision", Some("Infinity")).unwrap(),
            Value::String("Infinity".into())
        );
        assert_eq!(
            value_to_json("boolean", Some("f")).unwrap(),
            Value::Bool(false)
        );
        assert_eq!(
            value_to_json("jsonb", Some(r#"{"b": 1, "a": [true]}"#))
                .unwrap()
                .to_string(),
            r#"{"b":1,"a":[true]}"#
        );
        assert!(value_to_json("boolean", Some("maybe")).is_err());
    }
}
