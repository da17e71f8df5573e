//! Declarations of the provider's configuration, resources and data sources: each attribute is
//! declared once, with its name, type, presence, sensitivity, whether changing it replaces the
//! object, and its description. The tfplugin6 schema ([`Schema::to_proto`]) and the
//! documentation in `docs/terraform/` ([`docs`]) are both generated from the declaration.

pub mod docs;

use crate::tfplugin6;
use crate::value::{Object, Type, Value};

/// Who sets an attribute's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presence {
    /// The user, always.
    Required,
    /// The user, or nobody (null).
    Optional,
    /// The provider (from the service), never the user.
    Computed,
    /// The user; when the user does not, the service picks the value.
    OptionalComputed,
}

/// One attribute of a schema.
#[derive(Debug, Clone)]
pub struct Attribute {
    /// Its name in HCL.
    pub name: &'static str,
    /// Its type.
    pub ty: Type,
    /// Who sets it.
    pub presence: Presence,
    /// Redacted in plans and logs (still plaintext in the state, as everywhere in Terraform).
    pub sensitive: bool,
    /// Changing it replaces the object (the API cannot change it in place).
    pub force_new: bool,
    /// What it is, for the schema and the docs (Markdown).
    pub description: &'static str,
    /// For a `list(object)`: the object's attributes, for the docs.
    pub fields: Vec<Attribute>,
}

impl Attribute {
    fn new(name: &'static str, ty: Type, presence: Presence, description: &'static str) -> Self {
        Attribute {
            name,
            ty,
            presence,
            sensitive: false,
            force_new: false,
            description,
            fields: Vec::new(),
        }
    }

    /// An attribute the user must set.
    pub fn required(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::Required, description)
    }

    /// An attribute the user may set.
    pub fn optional(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::Optional, description)
    }

    /// An attribute the service sets.
    pub fn computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::Computed, description)
    }

    /// An attribute the user may set, else the service picks it.
    pub fn optional_computed(name: &'static str, ty: Type, description: &'static str) -> Self {
        Attribute::new(name, ty, Presence::OptionalComputed, description)
    }

    /// A computed `list(object)` whose object has `fields`.
    pub fn computed_list_of(
        name: &'static str,
        fields: Vec<Attribute>,
        description: &'static str,
    ) -> Self {
        let object = Type::Object(
            fields
                .iter()
                .map(|field| (field.name, field.ty.clone()))
                .collect(),
        );
        let mut attribute = Attribute::computed(name, Type::List(Box::new(object)), description);
        attribute.fields = fields;
        attribute
    }

    /// Marks it sensitive.
    pub fn sensitive(mut self) -> Self {
        self.sensitive = true;
        self
    }

    /// Marks it as replacing the object when changed.
    pub fn force_new(mut self) -> Self {
        self.force_new = true;
        self
    }

    /// Whether the provider may set it.
    pub fn is_computed(&self) -> bool {
        matches!(
            self.presence,
            Presence::Computed | Presence::OptionalComputed
        )
    }

    /// Whether the user may set it.
    pub fn is_settable(&self) -> bool {
        !matches!(self.presence, Presence::Computed)
    }

    fn to_proto(&self) -> tfplugin6::schema::Attribute {
        tfplugin6::schema::Attribute {
            name: self.name.to_owned(),
            r#type: self.ty.to_json().to_string().into_bytes(),
            nested_type: None,
            description: self.description.to_owned(),
            required: self.presence == Presence::Required,
            optional: matches!(
                self.presence,
                Presence::Optional | Presence::OptionalComputed
            ),
            computed: self.is_computed(),
            sensitive: self.sensitive,
            description_kind: tfplugin6::StringKind::Markdown.into(),
            deprecated: false,
        }
    }
}

/// What a schema describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The `provider "talosmanager"` block.
    Provider,
    /// A `resource`.
    Resource,
    /// A `data` source.
    DataSource,
    /// An `ephemeral` resource (protocol 6.7+): opened for a run, never stored.
    EphemeralResource,
}

/// The schema of the provider block, a resource or a data source.
#[derive(Debug, Clone)]
pub struct Schema {
    /// `talosmanager_…` (or `talosmanager` for the provider).
    pub type_name: &'static str,
    /// What it describes.
    pub kind: Kind,
    /// Its version: bump it when the stored shape changes (and upgrade old states).
    pub version: i64,
    /// What it is (Markdown), the first paragraph of its docs.
    pub description: &'static str,
    /// Its attributes, in the order the docs list them.
    pub attributes: Vec<Attribute>,
    /// How `terraform import` finds one, for the docs (resources only).
    pub import: Option<&'static str>,
    /// A short HCL example for the docs.
    pub example: &'static str,
}

impl Schema {
    /// The object type of its values.
    pub fn object_type(&self) -> Type {
        Type::Object(
            self.attributes
                .iter()
                .map(|attribute| (attribute.name, attribute.ty.clone()))
                .collect(),
        )
    }

    /// The attribute named `name`.
    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|attribute| attribute.name == name)
    }

    /// The tfplugin6 schema.
    pub fn to_proto(&self) -> tfplugin6::Schema {
        tfplugin6::Schema {
            version: self.version,
            block: Some(tfplugin6::schema::Block {
                version: self.version,
                attributes: self.attributes.iter().map(Attribute::to_proto).collect(),
                block_types: Vec::new(),
                description: self.description.to_owned(),
                description_kind: tfplugin6::StringKind::Markdown.into(),
                deprecated: false,
            }),
        }
    }

    /// An object of this schema from `(name, value)` pairs; attributes not given are null.
    pub fn object(&self, values: impl IntoIterator<Item = (&'static str, Value)>) -> Object {
        let mut object: Object = self
            .attributes
            .iter()
            .map(|attribute| (attribute.name.to_owned(), Value::Null))
            .collect();
        for (name, value) in values {
            debug_assert!(
                self.attribute(name).is_some(),
                "{name} is not in the schema"
            );
            object.insert(name.to_owned(), value);
        }
        object
    }
}

/// Reading attributes of an object value.
pub trait ObjectExt {
    /// The attribute's value (null when absent).
    fn get_value(&self, name: &str) -> &Value;
    /// The attribute as a known string, `None` when null or unknown.
    fn string(&self, name: &str) -> Option<&str> {
        self.get_value(name).as_str()
    }
    /// The attribute as an owned string, `None` when null or unknown.
    fn owned_string(&self, name: &str) -> Option<String> {
        self.string(name).map(str::to_owned)
    }
    /// The attribute as a known bool.
    fn bool(&self, name: &str) -> Option<bool> {
        self.get_value(name).as_bool()
    }
}

impl ObjectExt for Object {
    fn get_value(&self, name: &str) -> &Value {
        self.get(name).unwrap_or(&Value::Null)
    }
}
