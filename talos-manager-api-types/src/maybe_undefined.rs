//! [`MaybeUndefined`]: a field of a partial update that is absent, `null` or a value.

/// A field of a partial update (`PATCH`): absent (leave it as it is), `null` (clear it) or a
/// value. Put `#[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]` on
/// the field, so that an absent field stays absent on the wire; with the `openapi` feature it
/// is an optional, nullable property of the OpenAPI document, as poem-openapi's own
/// `MaybeUndefined` is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MaybeUndefined<T> {
    /// The field is absent: leave the stored value as it is.
    #[default]
    Undefined,
    /// The field is `null`: clear the stored value.
    Null,
    /// The field has a value.
    Value(T),
}

impl<T> MaybeUndefined<T> {
    /// Whether the field is absent.
    pub fn is_undefined(&self) -> bool {
        matches!(self, MaybeUndefined::Undefined)
    }
}

impl<T: serde::Serialize> serde::Serialize for MaybeUndefined<T> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            MaybeUndefined::Value(value) => value.serialize(serializer),
            MaybeUndefined::Undefined | MaybeUndefined::Null => serializer.serialize_none(),
        }
    }
}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for MaybeUndefined<T> {
    /// A present field: `null` or a value (an absent one is the `Default`).
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match Option::<T>::deserialize(deserializer)? {
            Some(value) => MaybeUndefined::Value(value),
            None => MaybeUndefined::Null,
        })
    }
}

/// The OpenAPI side, as poem-openapi describes its own `MaybeUndefined`: not required, the
/// value's schema.
#[cfg(feature = "openapi")]
mod openapi {
    use std::borrow::Cow;

    use poem_openapi::registry::{MetaSchemaRef, Registry};
    use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
    use serde_json::Value;

    use super::MaybeUndefined;

    impl<T: Type> Type for MaybeUndefined<T> {
        const IS_REQUIRED: bool = false;

        type RawValueType = T::RawValueType;

        type RawElementValueType = T::RawElementValueType;

        fn name() -> Cow<'static, str> {
            format!("optional_{}", T::name()).into()
        }

        fn schema_ref() -> MetaSchemaRef {
            T::schema_ref()
        }

        fn register(registry: &mut Registry) {
            T::register(registry);
        }

        fn as_raw_value(&self) -> Option<&Self::RawValueType> {
            match self {
                MaybeUndefined::Value(value) => value.as_raw_value(),
                MaybeUndefined::Undefined | MaybeUndefined::Null => None,
            }
        }

        fn raw_element_iter<'a>(
            &'a self,
        ) -> Box<dyn Iterator<Item = &'a Self::RawElementValueType> + 'a> {
            match self {
                MaybeUndefined::Value(value) => value.raw_element_iter(),
                MaybeUndefined::Undefined | MaybeUndefined::Null => Box::new(std::iter::empty()),
            }
        }

        fn is_none(&self) -> bool {
            !matches!(self, MaybeUndefined::Value(_))
        }
    }

    impl<T: ParseFromJSON> ParseFromJSON for MaybeUndefined<T> {
        fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
            match value {
                None => Ok(MaybeUndefined::Undefined),
                Some(Value::Null) => Ok(MaybeUndefined::Null),
                Some(value) => T::parse_from_json(Some(value))
                    .map(MaybeUndefined::Value)
                    .map_err(ParseError::propagate),
            }
        }
    }

    impl<T: ToJSON> ToJSON for MaybeUndefined<T> {
        fn to_json(&self) -> Option<Value> {
            match self {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(Value::Null),
                MaybeUndefined::Value(value) => value.to_json(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MaybeUndefined;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Patch {
        #[serde(default, skip_serializing_if = "MaybeUndefined::is_undefined")]
        field: MaybeUndefined<String>,
    }

    #[test]
    fn absent_null_and_value_round_trip() {
        for (patch, json) in [
            (MaybeUndefined::Undefined, "{}"),
            (MaybeUndefined::Null, r#"{"field":null}"#),
            (MaybeUndefined::Value("3".to_owned()), r#"{"field":"3"}"#),
        ] {
            let patch = Patch { field: patch };
            assert_eq!(serde_json::to_string(&patch).unwrap(), json);
            assert_eq!(serde_json::from_str::<Patch>(json).unwrap(), patch);
        }
    }
}
