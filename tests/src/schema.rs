//! A JSON Schema checker for the subset the schemas in `docs/schemas/` use (`type`, `const`,
//! `enum`, `required`, `properties`, `additionalProperties`, `items`, `minimum`, `oneOf`, and
//! `$ref` to `#/$defs/…`), so the black-box tests can hold real uplink output against them
//! without a schema crate. A keyword outside the subset is reported as an error rather than
//! silently ignored, so a schema cannot grow past what is checked.

use serde_json::Value;

const KNOWN: &[&str] = &[
    "$schema",
    "$id",
    "$defs",
    "$ref",
    "title",
    "description",
    "type",
    "const",
    "enum",
    "required",
    "properties",
    "additionalProperties",
    "items",
    "minimum",
    "oneOf",
];

/// Every way `instance` breaks `schema` (empty: it conforms), each with its JSON path.
pub fn violations(schema: &Value, instance: &Value) -> Vec<String> {
    let mut out = Vec::new();
    check(schema, schema, instance, "$", &mut out);
    out
}

fn type_ok(name: &str, v: &Value) -> bool {
    match name {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        _ => false,
    }
}

fn check(root: &Value, schema: &Value, v: &Value, at: &str, out: &mut Vec<String>) {
    let Some(s) = schema.as_object() else {
        if schema == &Value::Bool(false) {
            out.push(format!("{at}: not allowed"));
        }
        return;
    };
    for key in s.keys() {
        if !KNOWN.contains(&key.as_str()) {
            out.push(format!(
                "{at}: schema keyword `{key}` is not supported by this checker"
            ));
        }
    }
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        match r
            .strip_prefix("#/$defs/")
            .and_then(|name| root.get("$defs")?.get(name))
        {
            Some(target) => check(root, target, v, at, out),
            None => out.push(format!("{at}: unresolved $ref {r}")),
        }
    }
    if let Some(t) = s.get("type") {
        let names: Vec<&str> = match t {
            Value::String(n) => vec![n.as_str()],
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.iter().any(|n| type_ok(n, v)) {
            out.push(format!("{at}: {v} is not of type {t}"));
            return;
        }
    }
    if let Some(c) = s.get("const")
        && c != v
    {
        out.push(format!("{at}: {v} is not {c}"));
    }
    if let Some(e) = s.get("enum").and_then(Value::as_array)
        && !e.contains(v)
    {
        out.push(format!(
            "{at}: {v} is not one of {}",
            Value::Array(e.clone())
        ));
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
        && n < min
    {
        out.push(format!("{at}: {n} < minimum {min}"));
    }
    if let Some(one_of) = s.get("oneOf").and_then(Value::as_array) {
        let matching = one_of
            .iter()
            .filter(|sub| {
                let mut inner = Vec::new();
                check(root, sub, v, at, &mut inner);
                inner.is_empty()
            })
            .count();
        if matching != 1 {
            out.push(format!("{at}: matches {matching} of oneOf, not exactly 1"));
        }
    }
    if let (Some(items), Some(array)) = (s.get("items"), v.as_array()) {
        for (i, item) in array.iter().enumerate() {
            check(root, items, item, &format!("{at}[{i}]"), out);
        }
    }
    if let Some(object) = v.as_object() {
        if let Some(required) = s.get("required").and_then(Value::as_array) {
            for key in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(key) {
                    out.push(format!("{at}: missing required `{key}`"));
                }
            }
        }
        let properties = s.get("properties").and_then(Value::as_object);
        for (key, value) in object {
            let path = format!("{at}.{key}");
            match properties.and_then(|p| p.get(key)) {
                Some(sub) => check(root, sub, value, &path, out),
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => out.push(format!("{path}: not in the schema")),
                    Some(sub @ Value::Object(_)) => check(root, sub, value, &path, out),
                    _ => {}
                },
            }
        }
    }
}
