//! The `list_*` commands' tables, as `rabbitmqctl` prints them: an informational "Listing
//! ..." line, a header, then one tab-separated row per item; quiet prints the rows only.
//! Everything is read from one member's applied state (`definitions/applied.rs`).

use crate::definitions::applied::Applied;
use crate::definitions::export::arguments;
use crate::server::incarnation::conn_node;

/// A listing ready to print.
pub struct Table {
    pub title: String,
    pub header: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    fn new(title: String, header: &[&str]) -> Table {
        Table {
            title,
            header: header.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn render(&self, quiet: bool) -> String {
        let mut out = String::new();
        if !quiet {
            out.push_str(&self.title);
            out.push('\n');
            out.push_str(&self.header.join("\t"));
            out.push('\n');
        }
        for row in &self.rows {
            out.push_str(&row.join("\t"));
            out.push('\n');
        }
        out
    }
}

/// Tags as rabbitmqctl shows them: `[administrator, monitoring]`.
fn tags(tags: &[String]) -> String {
    format!("[{}]", tags.join(", "))
}

pub fn users(applied: &Applied) -> Table {
    let mut table = Table::new("Listing users ...".to_string(), &["user", "tags"]);
    for (name, user) in &applied.users {
        table.rows.push(vec![name.clone(), tags(&user.tags)]);
    }
    table
}

pub fn vhosts(applied: &Applied) -> Table {
    let mut table = Table::new("Listing vhosts ...".to_string(), &["name"]);
    table.rows = applied.vhosts.iter().map(|v| vec![v.clone()]).collect();
    table
}

pub fn permissions(applied: &Applied, vhost: &str) -> Table {
    let title = format!("Listing permissions for vhost \"{vhost}\" ...");
    let mut table = Table::new(title, &["user", "configure", "write", "read"]);
    for p in applied.permissions.iter().filter(|p| p.vhost == vhost) {
        table.rows.push(permission_row(&p.user, &p.permission));
    }
    table
}

pub fn user_permissions(applied: &Applied, user: &str) -> Table {
    let title = format!("Listing permissions for user \"{user}\" ...");
    let mut table = Table::new(title, &["vhost", "configure", "write", "read"]);
    for p in applied.permissions.iter().filter(|p| p.user == user) {
        table.rows.push(permission_row(&p.vhost, &p.permission));
    }
    table
}

/// A permission's row: who or where it is for, then its three patterns.
fn permission_row(first: &str, permission: &crate::broker::access::Permission) -> Vec<String> {
    let p = permission;
    vec![
        first.to_string(),
        p.configure.clone(),
        p.write.clone(),
        p.read.clone(),
    ]
}

/// Columns `list_queues` knows.
pub const QUEUE_COLUMNS: [&str; 9] = [
    "name",
    "messages",
    "messages_ready",
    "messages_unacknowledged",
    "consumers",
    "durable",
    "auto_delete",
    "exclusive",
    "arguments",
];

pub fn queues(applied: &Applied, vhost: &str, columns: &[String]) -> anyhow::Result<Table> {
    let columns = chosen(columns, &QUEUE_COLUMNS, &["name", "messages"])?;
    let title = format!("Listing queues for vhost {vhost} ...");
    let mut table = Table::new(title, &columns);
    for q in applied.queues.iter().filter(|q| q.vhost == vhost) {
        let cell = |column: &str| match column {
            "name" => q.name.clone(),
            "messages" => (q.messages_ready + q.messages_unacknowledged).to_string(),
            "messages_ready" => q.messages_ready.to_string(),
            "messages_unacknowledged" => q.messages_unacknowledged.to_string(),
            "consumers" => q.consumers.to_string(),
            "durable" => q.durable.to_string(),
            "auto_delete" => q.auto_delete.to_string(),
            "exclusive" => q.exclusive.to_string(),
            _ => json_arguments(&q.arguments),
        };
        table.rows.push(columns.iter().map(|c| cell(c)).collect());
    }
    Ok(table)
}

/// Columns `list_exchanges` knows.
pub const EXCHANGE_COLUMNS: [&str; 6] = [
    "name",
    "type",
    "durable",
    "auto_delete",
    "internal",
    "arguments",
];

pub fn exchanges(applied: &Applied, vhost: &str, columns: &[String]) -> anyhow::Result<Table> {
    let columns = chosen(columns, &EXCHANGE_COLUMNS, &["name", "type"])?;
    let title = format!("Listing exchanges for vhost {vhost} ...");
    let mut table = Table::new(title, &columns);
    // The default exchange has no entry in the state; rabbitmqctl lists it, nameless.
    let default = [(
        String::new(),
        "direct",
        true,
        false,
        false,
        String::from("{}"),
    )];
    let stored = applied.exchanges.iter().filter(|x| x.vhost == vhost);
    let stored = stored.map(|x| {
        let args = json_arguments(&x.arguments);
        (
            x.name.clone(),
            x.kind.as_str(),
            x.durable,
            x.auto_delete,
            x.internal,
            args,
        )
    });
    for (name, kind, durable, auto_delete, internal, args) in default.into_iter().chain(stored) {
        let cell = |column: &str| match column {
            "name" => name.clone(),
            "type" => kind.to_string(),
            "durable" => durable.to_string(),
            "auto_delete" => auto_delete.to_string(),
            "internal" => internal.to_string(),
            _ => args.clone(),
        };
        table.rows.push(columns.iter().map(|c| cell(c)).collect());
    }
    Ok(table)
}

pub fn bindings(applied: &Applied, vhost: &str) -> Table {
    let title = format!("Listing bindings for vhost {vhost}...");
    let header = [
        "source_name",
        "source_kind",
        "destination_name",
        "destination_kind",
        "routing_key",
        "arguments",
    ];
    let mut table = Table::new(title, &header);
    // Every queue is bound to the default exchange by its name (implicitly: not stored).
    for q in applied.queues.iter().filter(|q| q.vhost == vhost) {
        let row = ["", "exchange", &q.name, "queue", &q.name, "[]"];
        table.rows.push(row.iter().map(|c| c.to_string()).collect());
    }
    for b in applied.bindings.iter().filter(|b| b.vhost == vhost) {
        let (destination, kind) = match &b.destination {
            crate::broker::exchange::Destination::Queue(q) => (q.clone(), "queue"),
            crate::broker::exchange::Destination::Exchange(x) => (x.clone(), "exchange"),
        };
        table.rows.push(vec![
            b.source.clone(),
            "exchange".to_string(),
            destination,
            kind.to_string(),
            b.routing_key.clone(),
            json_arguments(&b.arguments),
        ]);
    }
    table
}

pub fn consumers(applied: &Applied, vhost: &str) -> Table {
    let title = format!("Listing consumers in vhost {vhost} ...");
    let header = [
        "queue_name",
        "channel",
        "consumer_tag",
        "ack_required",
        "prefetch_count",
        "exclusive",
    ];
    let mut table = Table::new(title, &header);
    for c in applied.consumers.iter().filter(|c| c.vhost == vhost) {
        table.rows.push(vec![
            c.queue.clone(),
            format!("{:#x}:{}", c.conn, c.channel),
            c.tag.clone(),
            c.ack_required.to_string(),
            c.prefetch.to_string(),
            c.exclusive.to_string(),
        ]);
    }
    table
}

pub fn connections(applied: &Applied) -> Table {
    let title = "Listing connections the replicated state knows of (holding consumers, \
                 unacked messages or exclusive queues; idle ones are not listed) ..."
        .to_string();
    let mut table = Table::new(title, &["connection", "node"]);
    for conn in &applied.connections {
        let row = vec![format!("{conn:#x}"), conn_node(*conn).to_string()];
        table.rows.push(row);
    }
    table
}

fn json_arguments(args: &crate::broker::args::Arguments) -> String {
    serde_json::Value::Object(arguments(args).into_iter().collect()).to_string()
}

/// The columns asked for (`default` when none), each one known.
fn chosen<'a>(
    asked: &'a [String],
    known: &[&str],
    default: &[&'a str],
) -> anyhow::Result<Vec<&'a str>> {
    if asked.is_empty() {
        return Ok(default.to_vec());
    }
    let unknown: Vec<&str> = asked
        .iter()
        .map(String::as_str)
        .filter(|c| !known.contains(c))
        .collect();
    anyhow::ensure!(
        unknown.is_empty(),
        "unknown column(s) {}; known: {}",
        unknown.join(", "),
        known.join(" ")
    );
    Ok(asked.iter().map(String::as_str).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::definitions::applied::QueueRow;

    #[test]
    fn list_queues_prints_the_columns_asked_for_and_quiet_drops_the_header() {
        let applied = Applied {
            queues: vec![QueueRow {
                vhost: "/".into(),
                name: "q".into(),
                durable: true,
                auto_delete: false,
                exclusive: false,
                arguments: Vec::new(),
                messages_ready: 2,
                messages_unacknowledged: 1,
                consumers: 1,
            }],
            ..Applied::default()
        };
        let columns = vec!["name".to_string(), "messages".into(), "durable".into()];
        let table = queues(&applied, "/", &columns).expect("known columns");
        assert_eq!(
            table.render(false),
            "Listing queues for vhost / ...\nname\tmessages\tdurable\nq\t3\ttrue\n"
        );
        assert_eq!(table.render(true), "q\t3\ttrue\n");
        let err = queues(&applied, "/", &["nme".to_string()])
            .err()
            .expect("unknown");
        assert!(err.to_string().contains("nme"), "{err}");
        assert!(queues(&applied, "other", &[]).expect("ok").rows.is_empty());
    }
}
