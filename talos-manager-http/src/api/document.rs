//! Corrections to the OpenAPI document poem-openapi generates, so that it describes what the
//! API really sends (schemathesis checks every response against it: `docs/testing.md`).
//!
//! - An `Option` field is serialized as `null` when empty, but poem-openapi (OpenAPI 3.0) only
//!   leaves it out of `required`: such properties are marked `nullable`.
//! - poem-openapi documents a `text/event-stream` body as an array of its events' payloads,
//!   while OpenAPI 3.0 tools read that schema as one event (`data`, `event`, `id`, `retry`):
//!   the schema becomes one event whose `data` is the payload's JSON (`contentSchema`).

use serde_json::{Map, Value, json};

/// The document with both corrections applied (pretty-printed).
pub(super) fn refine(spec: &str) -> String {
    let mut document: Value =
        serde_json::from_str(spec).expect("poem-openapi generates a JSON document");
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for schema in schemas.values_mut() {
            mark_optional_nullable(schema);
        }
    }
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for operation in paths.values_mut().filter_map(Value::as_object_mut) {
            for operation in operation.values_mut() {
                let Some(responses) = operation
                    .get_mut("responses")
                    .and_then(Value::as_object_mut)
                else {
                    continue;
                };
                for response in responses.values_mut() {
                    if let Some(stream) = response.pointer_mut("/content/text~1event-stream") {
                        describe_one_event(stream);
                    }
                }
            }
        }
    }
    serde_json::to_string_pretty(&document).expect("a JSON value serializes")
}

/// Marks `nullable` every property of an object schema that is neither required nor has a
/// default: poem-openapi generates exactly those for `Option` fields, which serialize as
/// `null` and accept it.
fn mark_optional_nullable(schema: &mut Value) {
    let required: Vec<String> = schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| {
            names
                .iter()
                .filter_map(|name| name.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let Some(properties) = schema.get_mut("properties").and_then(Value::as_object_mut) else {
        return;
    };
    for (name, property) in properties.iter_mut() {
        if required.contains(name) {
            continue;
        }
        if let Some(property) = property.as_object_mut()
            && !property.contains_key("default")
        {
            property.insert("nullable".to_owned(), Value::Bool(true));
        }
    }
}

/// Rewrites `{"schema": {"type": "array", "format": "event-stream", "items": ITEM}}` into the
/// schema of one server-sent event whose `data` is ITEM as JSON.
fn describe_one_event(media_type: &mut Value) {
    let Some(schema) = media_type.get_mut("schema").and_then(Value::as_object_mut) else {
        return;
    };
    let Some(item) = schema.get("items").cloned() else {
        return;
    };
    let mut event = Map::new();
    event.insert("type".to_owned(), json!("object"));
    if let Some(description) = schema.get("description").cloned() {
        event.insert("description".to_owned(), description);
    }
    event.insert(
        "properties".to_owned(),
        json!({
            "data": {
                "type": "string",
                "description": "The event's payload, as JSON.",
                "contentMediaType": "application/json",
                "contentSchema": item,
            },
            "event": {"type": "string"},
            "id": {"type": "string"},
            "retry": {"type": "integer"},
        }),
    );
    event.insert("required".to_owned(), json!(["data"]));
    *schema = event;
}
