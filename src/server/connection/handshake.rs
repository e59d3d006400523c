//! Channel 0: start/start-ok (PLAIN and AMQPLAIN), tune/tune-ok, open, close.

use amq_protocol::protocol::{connection, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};

use super::wire::{
    conn_close, ConnClose, REPLY_ACCESS_REFUSED, REPLY_COMMAND_INVALID, REPLY_NOT_ALLOWED,
};
use super::{Conn, Phase};
use crate::amqp::frame::FRAME_MIN_SIZE;
use crate::broker::command::Command;
use crate::config::NodeConfig;
use crate::limits;

impl Conn {
    /// connection.blocked / unblocked, to clients that asked for them (RabbitMQ sends them
    /// to every such client, publishing or not).
    pub(super) fn notify_blocked(&mut self, on: bool) {
        if !self.blocked_notify || !matches!(self.phase, Phase::Open) {
            return;
        }
        let method = if on {
            connection::AMQPMethod::Blocked(connection::Blocked {
                reason: ShortString::from("low on memory"),
            })
        } else {
            connection::AMQPMethod::Unblocked(connection::Unblocked {})
        };
        self.send_method(0, &AMQPClass::Connection(method));
    }

    pub(super) async fn connection_method(&mut self, method: AMQPClass) -> Result<(), ConnClose> {
        use connection::AMQPMethod as M;
        let AMQPClass::Connection(m) = method else {
            return Err(conn_close(
                REPLY_COMMAND_INVALID,
                "COMMAND_INVALID - non-connection method on channel 0",
            ));
        };
        match (&self.phase, m) {
            (Phase::AwaitStartOk, M::StartOk(ok)) => self.start_ok(ok).await,
            (Phase::AwaitTuneOk, M::TuneOk(ok)) => self.tune_ok(ok),
            (Phase::AwaitOpen, M::Open(open)) => {
                self.open_vhost(open.virtual_host.as_str()).await?;
                self.phase = Phase::Open;
                self.send_method(0, &AMQPClass::Connection(M::OpenOk(connection::OpenOk {})));
                if self.alarm_on {
                    self.notify_blocked(true);
                }
                Ok(())
            }
            (Phase::Open, M::UpdateSecret(update)) => {
                let user = self.user.clone();
                if !self.login(&user, update.new_secret.as_bytes()).await {
                    return Err(conn_close(
                        REPLY_ACCESS_REFUSED,
                        "ACCESS_REFUSED - the new secret was refused",
                    ));
                }
                let ok = M::UpdateSecretOk(connection::UpdateSecretOk {});
                self.send_method(0, &AMQPClass::Connection(ok));
                Ok(())
            }
            (_, M::Close(_)) => {
                self.send_method(
                    0,
                    &AMQPClass::Connection(M::CloseOk(connection::CloseOk {})),
                );
                self.done = true;
                Ok(())
            }
            (_, M::CloseOk(_)) => {
                self.done = true;
                Ok(())
            }
            _ => Err(conn_close(
                REPLY_COMMAND_INVALID,
                "COMMAND_INVALID - unexpected connection method",
            )),
        }
    }

    async fn start_ok(&mut self, ok: connection::StartOk) -> Result<(), ConnClose> {
        let mechanism = ok.mechanism.as_str();
        let mut user = None;
        if let Some((name, password)) = credentials(mechanism, ok.response.as_bytes()) {
            let name = String::from_utf8_lossy(&name).into_owned();
            if self.login(&name, &password).await {
                user = Some(name);
            }
        }
        let allowed = user.as_ref().is_some_and(|user| {
            self.peer_loopback || !self.config.loopback_users.iter().any(|u| u == user)
        });
        let Some(user) = user.filter(|_| allowed) else {
            // RabbitMQ only explains the refusal to clients that asked for it; the others
            // see the socket close.
            self.silent_close =
                !client_capability(&ok.client_properties, "authentication_failure_close");
            return Err(conn_close(
                REPLY_ACCESS_REFUSED,
                format!("ACCESS_REFUSED - Login was refused using authentication mechanism {mechanism}. For details see the broker logfile."),
            ));
        };
        self.user = user;
        self.cancel_notify = client_capability(&ok.client_properties, "consumer_cancel_notify");
        self.blocked_notify = client_capability(&ok.client_properties, "connection.blocked");
        self.phase = Phase::AwaitTuneOk;
        self.send_method(
            0,
            &AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
                channel_max: limits::CHANNELS_PER_CONNECTION_MAX,
                frame_max: self.config.frame_max,
                heartbeat: self.config.heartbeat_s,
            })),
        );
        Ok(())
    }

    fn tune_ok(&mut self, ok: connection::TuneOk) -> Result<(), ConnClose> {
        if ok.frame_max != 0 && ok.frame_max < FRAME_MIN_SIZE {
            return Err(conn_close(
                REPLY_NOT_ALLOWED,
                "NOT_ALLOWED - frame_max below 4096",
            ));
        }
        if ok.frame_max != 0 && ok.frame_max < self.frame_max {
            self.frame_max = ok.frame_max;
        }
        self.heartbeat_s = if ok.heartbeat == 0 || self.config.heartbeat_s == 0 {
            0
        } else {
            ok.heartbeat.min(self.config.heartbeat_s)
        };
        self.phase = Phase::AwaitOpen;
        Ok(())
    }
}

/// Whether the client's properties announce `name` in their capabilities table.
fn client_capability(client_properties: &FieldTable, name: &str) -> bool {
    match client_properties.inner().get("capabilities") {
        Some(AMQPValue::FieldTable(caps)) => {
            matches!(caps.inner().get(name), Some(AMQPValue::Boolean(true)))
        }
        _ => false,
    }
}

/// The user and password of a start-ok (PLAIN or AMQPLAIN).
fn credentials(mechanism: &str, response: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    match mechanism {
        "PLAIN" => plain_credentials(response),
        "AMQPLAIN" => amqplain_credentials(response),
        _ => None,
    }
}

/// PLAIN: `authzid \0 user \0 password`.
fn plain_credentials(response: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let mut parts = response.split(|b| *b == 0);
    let (Some(_authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return None;
    };
    Some((user.to_vec(), pass.to_vec()))
}

/// AMQPLAIN: the entries of a field table (no length prefix) with LOGIN and PASSWORD as
/// long strings (RabbitMQ's `rabbit_auth_mechanism_amqplain`).
fn amqplain_credentials(mut response: &[u8]) -> Option<(Vec<u8>, Vec<u8>)> {
    let (mut login, mut password) = (None, None);
    while !response.is_empty() {
        let (&name_len, rest) = response.split_first()?;
        let (name, rest) = rest.split_at_checked(usize::from(name_len))?;
        let (&kind, rest) = rest.split_first()?;
        if kind != b'S' {
            return None;
        }
        let (len, rest) = rest.split_at_checked(4)?;
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let (value, rest) = rest.split_at_checked(len)?;
        match name {
            b"LOGIN" => login = Some(value.to_vec()),
            b"PASSWORD" => password = Some(value.to_vec()),
            _ => {}
        }
        response = rest;
    }
    Some((login?, password?))
}

/// connection.start; `machine_version` is the cluster's, which decides whether consumer
/// priorities apply.
pub(super) fn start_method(config: &NodeConfig, machine_version: u16) -> AMQPClass {
    let mut caps = FieldTable::default();
    // RabbitMQ's capabilities less `direct_reply_to`, not implemented: a client that sees
    // one relies on it, so it is never advertised before it works (docs/amqp-coverage.md).
    // `consumer_priorities` only once the cluster runs the machine version that applies
    // them (below it, x-priority is ignored).
    if machine_version >= Command::QUEUE_FEATURES_MACHINE_VERSION {
        caps.insert(
            ShortString::from("consumer_priorities"),
            AMQPValue::Boolean(true),
        );
    }
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        caps.insert(ShortString::from(cap), AMQPValue::Boolean(true));
    }
    let mut props = FieldTable::default();
    let text = |s: &str| AMQPValue::LongString(LongString::from(s));
    props.insert(ShortString::from("product"), text("Warren"));
    props.insert(
        ShortString::from("version"),
        text(env!("CARGO_PKG_VERSION")),
    );
    props.insert(ShortString::from("platform"), text("Rust"));
    props.insert(ShortString::from("cluster_name"), text(&config.node_name));
    props.insert(
        ShortString::from("capabilities"),
        AMQPValue::FieldTable(caps),
    );
    AMQPClass::Connection(connection::AMQPMethod::Start(connection::Start {
        version_major: 0,
        version_minor: 9,
        server_properties: props,
        mechanisms: LongString::from("PLAIN AMQPLAIN"),
        locales: LongString::from("en_US"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(mechanism: &str, response: &[u8]) -> Option<(String, String)> {
        let (user, pass) = credentials(mechanism, response)?;
        Some((String::from_utf8(user).ok()?, String::from_utf8(pass).ok()?))
    }

    fn pair(user: &str, pass: &str) -> Option<(String, String)> {
        Some((user.to_string(), pass.to_string()))
    }

    #[test]
    fn plain_credentials_are_read() {
        assert_eq!(creds("PLAIN", b"\0guest\0guest"), pair("guest", "guest"));
        assert_eq!(creds("PLAIN", b"guest"), None);
        assert_eq!(creds("PLAIN", b"\0a\0b\0c"), None);
        assert_eq!(creds("CRAM-MD5", b"\0guest\0guest"), None);
    }

    #[test]
    fn amqplain_credentials_are_read() {
        let entry = |name: &str, value: &str| {
            let mut e = vec![name.len() as u8];
            e.extend_from_slice(name.as_bytes());
            e.push(b'S');
            e.extend_from_slice(&(value.len() as u32).to_be_bytes());
            e.extend_from_slice(value.as_bytes());
            e
        };
        let good = [entry("LOGIN", "guest"), entry("PASSWORD", "pw")].concat();
        assert_eq!(creds("AMQPLAIN", &good), pair("guest", "pw"));
        assert_eq!(creds("AMQPLAIN", &good[..good.len() - 2]), None);
        assert_eq!(creds("AMQPLAIN", &entry("LOGIN", "guest")), None);
    }
}
