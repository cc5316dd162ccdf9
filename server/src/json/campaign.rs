//! `PUT /v1/campaigns/{id}` and its `GET`: the "Campaign" JSON of
//! `interfaces.md` ⇄ the engine's [`Campaign`]. The JSON is read strictly
//! (unknown fields refused, every error naming its JSON path), converted to
//! the engine's representation, and then checked by `Campaign::validate`, the
//! engine's own rules. Settings are in `settings.rs`; the rules a campaign
//! follows when it runs are in `docs/design/campaigns.md`.

use std::collections::BTreeSet;

use jiff::civil::{DateTime, Weekday};
use jiff::tz::TimeZone;
use nudge_engine::campaign::{
    Action, Campaign, Conversion, Every, IfPassed, Message, Recurring, Schedule, ScheduleZone,
    StoredCampaign, USER_ZONE_NAME, Variant, Webhook, format_local_time, parse_local_time,
    weekday_name,
};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};

use super::settings::{CapsJson, DndJson};
use super::values::{present, timestamp_json};
use super::{DurationMs, FieldError, format_duration, from_value, parse_timestamp_text};

/// The schedule `timezone` meaning each user's own zone (their `timezone`
/// profile property, else the default one); also what an absent `timezone` means.
pub const USER_TIMEZONE: &str = USER_ZONE_NAME;
/// What an absent `schedule.if_passed` means.
pub const DEFAULT_IF_PASSED: IfPassed = IfPassed::Drop;

/// The body of `PUT /v1/campaigns/{id}` as it is read, before its checks;
/// [`CampaignJson::into_campaign`] makes the engine's campaign of it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a campaign object")]
pub struct CampaignJson {
    id: Option<String>,
    /// Read-only (pausing is `POST /v1/campaigns/{id}/pause`); accepted so
    /// that a campaign read with `GET` can be sent back with `PUT`.
    #[serde(rename = "paused")]
    _paused: Option<bool>,
    /// Read-only, like `paused`.
    #[serde(rename = "saved_at")]
    _saved_at: Option<IgnoredAny>,
    name: Option<String>,
    trigger: Option<String>,
    audience: Option<String>,
    schedule: Option<ScheduleJson>,
    message: Option<MessageJson>,
    variants: Option<Vec<VariantJson>>,
    control_group_percent: Option<f64>,
    ignore_global_caps: Option<bool>,
    caps: Option<CapsJson>,
    dnd: Option<DndJson>,
    conversion: Option<ConversionJson>,
    webhook: Option<WebhookJson>,
}

/// A message, or a variant's changes to the campaign's message: an absent
/// field keeps the campaign's value, `null` clears an optional one.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a message object")]
struct MessageJson {
    title: Option<String>,
    body: Option<String>,
    #[serde(default, deserialize_with = "present")]
    url: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    icon: Option<Option<String>>,
    #[serde(default, deserialize_with = "present")]
    image: Option<Option<String>>,
    actions: Option<Vec<ActionJson>>,
    require_interaction: Option<bool>,
    #[serde(default, deserialize_with = "present")]
    ttl: Option<Option<DurationMs>>,
    #[serde(default, deserialize_with = "present")]
    urgency: Option<Option<Urgency>>,
    #[serde(default, deserialize_with = "present")]
    topic: Option<Option<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "an action object such as {\"title\": …, \"url\": …}")]
struct ActionJson {
    title: String,
    url: String,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "kebab-case")]
enum Urgency {
    VeryLow,
    Low,
    Normal,
    High,
}

impl Urgency {
    fn name(self) -> &'static str {
        match self {
            Urgency::VeryLow => "very-low",
            Urgency::Low => "low",
            Urgency::Normal => "normal",
            Urgency::High => "high",
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a variant object such as {\"name\": \"A\", \"weight\": 50}"
)]
struct VariantJson {
    name: String,
    weight: u32,
    message: Option<MessageJson>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, expecting = "a schedule object")]
struct ScheduleJson {
    at: Option<Vec<String>>,
    recurring: Option<RecurringJson>,
    timezone: Option<String>,
    if_passed: Option<IfPassedJson>,
    start: Option<Value>,
    end: Option<Value>,
    cutoff: Option<Value>,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum IfPassedJson {
    Drop,
    NextDay,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object such as {\"every\": \"day\", \"time\": \"09:00\"}"
)]
struct RecurringJson {
    every: EveryJson,
    time: String,
    days: Option<Vec<Day>>,
}

#[derive(Deserialize, Clone, Copy, PartialEq)]
#[serde(rename_all = "lowercase")]
enum EveryJson {
    Day,
    Week,
    Month,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    fn weekday(self) -> Weekday {
        match self {
            Day::Mon => Weekday::Monday,
            Day::Tue => Weekday::Tuesday,
            Day::Wed => Weekday::Wednesday,
            Day::Thu => Weekday::Thursday,
            Day::Fri => Weekday::Friday,
            Day::Sat => Weekday::Saturday,
            Day::Sun => Weekday::Sunday,
        }
    }
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object such as {\"event\": \"Charged\", \"within\": \"1d\"}"
)]
struct ConversionJson {
    event: String,
    within: DurationMs,
    revenue_prop: Option<String>,
}

#[derive(Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "an object such as {\"url\": \"https://…\", \"secret\": \"…\"}"
)]
struct WebhookJson {
    url: String,
    secret: String,
}

impl MessageJson {
    /// This message over `base`: what it gives replaces, what it leaves out is kept.
    fn over(self, base: &Message) -> Message {
        let actions = self
            .actions
            .map(|a| a.into_iter().map(|a| Action { title: a.title, url: a.url }).collect());
        Message {
            title: self.title.unwrap_or_else(|| base.title.clone()),
            body: self.body.unwrap_or_else(|| base.body.clone()),
            url: self.url.unwrap_or_else(|| base.url.clone()),
            icon: self.icon.unwrap_or_else(|| base.icon.clone()),
            image: self.image.unwrap_or_else(|| base.image.clone()),
            actions: actions.unwrap_or_else(|| base.actions.clone()),
            require_interaction: self.require_interaction.unwrap_or(base.require_interaction),
            ttl_ms: self.ttl.map_or(base.ttl_ms, |ttl| ttl.map(|d| d.0)),
            urgency: self
                .urgency
                .map_or_else(|| base.urgency.clone(), |u| u.map(|u| u.name().to_owned())),
            topic: self.topic.unwrap_or_else(|| base.topic.clone()),
        }
    }
}

/// Reads the body of `PUT /v1/campaigns/{id}` into a campaign with that id,
/// checked by `Campaign::validate`. The body is the "Campaign" object of
/// `interfaces.md`; besides its rules:
///
/// - `id` may be in the body (as `GET` writes it), but then equals the path's;
///   `paused` and `saved_at` are read-only and ignored (pausing has its own
///   endpoints). Absent fields take their defaults: no name, no variants,
///   `control_group_percent` 0, `ignore_global_caps` false.
/// - `message` and its `title` are required. A variant's `message` holds only
///   what differs from the campaign's message: an absent field is the
///   campaign's, `null` clears an optional one (`{"url": null}`). The engine
///   keeps each variant's whole message, merged here.
/// - `message.ttl` and `conversion.within` are durations (`"1d"`,
///   [`super::parse_duration`]).
/// - `caps` (`{"webpush_per_day": 1, "webpush_per_week": 3}`) are the
///   campaign's own caps, replacing the global ones; `dnd.mode` defaults to `delay`.
/// - `schedule.timezone` is an IANA name or `"user"` (each user's zone, the
///   default when absent); `if_passed` defaults to `drop`; `recurring.days`
///   is for `every: "week"` only.
///
/// **Times in `schedule`.** `at` times are local wall-clock times, as the
/// engine keeps them, in the schedule's zone or, with `"user"`, in each
/// user's: `"2026-12-01T09:00:00"` is 09:00 wherever the user is. An `at`
/// with an offset (`"2026-12-01T14:00:00Z"`) is an instant: with an IANA
/// `timezone` it becomes that zone's local time, and with `"user"` it is
/// refused, since one instant is not the same local time in every zone.
/// `start`, `end` and `cutoff` are instants (one for everyone): RFC 3339 with
/// an offset, epoch milliseconds (a number or its text), or a local date-time
/// without an offset, read in the schedule's zone or, with `"user"`, in
/// `default_timezone` (the settings' zone). Local times that
/// do not exist or repeat (daylight saving) are read as the engine reads them:
/// the later instant for a gap, the earlier for a fold.
pub fn campaign_from_json(
    id: &str,
    body: &Value,
    default_timezone: &TimeZone,
) -> Result<Campaign, FieldError> {
    from_value::<CampaignJson>(body)?.into_campaign(id, default_timezone)
}

impl CampaignJson {
    /// The campaign `id` of this body, checked; see [`campaign_from_json`].
    pub fn into_campaign(
        self,
        id: &str,
        default_timezone: &TimeZone,
    ) -> Result<Campaign, FieldError> {
        let json = self;
        if let Some(body_id) = &json.id
            && body_id != id
        {
            return Err(FieldError::new(
                "id",
                format!("{body_id:?} does not match the campaign id of the path, {id:?}"),
            ));
        }
        let Some(message) = json.message else {
            return Err(FieldError::new("message", "is required"));
        };
        if message.title.is_none() {
            return Err(FieldError::new("message.title", "is required"));
        }
        let message = message.over(&Message::default());
        check_message("message", &message)?;
        let mut variants = Vec::new();
        let mut names = BTreeSet::new();
        for (i, variant) in json.variants.unwrap_or_default().into_iter().enumerate() {
            let path = format!("variants[{i}]");
            if variant.name.is_empty() {
                return Err(FieldError::new(format!("{path}.name"), "must not be empty"));
            }
            if !names.insert(variant.name.clone()) {
                return Err(FieldError::new(
                    format!("{path}.name"),
                    format!("another variant is named {:?} (stats are kept by name)", variant.name),
                ));
            }
            let own = variant.message.map_or_else(|| message.clone(), |m| m.over(&message));
            check_message(&format!("{path}.message"), &own)?;
            variants.push(Variant { name: variant.name, weight: variant.weight, message: own });
        }
        let conversion = json.conversion.map(|c| Conversion {
            event: c.event,
            within_ms: c.within.0,
            revenue_property: c.revenue_prop,
        });
        let webhook = json.webhook.map(|w| Webhook { url: w.url, secret: w.secret });
        let campaign = Campaign {
            id: id.to_owned(),
            name: json.name.unwrap_or_default(),
            trigger: json.trigger,
            audience: json.audience,
            schedule: json.schedule.map(|s| schedule_from_json(s, default_timezone)).transpose()?,
            message,
            variants,
            control_group_percent: json.control_group_percent.unwrap_or(0.0),
            ignore_global_caps: json.ignore_global_caps.unwrap_or(false),
            caps: json.caps.map(CapsJson::into_engine),
            dnd: json.dnd.map(DndJson::into_engine).transpose()?,
            conversion,
            webhook,
        };
        match campaign.validate() {
            // A trigger or audience that does not parse is refused by the
            // engine when the campaign is saved, as `invalid_query` with its
            // line, column and caret: the same answer as a bad query anywhere.
            Ok(()) | Err(nudge_engine::Error::Query { .. }) => Ok(campaign),
            Err(other) => Err(FieldError::from_engine(other)),
        }
    }
}

/// Checks one message by the engine's rules, naming fields under `path`
/// (`variants[1].message.topic`, `message.actions[0].url`): action
/// templates here, with their index; the rest by `Campaign::validate` on a
/// campaign that holds only this message (the engine's own error names
/// `message.…` for every variant).
fn check_message(path: &str, message: &Message) -> Result<(), FieldError> {
    for (i, action) in message.actions.iter().enumerate() {
        for (name, text) in [("title", &action.title), ("url", &action.url)] {
            let field = format!("{path}.actions[{i}].{name}");
            nudge_engine::campaign::check_template(&field, text)
                .map_err(FieldError::from_engine)?;
        }
    }
    let alone = Campaign {
        id: "message".into(),
        trigger: Some("on \"message\"".into()),
        message: message.clone(),
        ..Campaign::default()
    };
    alone.validate().map_err(|error| {
        let mut error = FieldError::from_engine(error);
        if let Some(rest) = error.field.strip_prefix("message") {
            error.field = format!("{path}{rest}");
        }
        error
    })
}

/// A time zone by IANA name; the error says why not.
fn zone(name: &str) -> Result<TimeZone, String> {
    nudge_engine::campaign::parse_timezone(name).map_err(|e| e.0)
}

fn schedule_from_json(
    json: ScheduleJson,
    default_timezone: &TimeZone,
) -> Result<Schedule, FieldError> {
    let timezone = ScheduleZone::of_name(json.timezone.as_deref().unwrap_or(USER_TIMEZONE));
    let own_zone = match &timezone {
        ScheduleZone::User => None,
        ScheduleZone::Named(name) => {
            Some(zone(name).map_err(|e| FieldError::new("schedule.timezone", e))?)
        }
    };
    // Where instants given as local times are read.
    let instant_zone = own_zone.as_ref().unwrap_or(default_timezone);
    let mut at = Vec::new();
    for (i, text) in json.at.unwrap_or_default().iter().enumerate() {
        at.push(local_at(&format!("schedule.at[{i}]"), text, own_zone.as_ref())?);
    }
    let recurring = match json.recurring {
        Some(r) => Some(Recurring {
            every: match r.every {
                EveryJson::Day => Every::Day,
                EveryJson::Week => Every::Week,
                EveryJson::Month => Every::Month,
            },
            time: parse_local_time("schedule.recurring.time", &r.time)
                .map_err(FieldError::from_engine)?,
            days: r.days.unwrap_or_default().into_iter().map(Day::weekday).collect(),
        }),
        None => None,
    };
    let bound = |field: &str, value: Option<Value>| match value {
        Some(value) => instant(&format!("schedule.{field}"), &value, instant_zone).map(Some),
        None => Ok(None),
    };
    let (start_ms, end_ms, cutoff_ms) =
        (bound("start", json.start)?, bound("end", json.end)?, bound("cutoff", json.cutoff)?);
    let if_passed = match json.if_passed {
        Some(IfPassedJson::NextDay) => IfPassed::NextDay,
        Some(IfPassedJson::Drop) => IfPassed::Drop,
        None => DEFAULT_IF_PASSED,
    };
    Ok(Schedule { at, recurring, timezone, if_passed, start_ms, end_ms, cutoff_ms })
}

/// A one-off `at` time as the engine keeps it: a local date-time.
fn local_at(field: &str, text: &str, zone: Option<&TimeZone>) -> Result<DateTime, FieldError> {
    if let Ok(ms) = parse_timestamp_text(text) {
        let Some(zone) = zone else {
            return Err(FieldError::new(
                field,
                format!(
                    "{text:?} is an instant, but with \"timezone\": \"user\" `at` times are each \
                     user's local time: drop the offset, or give the schedule a time zone such \
                     as \"UTC\""
                ),
            ));
        };
        let instant = jiff::Timestamp::from_millisecond(ms)
            .map_err(|e| FieldError::new(field, format!("{text:?} is out of range: {e}")))?;
        let local = instant.to_zoned(zone.clone()).datetime();
        // The engine reads a repeated local time as its first instant.
        let read_back = local.to_zoned(zone.clone()).map(|z| z.timestamp());
        if read_back.ok() != Some(instant) {
            return Err(FieldError::new(
                field,
                format!(
                    "{text:?} is {local} in {}, a local time that daylight saving repeats; \
                     schedules keep local times and would send at its first instant",
                    zone.iana_name().unwrap_or("the schedule's zone")
                ),
            ));
        }
        return Ok(local);
    }
    civil(field, text)
}

/// A local date-time without an offset (`2026-12-01T09:00:00`).
fn civil(field: &str, text: &str) -> Result<DateTime, FieldError> {
    if text.contains('[') {
        return Err(FieldError::new(
            field,
            format!("{text:?}: a time zone annotation is not read; set `schedule.timezone`"),
        ));
    }
    text.parse::<DateTime>().map_err(|e| {
        FieldError::new(
            field,
            format!(
                "{text:?} is neither a local date-time (2026-12-01T09:00:00) nor RFC 3339 with \
                 an offset (2026-12-01T09:00:00Z): {e}"
            ),
        )
    })
}

/// An instant (`start`, `end`, `cutoff`): RFC 3339, epoch milliseconds, or
/// a local date-time read in `zone`.
fn instant(field: &str, value: &Value, zone: &TimeZone) -> Result<i64, FieldError> {
    let text = match value {
        Value::Number(n) => {
            return n.as_i64().ok_or_else(|| {
                FieldError::new(field, format!("{n} is not a whole number of epoch milliseconds"))
            });
        }
        Value::String(text) => text,
        _ => {
            return Err(FieldError::new(
                field,
                "expected RFC 3339 text (2026-12-01T09:00:00Z, or local without the offset) or \
                 epoch milliseconds",
            ));
        }
    };
    if let Ok(ms) = parse_timestamp_text(text) {
        return Ok(ms);
    }
    let local = civil(field, text)?;
    local.to_zoned(zone.clone()).map(|z| z.timestamp().as_millisecond()).map_err(|e| {
        FieldError::new(field, format!("{text:?} has no instant in the schedule's zone: {e}"))
    })
}

/// A message's fields as JSON, `null` for those unset.
fn message_fields(message: &Message) -> [(&'static str, Value); 10] {
    let actions: Vec<Value> =
        message.actions.iter().map(|a| json!({"title": a.title, "url": a.url})).collect();
    [
        ("title", json!(message.title)),
        ("body", json!(message.body)),
        ("url", json!(message.url)),
        ("icon", json!(message.icon)),
        ("image", json!(message.image)),
        ("actions", Value::Array(actions)),
        ("require_interaction", json!(message.require_interaction)),
        ("ttl", message.ttl_ms.map_or(Value::Null, format_duration)),
        ("urgency", json!(message.urgency)),
        ("topic", json!(message.topic)),
    ]
}

/// Writes a campaign in the shape [`campaign_from_json`] reads, plus `id`,
/// `paused` and `saved_at` (RFC 3339 UTC). Reading it back gives the same
/// campaign, for every campaign `campaign_from_json` made (it keeps `at`
/// times in jiff's canonical form, `2026-12-01T09:00:00`).
///
/// Absent optional fields are left out. Times: `schedule.at` as the local
/// date-times the engine keeps, `start`, `end` and `cutoff` as RFC 3339 UTC.
/// Durations in the query language's canonical form (`"1d"`). A variant's
/// `message` holds only what differs from the campaign's (`null` for a field
/// it clears). The webhook secret is included: this is for the admin key only.
pub fn campaign_to_json(stored: &StoredCampaign) -> Value {
    let campaign = &stored.campaign;
    let mut out = Map::new();
    out.insert("id".into(), json!(campaign.id));
    out.insert("name".into(), json!(campaign.name));
    out.insert("paused".into(), json!(stored.paused));
    out.insert("saved_at".into(), timestamp_json(stored.saved_ms));
    if let Some(trigger) = &campaign.trigger {
        out.insert("trigger".into(), json!(trigger));
    }
    if let Some(audience) = &campaign.audience {
        out.insert("audience".into(), json!(audience));
    }
    if let Some(schedule) = &campaign.schedule {
        out.insert("schedule".into(), schedule_to_json(schedule));
    }
    let base = message_fields(&campaign.message);
    let message: Map<String, Value> = base
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    out.insert("message".into(), Value::Object(message));
    let variants: Vec<Value> = campaign
        .variants
        .iter()
        .map(|variant| {
            let changes: Map<String, Value> = message_fields(&variant.message)
                .into_iter()
                .zip(&base)
                .filter(|((_, own), (_, base))| own != base)
                .map(|((k, v), _)| (k.to_owned(), v))
                .collect();
            json!({"name": variant.name, "weight": variant.weight, "message": changes})
        })
        .collect();
    out.insert("variants".into(), Value::Array(variants));
    out.insert("control_group_percent".into(), json!(campaign.control_group_percent));
    out.insert("ignore_global_caps".into(), json!(campaign.ignore_global_caps));
    if let Some(caps) = &campaign.caps {
        out.insert("caps".into(), CapsJson::to_json(caps));
    }
    if let Some(dnd) = &campaign.dnd {
        out.insert("dnd".into(), DndJson::to_json(dnd));
    }
    if let Some(conversion) = &campaign.conversion {
        let mut json = json!({
            "event": conversion.event,
            "within": format_duration(conversion.within_ms),
        });
        if let (Some(prop), Some(object)) = (&conversion.revenue_property, json.as_object_mut()) {
            object.insert("revenue_prop".into(), json!(prop));
        }
        out.insert("conversion".into(), json);
    }
    if let Some(webhook) = &campaign.webhook {
        out.insert("webhook".into(), json!({"url": webhook.url, "secret": webhook.secret}));
    }
    Value::Object(out)
}

fn schedule_to_json(schedule: &Schedule) -> Value {
    let mut out = Map::new();
    let at: Vec<String> = schedule.at.iter().map(DateTime::to_string).collect();
    out.insert("at".into(), json!(at));
    if let Some(recurring) = &schedule.recurring {
        let mut json = json!({
            "every": recurring.every.name(),
            "time": format_local_time(recurring.time),
        });
        if let (false, Some(object)) = (recurring.days.is_empty(), json.as_object_mut()) {
            let days: Vec<&str> = recurring.days.iter().map(|d| weekday_name(*d)).collect();
            object.insert("days".into(), json!(days));
        }
        out.insert("recurring".into(), json);
    }
    out.insert("timezone".into(), json!(schedule.timezone.name()));
    out.insert("if_passed".into(), json!(schedule.if_passed.name()));
    for (field, ms) in
        [("start", schedule.start_ms), ("end", schedule.end_ms), ("cutoff", schedule.cutoff_ms)]
    {
        if let Some(ms) = ms {
            out.insert(field.into(), timestamp_json(ms));
        }
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests;
