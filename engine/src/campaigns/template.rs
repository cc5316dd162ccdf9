//! Message templates: a campaign's title, body, deeplink, icon, image and
//! action texts are Jinja templates (minijinja), rendered per user at the
//! moment of the decision with `user` (profile properties, plus `id`),
//! `event` (the triggering event's properties; empty for scheduled sends)
//! and `campaign` (`id`, `name`).
//!
//! A missing property renders as nothing, so `{{ user.first_name |
//! default("there") }}` gives the default. Flattened keys keep their dots:
//! `{{ user["address.city"] }}`. Texts without `{` are copied, not rendered.
//! Templates are checked when a campaign is saved; an error names the field.

use std::collections::BTreeMap;

use minijinja::{Environment, Value as Jinja};

use crate::campaigns::campaign::{Action, Message};
use crate::campaigns::outbox::Notification;
use crate::store::dict::Dictionary;
use crate::store::props::{self, ValueRef};

/// Longest rendered text, in bytes (the Web Push payload holds at most 3993).
pub const MAX_RENDERED_BYTES: usize = 4096;
/// Most compiled templates a thread keeps; the cache starts over when full.
pub const MAX_CACHED_TEMPLATES: usize = 1024;

thread_local! {
    /// Compiled templates by source text, with their count: a campaign's
    /// texts are compiled once, not once per user.
    static COMPILED: std::cell::RefCell<(Environment<'static>, usize)> =
        std::cell::RefCell::new((environment(), 0));
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Notifications are plain text: no HTML escaping.
    env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
    env
}

/// Checks that `source` is a valid template; the error says where.
pub fn check(field: &str, source: &str) -> crate::Result<()> {
    if !source.contains('{') {
        return Ok(());
    }
    environment()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| crate::Error::invalid(None, field, format!("template: {e}")))
}

fn value(v: ValueRef<'_>) -> Jinja {
    match v {
        ValueRef::Str(s) => Jinja::from(s),
        ValueRef::Number(n) if n.fract() == 0.0 && n.abs() < 9.0e15 => Jinja::from(n as i64),
        ValueRef::Number(n) => Jinja::from(n),
        ValueRef::Bool(b) => Jinja::from(b),
        ValueRef::Array(items) => Jinja::from(items.iter().map(value).collect::<Vec<_>>()),
    }
}

/// Properties of a blob as a template object, keyed by name.
pub fn object(blob: &[u8], keys: &Dictionary, extra: &[(&str, &str)]) -> Jinja {
    let mut map: BTreeMap<String, Jinja> = props::iter(blob)
        .filter_map(|(key, v)| Some((keys.name(u32::from(key))?.to_owned(), value(v))))
        .collect();
    for (name, v) in extra {
        map.insert((*name).to_owned(), Jinja::from(*v));
    }
    Jinja::from(map)
}

/// Renders one text, compiling it on first use.
fn render(source: &str, context: &Jinja) -> Result<String, String> {
    if !source.contains('{') {
        return Ok(source.to_owned());
    }
    let text = COMPILED.with(|compiled| {
        let (env, count) = &mut *compiled.borrow_mut();
        if env.get_template(source).is_err() {
            if *count >= MAX_CACHED_TEMPLATES {
                env.clear_templates();
                *count = 0;
            }
            env.add_template_owned(source.to_owned(), source.to_owned())
                .map_err(|e| e.to_string())?;
            *count += 1;
        }
        env.get_template(source).and_then(|t| t.render(context)).map_err(|e| e.to_string())
    })?;
    if text.len() > MAX_RENDERED_BYTES {
        return Err(format!("renders to {} bytes (at most {MAX_RENDERED_BYTES})", text.len()));
    }
    Ok(text)
}

/// Renders a message for one user; the error names the field.
pub fn render_message(message: &Message, context: &Jinja) -> Result<Notification, String> {
    let one = |field: &str, source: &str| {
        render(source, context).map_err(|e| format!("message.{field}: {e}"))
    };
    let optional = |field: &str, source: &Option<String>| {
        source.as_deref().map(|s| one(field, s)).transpose().map(|t| t.filter(|t| !t.is_empty()))
    };
    let mut actions = Vec::with_capacity(message.actions.len());
    for action in &message.actions {
        actions.push(Action {
            title: one("actions.title", &action.title)?,
            url: one("actions.url", &action.url)?,
        });
    }
    Ok(Notification {
        title: one("title", &message.title)?,
        body: one("body", &message.body)?,
        url: optional("url", &message.url)?,
        icon: optional("icon", &message.icon)?,
        image: optional("image", &message.image)?,
        actions,
        require_interaction: message.require_interaction,
        ttl_ms: message.ttl_ms,
        urgency: message.urgency.clone(),
        topic: message.topic.clone(),
    })
}

/// Whether a push endpoint belongs to Safari (Apple's push service).
pub fn is_safari(endpoint: &str) -> bool {
    let host = endpoint.split('/').nth(2).unwrap_or_default();
    host == "web.push.apple.com" || host.ends_with(".push.apple.com")
}

/// Safari's rules: a deeplink is mandatory (`Err` without one); icon, image
/// and actions are not shown, so they are not sent.
pub fn for_safari(notification: &Notification) -> Result<Notification, &'static str> {
    if notification.url.is_none() {
        return Err("safari_needs_url");
    }
    Ok(Notification { icon: None, image: None, actions: Vec::new(), ..notification.clone() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context() -> Jinja {
        minijinja::context! {
            user => minijinja::context! { first_name => "Asha", visits => 3 },
            event => minijinja::context! { cart_id => "c9", price => 49.5 },
        }
    }

    #[test]
    fn renders_user_and_event_properties_with_defaults() {
        let message = Message {
            title: "Hi {{ user.first_name }}, {{ user.visits }} visits".into(),
            body: "Hello {{ user.last_name | default('there') }} <b>{{ event.price }}</b>".into(),
            url: Some("https://shop.example/cart/{{ event.cart_id }}".into()),
            icon: Some("{{ user.missing }}".into()),
            actions: vec![Action { title: "Pay {{ event.price }}".into(), url: "/pay".into() }],
            ..Default::default()
        };
        let n = render_message(&message, &context()).expect("renders");
        assert_eq!(n.title, "Hi Asha, 3 visits");
        assert_eq!(n.body, "Hello there <b>49.5</b>", "no HTML escaping");
        assert_eq!(n.url.as_deref(), Some("https://shop.example/cart/c9"));
        assert_eq!(n.icon, None, "an empty rendering is no icon");
        assert_eq!(n.actions, vec![Action { title: "Pay 49.5".into(), url: "/pay".into() }]);
    }

    #[test]
    fn bad_templates_are_refused_with_the_field() {
        let err = check("message.title", "Hi {{ user.name ").expect_err("unclosed");
        assert!(err.to_string().contains("message.title"), "{err}");
        let message = Message { body: "{{ \"a\" - 1 }}".into(), ..Default::default() };
        let err = render_message(&message, &context()).expect_err("a string minus a number");
        assert!(err.starts_with("message.body"), "{err}");
        let long = Message { title: "{{ 'x' * 5000 }}".into(), ..Default::default() };
        assert!(render_message(&long, &context()).is_err(), "too long");
    }

    #[test]
    fn compiled_templates_render_each_context_and_survive_a_full_cache() {
        let title = "Hi {{ user.first_name }}";
        let other = minijinja::context! { user => minijinja::context! { first_name => "Ben" } };
        assert_eq!(render(title, &context()).as_deref(), Ok("Hi Asha"));
        assert_eq!(render(title, &other).as_deref(), Ok("Hi Ben"), "not the first rendering");
        for i in 0..=MAX_CACHED_TEMPLATES {
            let source = format!("{i} {{{{ user.first_name }}}}");
            assert_eq!(render(&source, &other), Ok(format!("{i} Ben")));
        }
        let cached = COMPILED.with(|c| c.borrow().1);
        assert!(cached <= MAX_CACHED_TEMPLATES, "the cache is bounded: {cached}");
        assert_eq!(render(title, &context()).as_deref(), Ok("Hi Asha"), "after starting over");
        let broken = "{{ user.first_name ";
        assert!(render(broken, &context()).is_err(), "a syntax error is an error");
        assert!(render(broken, &context()).is_err(), "and is not cached as a success");
    }

    #[test]
    fn safari_needs_a_deeplink_and_gets_no_media() {
        assert!(is_safari("https://web.push.apple.com/QOx0"));
        assert!(!is_safari("https://fcm.googleapis.com/fcm/send/x"));
        let n = Notification {
            url: Some("https://s.example/".into()),
            icon: Some("i".into()),
            image: Some("m".into()),
            actions: vec![Action { title: "a".into(), url: "b".into() }],
            ..Default::default()
        };
        let safe = for_safari(&n).expect("has a url");
        assert_eq!((safe.icon, safe.image, safe.actions.len()), (None, None, 0));
        let no_url = Notification { url: None, ..n };
        assert_eq!(for_safari(&no_url), Err("safari_needs_url"));
    }
}
