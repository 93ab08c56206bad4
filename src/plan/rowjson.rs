//! A pulled row as JSON, for the plan's "every other column goes into a
//! jsonb" moves. Values keep their exact text: numbers stay the digits
//! Postgres printed, arrays become JSON arrays of their typed elements,
//! json/jsonb columns are embedded as documents, everything else is the
//! string Postgres prints.

use serde_json::{Map, Value};

use crate::catalog::TableMeta;

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

fn scalar_to_json(pg_type: &str, text: &str) -> Result<Value, String> {
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
        _ => Value::String(text.to_string()),
    })
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
        let v = value_to_json_delimited(&col.pg_type, col.delimiter(), val.as_deref()).map_err(
            |e| {
                format!(
                    "{}.{} of row {}: {e}",
                    meta.name,
                    col.name,
                    key_of(meta, values)
                )
            },
        )?;
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
