//! End to end on one node: who logs in (the configured default user, not guest once another
//! is configured), which vhost opens, update-secret, and the publisher's `user_id`.

use std::net::SocketAddr;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::ShortString;
use lapin::{BasicProperties, Connection, ConnectionProperties};

mod common;

use common::{refusal, start_server, start_server_with, within};

async fn connect_as(
    addr: SocketAddr,
    user: &str,
    pass: &str,
    vhost: &str,
) -> lapin::Result<Connection> {
    let vhost = vhost.replace('/', "%2f");
    let uri = format!("amqp://{user}:{pass}@{addr}/{vhost}");
    within(
        "connect",
        Connection::connect(&uri, ConnectionProperties::default()),
    )
    .await
}

/// `default_user` and `default_pass` in the config replace guest/guest: that user logs in
/// and works, guest is refused (403).
#[tokio::test]
async fn the_configured_default_user_logs_in_and_guest_does_not() {
    let server = start_server_with("default_user = \"admin\"\ndefault_pass = \"s3cret\"");
    let conn = connect_as(server.addr, "admin", "s3cret", "/")
        .await
        .expect("the default user logs in");
    let channel = conn.create_channel().await.expect("channel");
    common::declare_queue(&channel, "admin-q").await;
    let refused = connect_as(server.addr, "guest", "guest", "/")
        .await
        .expect_err("guest logged in though another default user is configured");
    assert_eq!(refusal(&refused).0, 403, "{refused:?}");
    let wrong = connect_as(server.addr, "admin", "guess", "/")
        .await
        .expect_err("a wrong password logged in");
    assert_eq!(refusal(&wrong).0, 403, "{wrong:?}");
}

/// connection.open to a vhost that does not exist: 530, RabbitMQ's text.
#[tokio::test]
async fn an_unknown_vhost_is_refused_with_530() {
    let server = start_server();
    let refused = connect_as(server.addr, "guest", "guest", "nowhere")
        .await
        .expect_err("an unknown vhost opened");
    assert_eq!(
        refusal(&refused),
        (530, "NOT_ALLOWED - vhost nowhere not found".to_string())
    );
}

/// connection.update-secret with the user's password is answered update-secret-ok and the
/// connection goes on; with another password the connection is closed with 403.
#[tokio::test]
async fn update_secret_checks_the_new_password() {
    let server = start_server();
    let conn = connect_as(server.addr, "guest", "guest", "/")
        .await
        .expect("login");
    within("update-secret", conn.update_secret("guest", "rotation"))
        .await
        .expect("the right secret is accepted");
    let channel = conn
        .create_channel()
        .await
        .expect("channel after update-secret");
    common::declare_queue(&channel, "after-update").await;
    let refused = within("update-secret", conn.update_secret("stolen", "rotation"))
        .await
        .expect_err("a wrong secret was accepted");
    assert_eq!(refusal(&refused).0, 403, "{refused:?}");
}

/// A publish whose `user_id` is not the connection's user: the channel is closed with 406
/// and RabbitMQ's text; the connection's own name is accepted.
#[tokio::test]
async fn a_publish_claiming_another_user_is_refused_with_406() {
    let server = start_server();
    let conn = connect_as(server.addr, "guest", "guest", "/")
        .await
        .expect("login");
    let channel = conn.create_channel().await.expect("channel");
    common::declare_queue(&channel, "uid").await;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    let publish = |user: &str| {
        let properties = BasicProperties::default().with_user_id(ShortString::from(user));
        channel.basic_publish("", "uid", BasicPublishOptions::default(), b"m", properties)
    };
    let own = within("publish", publish("guest")).await.expect("publish");
    assert!(within("confirm", own).await.expect("confirm").is_ack());
    let claimed = within("publish", async { publish("mallory").await?.await })
        .await
        .expect_err("a publish as another user was confirmed");
    assert_eq!(
        refusal(&claimed),
        (
            406,
            "PRECONDITION_FAILED - user_id property set to 'mallory' but authenticated user \
             was 'guest'"
                .to_string()
        )
    );
}
