//! Renewal policies (certctl's `renewal_policies`): when and how certificates renew. The renewal
//! engine reads the window, `renew_at_fraction`, `auto_renew` and the retry settings; alert
//! thresholds are stored for the notifier, which is not built yet.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::types::Json;
use tokio_postgres::Row;

use super::{set_if, Column, Resource};
use crate::domain::validation::{FieldError, Violations};
use crate::error::DbError;

#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct RenewalPolicy {
    pub id: String,
    pub name: String,
    pub renewal_window_days: i32,
    pub auto_renew: bool,
    pub max_retries: i32,
    pub retry_interval_seconds: i32,
    pub alert_thresholds_days: Vec<i32>,
    /// Share of a certificate's lifetime after which it renews when the window would come later.
    pub renew_at_fraction: f64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn default_window() -> i32 {
    30
}
fn default_true() -> bool {
    true
}
fn default_retries() -> i32 {
    3
}
fn default_retry_interval() -> i32 {
    3600
}
fn default_fraction() -> f64 {
    0.6667
}

fn default_thresholds() -> Vec<i32> {
    vec![30, 14, 7, 0]
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"name": "short", "renewal_window_days": 10}))]
pub struct NewRenewalPolicy {
    #[serde(default)]
    pub id: Option<String>,
    pub name: String,
    #[serde(default = "default_window")]
    pub renewal_window_days: i32,
    #[serde(default = "default_true")]
    pub auto_renew: bool,
    #[serde(default = "default_retries")]
    pub max_retries: i32,
    #[serde(default = "default_retry_interval")]
    pub retry_interval_seconds: i32,
    #[serde(default = "default_thresholds")]
    pub alert_thresholds_days: Vec<i32>,
    #[serde(default = "default_fraction")]
    pub renew_at_fraction: f64,
}

#[derive(Debug, Default, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RenewalPolicyPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renewal_window_days: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auto_renew: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_interval_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alert_thresholds_days: Option<Vec<i32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renew_at_fraction: Option<f64>,
}

fn check_numbers(
    v: &mut Violations,
    window: Option<i32>,
    retries: Option<i32>,
    interval: Option<i32>,
    thresholds: Option<&[i32]>,
    fraction: Option<f64>,
) {
    if window.is_some_and(|w| !(1..=365).contains(&w)) {
        v.add("renewal_window_days", "must be between 1 and 365");
    }
    if retries.is_some_and(|r| !(0..=100).contains(&r)) {
        v.add("max_retries", "must be between 0 and 100");
    }
    if interval.is_some_and(|i| !(1..=604_800).contains(&i)) {
        v.add("retry_interval_seconds", "must be between 1 and 604800 (a week)");
    }
    // A fraction so small that renewal would start at issuance (1e-320) or so close to 1 that it
    // would start at expiry means nothing useful; two decimals of the lifetime is fine enough.
    if fraction.is_some_and(|f| !(0.01..=0.99).contains(&f)) {
        v.add("renew_at_fraction", "must be between 0.01 and 0.99, e.g. 0.6667");
    }
    if let Some(thresholds) = thresholds {
        if thresholds.len() > 20 || thresholds.iter().any(|d| !(0..=365).contains(d)) {
            v.add("alert_thresholds_days", "must list at most 20 day counts between 0 and 365");
        }
    }
}

impl Resource for RenewalPolicy {
    const TABLE: &'static str = "renewal_policies";
    const KIND: &'static str = "renewal_policy";
    const ID_PREFIX: &'static str = "rp";
    const COLUMNS: &'static str = "id, name, renewal_window_days, auto_renew, max_retries, retry_interval_seconds, \
        alert_thresholds_days, renew_at_fraction, created_at, updated_at";
    const FILTERS: &'static [(&'static str, &'static str)] = &[];
    /// A changed policy moves `renew_at` of every certificate under it: recomputed from the current
    /// version's issuance and expiry with the new window and fraction, or cleared when the policy
    /// no longer renews automatically (so the scan never reads those certificates).
    const UPDATE_FOLLOW_UP: Option<&'static str> = Some(
        "renew AS (UPDATE managed_certificates m SET renew_at = CASE \
           WHEN NOT c.auto_renew THEN NULL \
           WHEN m.expires_at IS NULL THEN coalesce(m.renew_at, now()) \
           ELSE certctl_renew_at(coalesce(m.last_renewal_at, m.created_at), m.expires_at, \
                                 c.renewal_window_days, c.renew_at_fraction) END \
         FROM c WHERE m.renewal_policy_id = c.id AND m.status NOT IN ('Archived', 'Revoked'))",
    );
    type New = NewRenewalPolicy;
    type Patch = RenewalPolicyPatch;

    fn id(&self) -> &str {
        &self.id
    }

    fn from_row(row: &Row) -> Result<Self, DbError> {
        let thresholds: Json<Vec<i32>> = row.try_get("alert_thresholds_days")?;
        Ok(RenewalPolicy {
            id: row.try_get("id")?,
            name: row.try_get("name")?,
            renewal_window_days: row.try_get("renewal_window_days")?,
            auto_renew: row.try_get("auto_renew")?,
            max_retries: row.try_get("max_retries")?,
            retry_interval_seconds: row.try_get("retry_interval_seconds")?,
            alert_thresholds_days: thresholds.0,
            renew_at_fraction: row.try_get("renew_at_fraction")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }

    fn validate_new(new: &NewRenewalPolicy) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(id) = &new.id {
            v.id("id", id);
        }
        v.text("name", &new.name, 255);
        check_numbers(
            &mut v,
            Some(new.renewal_window_days),
            Some(new.max_retries),
            Some(new.retry_interval_seconds),
            Some(&new.alert_thresholds_days),
            Some(new.renew_at_fraction),
        );
        v.into_result()
    }

    fn validate_patch(patch: &RenewalPolicyPatch) -> Result<(), Vec<FieldError>> {
        let mut v = Violations::default();
        if let Some(name) = &patch.name {
            v.text("name", name, 255);
        }
        check_numbers(
            &mut v,
            patch.renewal_window_days,
            patch.max_retries,
            patch.retry_interval_seconds,
            patch.alert_thresholds_days.as_deref(),
            patch.renew_at_fraction,
        );
        v.into_result()
    }

    fn insert_columns(new: NewRenewalPolicy) -> (Option<String>, Vec<Column>) {
        (
            new.id,
            vec![
                ("name", Box::new(new.name)),
                ("renewal_window_days", Box::new(new.renewal_window_days)),
                ("auto_renew", Box::new(new.auto_renew)),
                ("max_retries", Box::new(new.max_retries)),
                ("retry_interval_seconds", Box::new(new.retry_interval_seconds)),
                ("alert_thresholds_days", Box::new(Json(new.alert_thresholds_days))),
                ("renew_at_fraction", Box::new(new.renew_at_fraction)),
            ],
        )
    }

    fn update_columns(patch: RenewalPolicyPatch) -> Vec<Column> {
        let mut columns = Vec::new();
        set_if(&mut columns, "name", patch.name);
        set_if(&mut columns, "renewal_window_days", patch.renewal_window_days);
        set_if(&mut columns, "auto_renew", patch.auto_renew);
        set_if(&mut columns, "max_retries", patch.max_retries);
        set_if(&mut columns, "retry_interval_seconds", patch.retry_interval_seconds);
        set_if(&mut columns, "alert_thresholds_days", patch.alert_thresholds_days.map(Json));
        set_if(&mut columns, "renew_at_fraction", patch.renew_at_fraction);
        columns
    }
}
