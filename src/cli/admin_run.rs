//! Carrying out an administration subcommand (`admin_args.rs`): changes become commands
//! committed through a member (`admin.rs`), listings are read from one (`listing.rs`).
//! Passwords are hashed here with a fresh salt: neither the wire nor the log nor any node's
//! log file sees one.

use super::admin::{read, submit_one};
use super::admin_args::{AdminCommand, Target};
use super::listing;
use crate::broker::access::Permission;
use crate::broker::command::Command;
use crate::config::NodeConfig;
use crate::server::access_view::hash_password;

/// Runs `command`; what to print on stdout. An error (a refusal, no member answering)
/// makes the process exit non-zero.
pub async fn run(command: AdminCommand) -> anyhow::Result<String> {
    use AdminCommand as A;
    let target = target(&command).clone();
    let config = NodeConfig::load(&target.config)?;
    let say = |text: String| match target.quiet {
        true => String::new(),
        false => text + "\n",
    };
    let out = match command {
        A::AddUser { user, password, .. } => {
            let text = say(format!("Adding user \"{user}\" ..."));
            let password = hash_password(password.as_bytes());
            let tags = Vec::new();
            let create_only = true;
            let put = Command::PutUser {
                name: user,
                password,
                tags,
                create_only,
            };
            submit_one(&config, put).await?;
            text
        }
        A::DeleteUser { user, .. } => {
            let text = say(format!("Deleting user \"{user}\" ..."));
            submit_one(&config, Command::DeleteUser { name: user }).await?;
            text
        }
        A::ChangePassword { user, password, .. } => {
            let text = say(format!("Changing password for user \"{user}\" ..."));
            let password = hash_password(password.as_bytes());
            submit_one(
                &config,
                Command::ChangePassword {
                    name: user,
                    password,
                },
            )
            .await?;
            text
        }
        A::AuthenticateUser { user, password, .. } => {
            let text = say(format!("Authenticating user \"{user}\" ..."));
            let applied = read(&config).await?;
            let ok = applied
                .user(&user)
                .is_some_and(|u| u.password.verify(password.as_bytes()));
            anyhow::ensure!(ok, "failed to authenticate user \"{user}\"");
            text + "Success\n"
        }
        A::SetUserTags { user, tags, .. } => {
            let text = say(format!(
                "Setting tags for user \"{user}\" to [{}] ...",
                tags.join(", ")
            ));
            submit_one(&config, Command::SetUserTags { name: user, tags }).await?;
            text
        }
        A::AddVhost { vhost, .. } => {
            let text = say(format!("Adding vhost \"{vhost}\" ..."));
            submit_one(&config, Command::AddVhost { name: vhost }).await?;
            text
        }
        A::DeleteVhost { vhost, .. } => {
            let text = say(format!("Deleting vhost \"{vhost}\" ..."));
            submit_one(&config, Command::DeleteVhost { name: vhost }).await?;
            text
        }
        A::SetPermissions {
            user,
            configure,
            write,
            read,
            vhost,
            ..
        } => {
            let vhost = vhost.vhost;
            let text = say(format!(
                "Setting permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            ));
            let permission = Permission {
                configure,
                write,
                read,
            };
            let set = Command::SetPermissions {
                user,
                vhost,
                permission,
            };
            submit_one(&config, set).await?;
            text
        }
        A::ClearPermissions { user, vhost, .. } => {
            let vhost = vhost.vhost;
            let text = say(format!(
                "Clearing permissions for user \"{user}\" in vhost \"{vhost}\" ..."
            ));
            submit_one(&config, Command::ClearPermissions { user, vhost }).await?;
            text
        }
        A::ExportDefinitions { file, .. } => super::definitions::export(&config, &file).await?,
        A::ImportDefinitions { file, .. } => super::definitions::import(&config, &file).await?,
        listing => list(&config, listing).await?,
    };
    Ok(out)
}

/// The `list_*` commands.
async fn list(config: &NodeConfig, command: AdminCommand) -> anyhow::Result<String> {
    use AdminCommand as A;
    let quiet = target(&command).quiet;
    let applied = read(config).await?;
    if let Some(vhost) = vhost_of(&command) {
        let exists = applied.vhosts.iter().any(|v| v == vhost);
        anyhow::ensure!(exists, "virtual host '{vhost}' does not exist");
    }
    let table = match command {
        A::ListUsers { .. } => listing::users(&applied),
        A::ListVhosts { .. } => listing::vhosts(&applied),
        A::ListPermissions { vhost, .. } => listing::permissions(&applied, &vhost.vhost),
        A::ListUserPermissions { user, .. } => listing::user_permissions(&applied, &user),
        A::ListQueues { columns, vhost, .. } => listing::queues(&applied, &vhost.vhost, &columns)?,
        A::ListExchanges { columns, vhost, .. } => {
            listing::exchanges(&applied, &vhost.vhost, &columns)?
        }
        A::ListBindings { vhost, .. } => listing::bindings(&applied, &vhost.vhost),
        A::ListConsumers { vhost, .. } => listing::consumers(&applied, &vhost.vhost),
        A::ListConnections { .. } => listing::connections(&applied),
        _ => anyhow::bail!("not a listing"),
    };
    Ok(table.render(quiet))
}

/// The vhost a listing is about, if it is about one.
fn vhost_of(command: &AdminCommand) -> Option<&str> {
    use AdminCommand as A;
    match command {
        A::ListPermissions { vhost, .. }
        | A::ListQueues { vhost, .. }
        | A::ListExchanges { vhost, .. }
        | A::ListBindings { vhost, .. }
        | A::ListConsumers { vhost, .. } => Some(&vhost.vhost),
        _ => None,
    }
}

fn target(command: &AdminCommand) -> &Target {
    use AdminCommand as A;
    match command {
        A::AddUser { target, .. }
        | A::DeleteUser { target, .. }
        | A::ChangePassword { target, .. }
        | A::AuthenticateUser { target, .. }
        | A::ListUsers { target }
        | A::SetUserTags { target, .. }
        | A::AddVhost { target, .. }
        | A::DeleteVhost { target, .. }
        | A::ListVhosts { target }
        | A::SetPermissions { target, .. }
        | A::ClearPermissions { target, .. }
        | A::ListPermissions { target, .. }
        | A::ListUserPermissions { target, .. }
        | A::ListQueues { target, .. }
        | A::ListExchanges { target, .. }
        | A::ListBindings { target, .. }
        | A::ListConsumers { target, .. }
        | A::ListConnections { target }
        | A::ExportDefinitions { target, .. }
        | A::ImportDefinitions { target, .. } => target,
    }
}
