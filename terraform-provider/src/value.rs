//! Terraform values (cty) and their wire encodings: msgpack both ways, JSON for stored state.
//!
//! Every value is decoded and encoded against its [`Type`], because the encoding depends on it:
//! an object always carries every attribute of its type (absent ones as null), a number may
//! arrive as an integer, a float or decimal text, and an unknown value is a msgpack extension.

use std::collections::BTreeMap;

use crate::tfplugin6::DynamicValue;

/// A cty type, as far as this provider uses types.
#[derive(Debug, Clone, PartialEq)]
pub enum Type {
    /// `string`.
    String,
    /// `number`.
    Number,
    /// `bool`.
    Bool,
    /// `list(T)`.
    List(Box<Type>),
    /// `set(T)`: a list whose order does not matter (its values are [`Value::List`]s).
    Set(Box<Type>),
    /// `map(T)`.
    Map(Box<Type>),
    /// `object({...})`, attributes in declaration order.
    Object(Vec<(&'static str, Type)>),
}

impl Type {
    /// The type as Terraform's schema wants it: JSON (`"string"`, `["list","string"]`, …).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            Type::String => json!("string"),
            Type::Number => json!("number"),
            Type::Bool => json!("bool"),
            Type::List(element) => json!(["list", element.to_json()]),
            Type::Set(element) => json!(["set", element.to_json()]),
            Type::Map(element) => json!(["map", element.to_json()]),
            Type::Object(attributes) => {
                let attributes: serde_json::Map<String, serde_json::Value> = attributes
                    .iter()
                    .map(|(name, ty)| ((*name).to_owned(), ty.to_json()))
                    .collect();
                json!(["object", attributes])
            }
        }
    }

    /// How the docs spell the type: `string`, `list(object({ id = string, … }))`.
    pub fn to_hcl(&self) -> String {
        match self {
            Type::String => "string".into(),
            Type::Number => "number".into(),
            Type::Bool => "bool".into(),
            Type::List(element) => format!("list({})", element.to_hcl()),
            Type::Set(element) => format!("set({})", element.to_hcl()),
            Type::Map(element) => format!("map({})", element.to_hcl()),
            Type::Object(_) => "object".into(),
        }
    }
}

/// A Terraform value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// Null (absent).
    Null,
    /// Not known until apply.
    Unknown,
    /// A string.
    String(String),
    /// A number.
    Number(f64),
    /// A bool.
    Bool(bool),
    /// A list.
    List(Vec<Value>),
    /// A map or an object.
    Map(BTreeMap<String, Value>),
}

/// An object value: attribute name to value. Missing attributes are null.
pub type Object = BTreeMap<String, Value>;

impl Value {
    /// The string, when this is a known string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The bool, when this is a known bool.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(flag) => Some(*flag),
            _ => None,
        }
    }

    /// The number, when this is a known number.
    pub fn as_number(&self) -> Option<f64> {
        match self {
            Value::Number(number) => Some(*number),
            _ => None,
        }
    }

    /// Whether this is unknown, or holds an unknown anywhere inside.
    pub fn is_unknown(&self) -> bool {
        match self {
            Value::Unknown => true,
            Value::List(items) => items.iter().any(Value::is_unknown),
            Value::Map(items) => items.values().any(Value::is_unknown),
            _ => false,
        }
    }

    /// `Some(text)` becomes a string, `None` null.
    pub fn opt_string(text: Option<impl Into<String>>) -> Value {
        text.map_or(Value::Null, |text| Value::String(text.into()))
    }
}

/// A value that could not be decoded.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct DecodeError {
    message: String,
}

fn decode_error(message: impl Into<String>) -> DecodeError {
    DecodeError {
        message: message.into(),
    }
}

/// Decodes a `DynamicValue` (msgpack, else JSON; empty means null) of type `ty`.
pub fn decode(value: Option<&DynamicValue>, ty: &Type) -> Result<Value, DecodeError> {
    let Some(value) = value else {
        return Ok(Value::Null);
    };
    if !value.msgpack.is_empty() {
        let raw = rmpv::decode::read_value(&mut value.msgpack.as_slice())
            .map_err(|error| decode_error(format!("invalid msgpack: {error}")))?;
        from_msgpack(&raw, ty)
    } else if !value.json.is_empty() {
        decode_json(&value.json, ty)
    } else {
        Ok(Value::Null)
    }
}

/// Decodes JSON (stored state) of type `ty`. Attributes the type does not know are dropped.
pub fn decode_json(json: &[u8], ty: &Type) -> Result<Value, DecodeError> {
    let raw: serde_json::Value = serde_json::from_slice(json)
        .map_err(|error| decode_error(format!("invalid JSON: {error}")))?;
    from_json(&raw, ty)
}

/// Encodes `value` of type `ty` as msgpack in a `DynamicValue`.
pub fn encode(value: &Value, ty: &Type) -> DynamicValue {
    let raw = to_msgpack(value, ty);
    let mut bytes = Vec::new();
    rmpv::encode::write_value(&mut bytes, &raw).expect("writing msgpack to a Vec cannot fail");
    DynamicValue {
        msgpack: bytes,
        json: Vec::new(),
    }
}

fn from_msgpack(raw: &rmpv::Value, ty: &Type) -> Result<Value, DecodeError> {
    use rmpv::Value as M;
    Ok(match (raw, ty) {
        (M::Nil, _) => Value::Null,
        // Terraform 1.0.3 writes unknowns as ext type 0; later versions may add refinements
        // (ext type 12). Every extension means unknown.
        (M::Ext(_, _), _) => Value::Unknown,
        (M::String(text), Type::String) => Value::String(
            text.as_str()
                .ok_or_else(|| decode_error("a string is not UTF-8"))?
                .to_owned(),
        ),
        (M::String(text), Type::Number) => Value::Number(
            text.as_str()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| decode_error("a number is not decimal text"))?,
        ),
        (M::Integer(number), Type::Number) => Value::Number(
            number
                .as_f64()
                .ok_or_else(|| decode_error("a number is out of range"))?,
        ),
        (M::F32(number), Type::Number) => Value::Number(f64::from(*number)),
        (M::F64(number), Type::Number) => Value::Number(*number),
        (M::Boolean(flag), Type::Bool) => Value::Bool(*flag),
        (M::Array(items), Type::List(element) | Type::Set(element)) => Value::List(
            items
                .iter()
                .map(|item| from_msgpack(item, element))
                .collect::<Result<_, _>>()?,
        ),
        (M::Map(entries), Type::Map(element)) => Value::Map(
            entries
                .iter()
                .map(|(key, item)| Ok((msgpack_key(key)?, from_msgpack(item, element)?)))
                .collect::<Result<_, DecodeError>>()?,
        ),
        (M::Map(entries), Type::Object(attributes)) => {
            let mut object = Object::new();
            for (key, item) in entries {
                let key = msgpack_key(key)?;
                if let Some((_, ty)) = attributes.iter().find(|(name, _)| *name == key) {
                    object.insert(key, from_msgpack(item, ty)?);
                }
            }
            Value::Map(object)
        }
        (raw, ty) => {
            return Err(decode_error(format!(
                "a {} was expected, got {raw}",
                ty.to_hcl()
            )));
        }
    })
}

fn msgpack_key(key: &rmpv::Value) -> Result<String, DecodeError> {
    key.as_str()
        .map(str::to_owned)
        .ok_or_else(|| decode_error("a map key is not a string"))
}

fn from_json(raw: &serde_json::Value, ty: &Type) -> Result<Value, DecodeError> {
    use serde_json::Value as J;
    Ok(match (raw, ty) {
        (J::Null, _) => Value::Null,
        (J::String(text), Type::String) => Value::String(text.clone()),
        (J::String(text), Type::Number) => Value::Number(
            text.parse()
                .map_err(|_| decode_error("a number is not decimal text"))?,
        ),
        (J::Number(number), Type::Number) => Value::Number(
            number
                .as_f64()
                .ok_or_else(|| decode_error("a number is out of range"))?,
        ),
        (J::Bool(flag), Type::Bool) => Value::Bool(*flag),
        (J::Array(items), Type::List(element) | Type::Set(element)) => Value::List(
            items
                .iter()
                .map(|item| from_json(item, element))
                .collect::<Result<_, _>>()?,
        ),
        (J::Object(entries), Type::Map(element)) => Value::Map(
            entries
                .iter()
                .map(|(key, item)| Ok((key.clone(), from_json(item, element)?)))
                .collect::<Result<_, DecodeError>>()?,
        ),
        (J::Object(entries), Type::Object(attributes)) => {
            let mut object = Object::new();
            for (name, ty) in attributes {
                if let Some(item) = entries.get(*name) {
                    object.insert((*name).to_owned(), from_json(item, ty)?);
                }
            }
            Value::Map(object)
        }
        (raw, ty) => {
            return Err(decode_error(format!(
                "a {} was expected, got {raw}",
                ty.to_hcl()
            )));
        }
    })
}

fn to_msgpack(value: &Value, ty: &Type) -> rmpv::Value {
    use rmpv::Value as M;
    match (value, ty) {
        (Value::Null, _) => M::Nil,
        (Value::Unknown, _) => M::Ext(0, vec![0]),
        (Value::String(text), _) => M::from(text.as_str()),
        (Value::Number(number), _) => {
            // Whole numbers go as integers, as Terraform writes them.
            if number.fract() == 0.0 && number.abs() < 9.0e15 {
                #[allow(clippy::cast_possible_truncation)]
                M::from(*number as i64)
            } else {
                M::F64(*number)
            }
        }
        (Value::Bool(flag), _) => M::Boolean(*flag),
        (Value::List(items), Type::List(element) | Type::Set(element)) => {
            M::Array(items.iter().map(|item| to_msgpack(item, element)).collect())
        }
        (Value::Map(items), Type::Map(element)) => M::Map(
            items
                .iter()
                .map(|(key, item)| (M::from(key.as_str()), to_msgpack(item, element)))
                .collect(),
        ),
        // An object carries exactly the attributes of its type.
        (Value::Map(items), Type::Object(attributes)) => M::Map(
            attributes
                .iter()
                .map(|(name, ty)| {
                    let item = items.get(*name).unwrap_or(&Value::Null);
                    (M::from(*name), to_msgpack(item, ty))
                })
                .collect(),
        ),
        // A value that does not fit its type is a bug in this provider; send null rather than
        // a value Terraform would reject with a less helpful message.
        (Value::List(_) | Value::Map(_), _) => M::Nil,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object_type() -> Type {
        Type::Object(vec![
            ("id", Type::String),
            ("count", Type::Number),
            ("on", Type::Bool),
            ("tags", Type::List(Box::new(Type::String))),
        ])
    }

    #[test]
    fn unknown_is_ext_zero_and_every_extension_decodes_as_unknown() {
        let encoded = encode(&Value::Unknown, &Type::String);
        assert_eq!(encoded.msgpack, vec![0xd4, 0x00, 0x00]);
        let refined = DynamicValue {
            msgpack: vec![0xd4, 0x0c, 0x01],
            json: Vec::new(),
        };
        assert_eq!(
            decode(Some(&refined), &Type::String).unwrap(),
            Value::Unknown
        );
    }

    #[test]
    fn objects_carry_every_attribute() {
        let mut object = Object::new();
        object.insert("id".into(), Value::String("1".into()));
        let encoded = encode(&Value::Map(object), &object_type());
        let raw = rmpv::decode::read_value(&mut encoded.msgpack.as_slice()).unwrap();
        assert_eq!(raw.as_map().unwrap().len(), 4);
        let decoded = decode(Some(&encoded), &object_type()).unwrap();
        let Value::Map(decoded) = decoded else {
            panic!("not an object")
        };
        assert_eq!(decoded["id"], Value::String("1".into()));
        assert_eq!(decoded["count"], Value::Null);
    }

    #[test]
    fn numbers_arrive_as_integers_floats_or_text() {
        for bytes in [
            vec![0x05],
            vec![0xcb, 0x40, 0x14, 0, 0, 0, 0, 0, 0],
            vec![0xa1, b'5'],
        ] {
            let value = DynamicValue {
                msgpack: bytes,
                json: Vec::new(),
            };
            assert_eq!(
                decode(Some(&value), &Type::Number).unwrap(),
                Value::Number(5.0)
            );
        }
    }

    #[test]
    fn json_state_decodes_and_drops_unknown_attributes() {
        let json = br#"{"id":"7","count":2,"on":true,"tags":["a"],"old":"x"}"#;
        let Value::Map(object) = decode_json(json, &object_type()).unwrap() else {
            panic!("not an object")
        };
        assert_eq!(object.len(), 4);
        assert_eq!(object["count"], Value::Number(2.0));
        assert_eq!(object["tags"], Value::List(vec![Value::String("a".into())]));
    }

    #[test]
    fn empty_dynamic_value_is_null() {
        assert_eq!(
            decode(Some(&DynamicValue::default()), &Type::String).unwrap(),
            Value::Null
        );
        assert_eq!(decode(None, &Type::String).unwrap(), Value::Null);
    }
}
