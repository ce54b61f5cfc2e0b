//! Sparse fieldsets (`fields=id,name,status`): a certificate is written with only the asked-for
//! fields, straight from the typed value (no serialize-to-map-and-filter round trip).

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, Serializer};
use utoipa::openapi::schema::{AnyOfBuilder, Schema};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{PartialSchema, ToSchema};

use certctl_actors::domain::certificate::Certificate;

use super::problem::ApiError;

/// Every field a certificate has, in output order.
pub const CERTIFICATE_FIELDS: [&str; 21] = [
    "id",
    "name",
    "common_name",
    "sans",
    "environment",
    "owner_id",
    "team_id",
    "issuer_id",
    "renewal_policy_id",
    "certificate_profile_id",
    "status",
    "expires_at",
    "tags",
    "target_ids",
    "last_renewal_at",
    "last_deployment_at",
    "revoked_at",
    "revocation_reason",
    "source",
    "created_at",
    "updated_at",
];

/// A set of certificate fields, as a bitmask over [`CERTIFICATE_FIELDS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSet(u32);

impl FieldSet {
    /// Parses `fields=a,b,c`; an unknown name is a 400 listing the accepted ones.
    pub fn parse(list: &str) -> Result<FieldSet, ApiError> {
        let mut mask = 0u32;
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let index = CERTIFICATE_FIELDS.iter().position(|f| *f == name).ok_or_else(|| {
                ApiError::InvalidQuery(format!(
                    "fields: unknown field {name:?}; known: {}",
                    CERTIFICATE_FIELDS.join(", ")
                ))
            })?;
            mask |= 1 << index;
        }
        if mask == 0 {
            return Err(ApiError::InvalidQuery("fields must name at least one field".into()));
        }
        Ok(FieldSet(mask))
    }

    fn has(self, index: usize) -> bool {
        self.0 & (1 << index) != 0
    }
}

/// A certificate written with only the fields of a [`FieldSet`].
pub struct Sparse<'a>(pub &'a Certificate, pub FieldSet);

impl Serialize for Sparse<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (c, set) = (self.0, self.1);
        let mut map = serializer.serialize_map(Some(set.0.count_ones() as usize))?;
        for (index, name) in CERTIFICATE_FIELDS.iter().enumerate() {
            if !set.has(index) {
                continue;
            }
            match index {
                0 => map.serialize_entry(name, &c.id)?,
                1 => map.serialize_entry(name, &c.name)?,
                2 => map.serialize_entry(name, &c.common_name)?,
                3 => map.serialize_entry(name, &c.sans)?,
                4 => map.serialize_entry(name, &c.environment)?,
                5 => map.serialize_entry(name, &c.owner_id)?,
                6 => map.serialize_entry(name, &c.team_id)?,
                7 => map.serialize_entry(name, &c.issuer_id)?,
                8 => map.serialize_entry(name, &c.renewal_policy_id)?,
                9 => map.serialize_entry(name, &c.certificate_profile_id)?,
                10 => map.serialize_entry(name, &c.status)?,
                11 => map.serialize_entry(name, &c.expires_at)?,
                12 => map.serialize_entry(name, &c.tags)?,
                13 => map.serialize_entry(name, &c.target_ids)?,
                14 => map.serialize_entry(name, &c.last_renewal_at)?,
                15 => map.serialize_entry(name, &c.last_deployment_at)?,
                16 => map.serialize_entry(name, &c.revoked_at)?,
                17 => map.serialize_entry(name, &c.revocation_reason)?,
                18 => map.serialize_entry(name, &c.source)?,
                19 => map.serialize_entry(name, &c.created_at)?,
                _ => map.serialize_entry(name, &c.updated_at)?,
            }
        }
        map.end()
    }
}

/// One row of the certificate list: the whole certificate, or (with `fields=`) only the asked-for
/// fields.
#[derive(serde::Serialize)]
#[serde(untagged)]
pub enum CertificateListItem<'a> {
    Full(&'a Certificate),
    Sparse(Sparse<'a>),
}

/// The schema of a sparse certificate: the properties of `Certificate`, none of them required
/// (a `fields=` answer carries only the named ones).
pub struct SparseCertificate;

impl PartialSchema for SparseCertificate {
    fn schema() -> RefOr<Schema> {
        let mut schema = Certificate::schema();
        if let RefOr::T(Schema::Object(object)) = &mut schema {
            object.required.clear();
            object.description =
                Some("A certificate with only the properties named in `fields=` (each as in `Certificate`).".into());
        }
        schema
    }
}

impl ToSchema for SparseCertificate {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("SparseCertificate")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        Certificate::schemas(schemas);
    }
}

impl PartialSchema for CertificateListItem<'_> {
    fn schema() -> RefOr<Schema> {
        AnyOfBuilder::new()
            .item(Ref::from_schema_name(Certificate::name()))
            .item(Ref::from_schema_name(SparseCertificate::name()))
            .description(Some("A whole certificate, or with `fields=` only the named properties."))
            .into()
    }
}

impl ToSchema for CertificateListItem<'_> {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("CertificateListItem")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((Certificate::name().into_owned(), Certificate::schema()));
        Certificate::schemas(schemas);
        schemas.push((SparseCertificate::name().into_owned(), SparseCertificate::schema()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_refused() {
        assert!(FieldSet::parse("id,name").is_ok());
        assert!(FieldSet::parse("id,colour").is_err());
        assert!(FieldSet::parse(" , ").is_err());
    }
}
