//! OpenAPI schemas (feature `openapi`) for the types the API's wire contract carries: ids are
//! lowercase hex strings, quantities are integers, names are checked strings.

use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;

/// A 64-character lowercase hex string (a 32-byte id).
pub(crate) fn hex32(what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .pattern(Some("^[0-9a-f]{64}$"))
        .description(Some(format!("{what}: 32 bytes as 64 lowercase hex characters")))
        .into()
}

/// A non-negative integer.
pub(crate) fn integer(what: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Integer))
        .minimum(Some(0))
        .description(Some(what.to_owned()))
        .into()
}

/// A bounded name.
pub(crate) fn name(what: &str, max: usize) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::String))
        .min_length(Some(1))
        .max_length(Some(max))
        .description(Some(what.to_owned()))
        .into()
}

/// Implements the schema traits for a type whose schema `$f($what)` builds.
macro_rules! schema {
    ($name:ident, $($f:tt)*) => {
        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $($f)*
            }
        }
        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use schema;
