//! A `tracing` layer that writes Kubernetes-friendly JSON lines.

use serde_json::{Map, Value};
use std::io::Write;
use std::sync::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// Fields added to every line: the build and the pod it runs in.
#[derive(Debug, Clone, Default)]
pub struct StaticFields {
    /// True when running in a Kubernetes pod (selects JSON output in `LogFormat::Auto`).
    pub in_pod: bool,
    /// Build identifier.
    pub build_id: Option<String>,
    /// `JOB_NAME`.
    pub job_name: Option<String>,
    /// `POD_NAME`.
    pub pod_name: Option<String>,
    /// `POD_NAMESPACE`.
    pub namespace: Option<String>,
    /// `NODE_NAME`.
    pub node_name: Option<String>,
}

impl StaticFields {
    /// Read `JOB_NAME`, `POD_NAME`, `POD_NAMESPACE` and `NODE_NAME`; `in_pod` when
    /// `KUBERNETES_SERVICE_HOST` is set.
    pub fn from_env() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        StaticFields {
            in_pod: get("KUBERNETES_SERVICE_HOST").is_some(),
            build_id: None,
            job_name: get("JOB_NAME"),
            pod_name: get("POD_NAME"),
            namespace: get("POD_NAMESPACE"),
            node_name: get("NODE_NAME"),
        }
    }

    fn insert_into(&self, map: &mut Map<String, Value>) {
        for (k, v) in [
            ("build_id", &self.build_id),
            ("job_name", &self.job_name),
            ("pod_name", &self.pod_name),
            ("namespace", &self.namespace),
            ("node_name", &self.node_name),
        ] {
            if let Some(v) = v {
                map.insert(k.into(), Value::String(v.clone()));
            }
        }
    }
}

/// The JSON layer. Each event becomes one line: `timestamp` (RFC 3339, UTC), `level`
/// (lower case), `msg`, `component` (the event's `component` field, else its target's last
/// path segment), the static fields, then the event's own fields.
pub struct JsonLayer<W> {
    fields: StaticFields,
    make_writer: Mutex<W>,
}

impl<W> JsonLayer<W> {
    /// A layer writing through `make_writer` (for example `std::io::stderr`).
    pub fn new(fields: StaticFields, make_writer: W) -> Self {
        JsonLayer {
            fields,
            make_writer: Mutex::new(make_writer),
        }
    }
}

struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.insert(field, Value::String(value.to_string()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.insert(field, Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.insert(field, Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.insert(field, Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.insert(field, Value::Bool(value));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.insert(field, Value::String(format!("{value:?}")));
    }
}

impl JsonVisitor<'_> {
    fn insert(&mut self, field: &Field, value: Value) {
        let name = if field.name() == "message" {
            "msg"
        } else {
            field.name()
        };
        self.0.insert(name.to_string(), value);
    }
}

/// Render one event as a JSON object (exposed for tests and other layers).
pub fn render_event(event: &Event<'_>, fields: &StaticFields) -> Map<String, Value> {
    let mut own = Map::new();
    event.record(&mut JsonVisitor(&mut own));
    let meta = event.metadata();
    let mut line = Map::new();
    line.insert(
        "timestamp".into(),
        Value::String(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
    );
    line.insert(
        "level".into(),
        Value::String(meta.level().as_str().to_ascii_lowercase()),
    );
    line.insert(
        "msg".into(),
        own.remove("msg").unwrap_or(Value::String(String::new())),
    );
    let component = own.remove("component").unwrap_or_else(|| {
        Value::String(
            meta.target()
                .rsplit("::")
                .next()
                .unwrap_or("ossb")
                .to_string(),
        )
    });
    line.insert("component".into(), component);
    fields.insert_into(&mut line);
    line.extend(own);
    line
}

impl<S, W> tracing_subscriber::Layer<S> for JsonLayer<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let line = render_event(event, &self.fields);
        let Ok(mut text) = serde_json::to_string(&Value::Object(line)) else {
            return;
        };
        text.push('\n');
        if let Ok(w) = self.make_writer.lock() {
            // A failed log write must never fail the build.
            let _ = w.make_writer().write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tracing_subscriber::layer::SubscriberExt;

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("not poisoned").extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
        type Writer = Buf;
        fn make_writer(&'a self) -> Buf {
            self.clone()
        }
    }

    #[test]
    fn every_line_is_json_with_pod_fields_and_event_fields() {
        let buf = Buf::default();
        let fields = StaticFields {
            in_pod: true,
            build_id: Some("b1".into()),
            job_name: Some("job".into()),
            pod_name: Some("pod".into()),
            namespace: Some("ns".into()),
            node_name: None,
        };
        let sub = tracing_subscriber::registry().with(JsonLayer::new(fields, buf.clone()));
        tracing::subscriber::with_default(sub, || {
            tracing::info!(
                component = "job_status",
                status = "Running",
                "build started"
            );
            tracing::warn!(bytes = 42u64, "pushed");
        });
        let text = String::from_utf8(buf.0.lock().expect("not poisoned").clone()).expect("utf8");
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["component"], "job_status");
        assert_eq!(lines[0]["status"], "Running");
        assert_eq!(lines[0]["msg"], "build started");
        assert_eq!(lines[0]["level"], "info");
        assert_eq!(lines[0]["namespace"], "ns");
        assert!(lines[0].get("node_name").is_none());
        assert_eq!(lines[1]["level"], "warn");
        assert_eq!(lines[1]["bytes"], 42);
        assert!(
            lines[1]["timestamp"]
                .as_str()
                .expect("string")
                .ends_with('Z')
        );
    }
}
