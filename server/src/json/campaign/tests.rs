//! Unit tests of the campaign JSON: the example of `interfaces.md` both ways,
//! local schedule times in a named zone and in each user's, partial variant
//! messages, and a refusal naming its field for every kind of bad input.

#![allow(clippy::unwrap_used)]

use jiff::civil::{Time, date, time};
use nudge_engine::campaign::{Caps, QuietHours, QuietMode};

use super::*;

fn zone(name: &str) -> TimeZone {
    TimeZone::get(name).unwrap()
}

const SAVED_MS: i64 = 1_793_000_000_000;

fn ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

fn from(body: &Value) -> Result<Campaign, FieldError> {
    campaign_from_json("cart", body, &TimeZone::UTC)
}

/// The field a refused body names, and its reason.
fn refused(body: &Value) -> (String, String) {
    let error = from(body).expect_err("refused");
    (error.field, error.reason)
}

/// Writes the campaign and reads it back (under another default zone: the
/// output does not depend on it); returns the JSON.
fn round_trip(campaign: &Campaign) -> Value {
    let stored = StoredCampaign { campaign: campaign.clone(), paused: true, saved_ms: SAVED_MS };
    let json = campaign_to_json(&stored);
    assert_eq!(json["id"], json!(campaign.id));
    assert_eq!(json["paused"], json!(true));
    assert_eq!(
        json["saved_at"],
        json!(jiff::Timestamp::from_millisecond(SAVED_MS).unwrap().to_string())
    );
    let back = campaign_from_json(&campaign.id, &json, &zone("Asia/Kolkata"))
        .unwrap_or_else(|e| panic!("{e}\n{json:#}"));
    assert_eq!(&back, campaign, "{json:#}");
    json
}

/// The example of `shared/spec/interfaces.md`, its placeholders filled in.
fn example() -> Value {
    json!({
      "name": "Cart rescue",
      "trigger": "on \"Added To Cart\" unless \"Charged\" within 10m",
      "audience": "did \"Charged\" in last 90d",
      "schedule": {"at": ["2026-12-01T09:00:00"], "recurring": {"every": "week", "time": "09:00", "days": ["mon"]},
                   "timezone": "user", "if_passed": "next_day", "start": "2026-11-01T00:00:00Z",
                   "end": "2027-01-01T00:00:00Z", "cutoff": "2027-01-02T00:00:00Z"},
      "message": {"title": "Still thinking about {{ event.product_name }}?", "body": "Hi {{ user.first_name | default('there') }}",
                  "url": "https://shop.example/cart/{{ event.cart_id }}", "icon": "https://shop.example/icon.png",
                  "image": "https://shop.example/cart.png",
                  "actions": [{"title": "Checkout", "url": "https://shop.example/checkout"}], "require_interaction": false,
                  "ttl": "1d", "urgency": "normal", "topic": "cart"},
      "variants": [{"name": "A", "weight": 50, "message": {}}, {"name": "B", "weight": 50, "message": {}}],
      "control_group_percent": 10,
      "ignore_global_caps": false,
      "dnd": {"from": "21:00", "to": "09:00", "mode": "delay"},
      "conversion": {"event": "Charged", "within": "1d", "revenue_prop": "amount"},
      "webhook": {"url": "https://hooks.example/nudge", "secret": "s3cret"}
    })
}

fn without(mut body: Value, field: &str) -> Value {
    body.as_object_mut().unwrap().remove(field);
    body
}

#[test]
fn the_interface_example_parses_and_round_trips() {
    // As written it has a trigger and a schedule, which the engine refuses:
    // a live campaign runs on its trigger.
    assert_eq!(refused(&example()).0, "schedule");

    let live = from(&without(example(), "schedule")).unwrap();
    let message = Message {
        title: "Still thinking about {{ event.product_name }}?".into(),
        body: "Hi {{ user.first_name | default('there') }}".into(),
        url: Some("https://shop.example/cart/{{ event.cart_id }}".into()),
        icon: Some("https://shop.example/icon.png".into()),
        image: Some("https://shop.example/cart.png".into()),
        actions: vec![Action {
            title: "Checkout".into(),
            url: "https://shop.example/checkout".into(),
        }],
        require_interaction: false,
        ttl_ms: Some(86_400_000),
        urgency: Some("normal".into()),
        topic: Some("cart".into()),
    };
    let variant = |name: &str| Variant { name: name.into(), weight: 50, message: message.clone() };
    let expected = Campaign {
        id: "cart".into(),
        name: "Cart rescue".into(),
        trigger: Some("on \"Added To Cart\" unless \"Charged\" within 10m".into()),
        audience: Some("did \"Charged\" in last 90d".into()),
        schedule: None,
        variants: vec![variant("A"), variant("B")],
        message,
        control_group_percent: 10.0,
        ignore_global_caps: false,
        caps: None,
        dnd: Some(QuietHours {
            from: time(21, 0, 0, 0),
            to: time(9, 0, 0, 0),
            mode: QuietMode::Delay,
        }),
        conversion: Some(Conversion {
            event: "Charged".into(),
            within_ms: 86_400_000,
            revenue_property: Some("amount".into()),
        }),
        webhook: Some(Webhook {
            url: "https://hooks.example/nudge".into(),
            secret: "s3cret".into(),
        }),
    };
    assert_eq!(live, expected);
    let json = round_trip(&live);
    // The output is the input plus id, paused and saved_at.
    let mut input = without(example(), "schedule");
    let object = input.as_object_mut().unwrap();
    object.insert("id".into(), json!("cart"));
    object.insert("paused".into(), json!(true));
    object.insert("saved_at".into(), json["saved_at"].clone());
    object.insert("control_group_percent".into(), json!(10.0));
    assert_eq!(json, input);

    let scheduled = from(&without(example(), "trigger")).unwrap();
    let schedule = Schedule {
        at: vec![date(2026, 12, 1).at(9, 0, 0, 0)],
        recurring: Some(Recurring {
            every: Every::Week,
            time: time(9, 0, 0, 0),
            days: vec![Weekday::Monday],
        }),
        timezone: ScheduleZone::User,
        if_passed: IfPassed::NextDay,
        start_ms: Some(ms("2026-11-01T00:00:00Z")),
        end_ms: Some(ms("2027-01-01T00:00:00Z")),
        cutoff_ms: Some(ms("2027-01-02T00:00:00Z")),
    };
    assert_eq!(scheduled, Campaign { trigger: None, schedule: Some(schedule), ..expected });
    let json = round_trip(&scheduled);
    assert_eq!(json["schedule"], example()["schedule"]);
}

#[test]
fn schedule_times_without_an_offset_are_local_to_the_schedule_zone() {
    let body = json!({
        "name": "Digest",
        "audience": "user.plan == \"pro\"",
        "schedule": {
            "at": ["2026-12-01T09:00:00", "2026-12-02T15:00:00Z", "2026-12-03T10:00:00-05:00",
                   "2026-12-04 08:30", "2026-11-01T05:30:00Z"],
            "timezone": "America/New_York",
            "start": "2026-11-01T00:00:00",
            "end": "2026-12-31T23:59:59-05:00",
            "cutoff": 1_798_000_000_000_i64
        },
        "message": {"title": "Your digest"}
    });
    let campaign = from(&body).unwrap();
    let schedule = campaign.schedule.clone().unwrap();
    // Instants become New York wall-clock times; 05:30Z on 1 November is
    // 01:30 EDT, the first of the two 01:30s that day.
    let at: Vec<String> = schedule.at.iter().map(DateTime::to_string).collect();
    assert_eq!(
        at,
        [
            "2026-12-01T09:00:00",
            "2026-12-02T10:00:00",
            "2026-12-03T10:00:00",
            "2026-12-04T08:30:00",
            "2026-11-01T01:30:00"
        ]
    );
    assert_eq!(schedule.timezone, ScheduleZone::Named("America/New_York".into()));
    assert_eq!(schedule.if_passed, IfPassed::Drop, "the default");
    // Midnight on 1 November in New York is still daylight time (UTC-4).
    assert_eq!(schedule.start_ms, Some(ms("2026-11-01T04:00:00Z")));
    assert_eq!(schedule.end_ms, Some(ms("2027-01-01T04:59:59Z")));
    assert_eq!(schedule.cutoff_ms, Some(1_798_000_000_000));
    let json = round_trip(&campaign);
    assert_eq!(json["schedule"]["start"], json!("2026-11-01T04:00:00Z"));
    assert_eq!(json["schedule"]["at"][1], json!("2026-12-02T10:00:00"));
    assert_eq!(
        json["schedule"]["cutoff"],
        json!(jiff::Timestamp::from_millisecond(1_798_000_000_000).unwrap().to_string())
    );

    // 06:30Z is 01:30 EST, the second 01:30: kept as a local time it would
    // send an hour early, so it is refused.
    let mut fold = body.clone();
    fold["schedule"]["at"] = json!(["2026-11-01T06:30:00Z"]);
    let (field, reason) = refused(&fold);
    assert_eq!(field, "schedule.at[0]");
    assert!(reason.contains("repeats"), "{reason}");
    // A zone annotation is not silently ignored.
    let mut annotated = body;
    annotated["schedule"]["at"] = json!(["2026-12-01T09:00:00[Asia/Kolkata]"]);
    assert_eq!(refused(&annotated).0, "schedule.at[0]");
}

#[test]
fn with_the_user_zone_at_times_stay_local_and_bounds_read_in_the_default_zone() {
    let body = json!({
        "audience": "user.plan == \"pro\"",
        "schedule": {"at": ["2026-12-01T09:00:00"], "recurring": {"every": "day", "time": "09:30"},
                     "start": "2026-11-01T00:00:00", "end": "2026-12-01T00:00:00Z"},
        "message": {"title": "Your digest", "body": "…"}
    });
    let campaign = campaign_from_json("digest", &body, &zone("Asia/Kolkata")).unwrap();
    let schedule = campaign.schedule.clone().unwrap();
    assert_eq!(schedule.timezone, ScheduleZone::User, "absent means each user's zone");
    assert_eq!(schedule.at, [date(2026, 12, 1).at(9, 0, 0, 0)]);
    let daily =
        Recurring { every: Every::Day, time: Time::constant(9, 30, 0, 0), days: Vec::new() };
    assert_eq!(schedule.recurring, Some(daily));
    assert_eq!(schedule.start_ms, Some(ms("2026-10-31T18:30:00Z")), "local to Kolkata");
    assert_eq!(schedule.end_ms, Some(ms("2026-12-01T00:00:00Z")));
    round_trip(&campaign);
    // In UTC by default.
    let utc = campaign_from_json("digest", &body, &TimeZone::UTC).unwrap();
    assert_eq!(utc.schedule.unwrap().start_ms, Some(ms("2026-11-01T00:00:00Z")));
    // One instant is not one local time in every zone.
    let mut instant = body;
    instant["schedule"]["at"] = json!(["2026-12-01T09:00:00", "2026-12-01T09:00:00Z"]);
    let (field, reason) = refused(&instant);
    assert_eq!(field, "schedule.at[1]");
    assert!(reason.contains("\"user\""), "{reason}");
}

#[test]
fn campaigns_built_in_rust_round_trip() {
    // As the engine's tests build them (`engine/tests/schedules.rs`, `deliveries.rs`).
    let scheduled = Campaign {
        id: "digest".into(),
        name: "Daily digest".into(),
        audience: Some(r#"user.plan == "pro""#.into()),
        schedule: Some(Schedule {
            recurring: Some(Recurring {
                every: Every::Week,
                time: time(9, 0, 0, 0),
                days: vec![Weekday::Thursday, Weekday::Monday],
            }),
            timezone: ScheduleZone::User,
            if_passed: IfPassed::Drop,
            cutoff_ms: Some(1_790_000_000_123),
            ..Schedule::default()
        }),
        message: Message { title: "Your digest".into(), body: "…".into(), ..Message::default() },
        ..Campaign::default()
    };
    let json = round_trip(&scheduled);
    assert_eq!(json["schedule"]["cutoff"], json!("2026-09-21T14:13:20.123Z"));
    let live = Campaign {
        id: "day".into(),
        name: "day".into(),
        trigger: Some(r#"on "A""#.into()),
        message: Message { title: "hi".into(), body: "there".into(), ..Message::default() },
        caps: Some(Caps { per_day: Some(1), per_week: None }),
        dnd: Some(QuietHours {
            from: time(19, 0, 0, 0),
            to: time(7, 0, 0, 0),
            mode: QuietMode::Discard,
        }),
        ignore_global_caps: true,
        control_group_percent: 12.5,
        ..Campaign::default()
    };
    let json = round_trip(&live);
    assert_eq!(json["caps"], json!({"webpush_per_day": 1}));
    assert_eq!(
        json["message"],
        json!({"title": "hi", "body": "there", "actions": [],
        "require_interaction": false})
    );
}

#[test]
fn a_variant_message_changes_only_what_it_gives() {
    let body = json!({
        "trigger": "on \"A\"",
        "message": {"title": "Hello", "body": "Body", "url": "https://a.example/",
                    "urgency": "high", "actions": [{"title": "Go", "url": "https://a.example/go"}]},
        "variants": [
            {"name": "A", "weight": 1},
            {"name": "B", "weight": 3,
             "message": {"title": "Hi {{ user.id }}", "url": null, "ttl": "2h", "actions": []}}
        ]
    });
    let campaign = from(&body).unwrap();
    let (a, b) = (&campaign.variants[0].message, &campaign.variants[1].message);
    assert_eq!(a, &campaign.message);
    assert_eq!(b.title, "Hi {{ user.id }}");
    assert_eq!((b.body.as_str(), b.urgency.as_deref()), ("Body", Some("high")));
    assert_eq!((b.url.as_deref(), b.ttl_ms), (None, Some(7_200_000)));
    assert!(b.actions.is_empty());
    let json = round_trip(&campaign);
    assert_eq!(json["variants"][0], json!({"name": "A", "weight": 1, "message": {}}));
    assert_eq!(
        json["variants"][1]["message"],
        json!({"title": "Hi {{ user.id }}", "url": null, "ttl": "2h", "actions": []})
    );
}

fn live() -> Value {
    json!({
        "name": "Cart rescue",
        "trigger": "on \"Added To Cart\"",
        "message": {"title": "Hi", "body": "there",
                    "actions": [{"title": "A", "url": "https://a.example/"},
                                {"title": "B", "url": "https://b.example/"}]},
        "variants": [{"name": "A", "weight": 50}, {"name": "B", "weight": 50, "message": {}}],
    })
}

fn scheduled() -> Value {
    json!({
        "audience": "user.plan == \"pro\"",
        "schedule": {"at": ["2026-12-01T09:00:00"], "recurring": {"every": "week", "time": "09:00", "days": ["mon"]},
                     "timezone": "Europe/Paris", "start": "2026-11-01T00:00:00Z"},
        "message": {"title": "Digest"}
    })
}

#[test]
fn every_bad_input_names_its_field() {
    assert!(from(&live()).is_ok());
    assert!(from(&scheduled()).is_ok());
    type Edit = fn(&mut Value);
    let cases: Vec<(&str, Value, Edit)> = vec![
        // Unknown fields, at every depth.
        ("mesage", live(), |b| b["mesage"] = json!({"title": "x"})),
        ("message.tittle", live(), |b| b["message"]["tittle"] = json!("x")),
        ("message.actions[1].label", live(), |b| b["message"]["actions"][1]["label"] = json!("x")),
        ("variants[1].message.urgent", live(), |b| {
            b["variants"][1]["message"]["urgent"] = json!(1)
        }),
        ("schedule.recurring.dayz", scheduled(), |b| {
            b["schedule"]["recurring"]["dayz"] = json!([])
        }),
        ("dnd.until", live(), |b| b["dnd"] = json!({"from": "21:00", "to": "09:00", "until": 1})),
        // Durations.
        ("message.ttl", live(), |b| b["message"]["ttl"] = json!("1 day and a bit")),
        ("message.ttl", live(), |b| b["message"]["ttl"] = json!(86_400)),
        ("variants[0].message.ttl", live(), |b| b["variants"][0]["message"] = json!({"ttl": "1y"})),
        ("conversion.within", live(), |b| {
            b["conversion"] = json!({"event": "C", "within": "soon"})
        }),
        ("conversion.within", live(), |b| b["conversion"] = json!({"event": "C"})),
        ("conversion.event", live(), |b| b["conversion"] = json!({"event": "", "within": "1d"})),
        // Enumerations.
        ("message.urgency", live(), |b| b["message"]["urgency"] = json!("urgent")),
        ("variants[1].message.urgency", live(), |b| {
            b["variants"][1]["message"]["urgency"] = json!("asap")
        }),
        ("dnd.mode", live(), |b| {
            b["dnd"] = json!({"from": "21:00", "to": "09:00", "mode": "snooze"})
        }),
        ("schedule.if_passed", scheduled(), |b| b["schedule"]["if_passed"] = json!("later")),
        ("schedule.recurring.every", scheduled(), |b| {
            b["schedule"]["recurring"]["every"] = json!("year")
        }),
        ("schedule.recurring.days[0]", scheduled(), |b| {
            b["schedule"]["recurring"]["days"] = json!(["monday"])
        }),
        ("schedule.recurring.days", scheduled(), |b| {
            b["schedule"]["recurring"]["every"] = json!("day")
        }),
        // Times and zones.
        ("schedule.start", scheduled(), |b| b["schedule"]["start"] = json!("yesterday")),
        ("schedule.start", scheduled(), |b| b["schedule"]["start"] = json!(1.5)),
        ("schedule.end", scheduled(), |b| b["schedule"]["end"] = json!("2026-10-01T00:00:00Z")),
        ("schedule.cutoff", scheduled(), |b| b["schedule"]["cutoff"] = json!(true)),
        ("schedule.at[1]", scheduled(), |b| {
            b["schedule"]["at"] = json!(["2026-12-01T09:00:00", "2026-13-01T09:00:00"])
        }),
        ("schedule.at[0]", scheduled(), |b| b["schedule"]["at"] = json!([20_261_201])),
        ("schedule.recurring.time", scheduled(), |b| {
            b["schedule"]["recurring"]["time"] = json!("9am")
        }),
        ("schedule.timezone", scheduled(), |b| b["schedule"]["timezone"] = json!("Mars/Olympus")),
        ("schedule", scheduled(), |b| b["schedule"] = json!({"timezone": "UTC"})),
        ("dnd.from", live(), |b| b["dnd"] = json!({"from": "25:00", "to": "09:00"})),
        // Variants and weights.
        ("variants[1].weight", live(), |b| b["variants"][1]["weight"] = json!(-5)),
        ("variants[1].weight", live(), |b| b["variants"][1]["weight"] = json!("50")),
        ("variants[0].weight", live(), |b| b["variants"][0] = json!({"name": "A"})),
        ("variants", live(), |b| {
            b["variants"] = json!([{"name": "A", "weight": 0}, {"name": "B", "weight": 0}])
        }),
        ("variants", live(), |b| {
            b["variants"] = (0..17).map(|i| json!({"name": i.to_string(), "weight": 1})).collect();
        }),
        ("variants[1].name", live(), |b| b["variants"][1]["name"] = json!("A")),
        ("variants[0].name", live(), |b| b["variants"][0]["name"] = json!("")),
        // Templates (the engine's check, through validate).
        ("message.body", live(), |b| b["message"]["body"] = json!("Hi {{ user.name")),
        ("variants[0].message.title", live(), |b| {
            b["variants"][0]["message"] = json!({"title": "{% if %}"})
        }),
        ("message.actions[1].url", live(), |b| b["message"]["actions"][1]["url"] = json!("{{ x")),
        ("variants[1].message.actions[0].title", live(), |b| {
            b["variants"][1]["message"]["actions"] =
                json!([{"title": "{{", "url": "https://x.example/"}]);
        }),
        ("message.topic", live(), |b| b["message"]["topic"] = json!("no spaces allowed")),
        ("variants[1].message.topic", live(), |b| {
            b["variants"][1]["message"]["topic"] = json!("x".repeat(33))
        }),
        // The rest of the campaign.
        ("id", live(), |b| b["id"] = json!("another")),
        ("message", live(), |b| b["message"] = json!(null)),
        ("message", live(), |b| b["message"] = json!("hi")),
        ("message.title", live(), |b| b["message"] = json!({"body": "no title"})),
        ("control_group_percent", live(), |b| b["control_group_percent"] = json!(150)),
        ("trigger", live(), |b| b["trigger"] = json!(5)),
        ("trigger", live(), |b| b["trigger"] = json!(null)),
        ("caps.webpush_per_day", live(), |b| b["caps"] = json!({"webpush_per_day": "x"})),
        ("webhook.url", live(), |b| {
            b["webhook"] = json!({"url": "ftp://x.example/", "secret": "s"})
        }),
        ("webhook.secret", live(), |b| {
            b["webhook"] = json!({"url": "https://x.example/", "secret": ""})
        }),
        ("paused", live(), |b| b["paused"] = json!("yes")),
        ("", live(), |b| *b = json!(["not", "an", "object"])),
    ];
    // A trigger or audience that does not parse is the engine's query error,
    // with the field it came from (the server answers it as `invalid_query`).
    for (field, text) in [("trigger", "on Added To Cart"), ("audience", "did")] {
        let mut body = live();
        body[field] = json!(text);
        let campaign = from(&body).expect("decodes");
        match campaign.validate() {
            Err(nudge_engine::Error::Query { field: at, line: 1, .. }) => assert_eq!(at, field),
            other => panic!("{field}: {other:?}"),
        }
    }
    for (field, mut body, edit) in cases {
        edit(&mut body);
        let error = from(&body).expect_err(field);
        assert_eq!(error.field, field, "{body}: {error}");
        assert!(!error.reason.is_empty());
    }
    // The reasons say what was wrong.
    let mut typo = live();
    typo["mesage"] = json!({});
    assert!(refused(&typo).1.contains("unknown field `mesage`"), "{}", refused(&typo).1);
    let mut ttl = live();
    ttl["message"]["ttl"] = json!("1 fortnight");
    assert!(refused(&ttl).1.contains("\"1 fortnight\" is not a duration"), "{}", refused(&ttl).1);
    let mut urgency = live();
    urgency["message"]["urgency"] = json!("urgent");
    assert!(refused(&urgency).1.contains("very-low"), "{}", refused(&urgency).1);
    let mut template = live();
    template["message"]["body"] = json!("Hi {{ user.name");
    assert!(refused(&template).1.starts_with("template:"), "{}", refused(&template).1);
    // Read-only fields are accepted and ignored; the path's id wins.
    let mut read_only = live();
    read_only["id"] = json!("cart");
    read_only["paused"] = json!(true);
    read_only["saved_at"] = json!("2026-11-01T00:00:00Z");
    assert_eq!(from(&read_only).unwrap(), from(&live()).unwrap());
}
