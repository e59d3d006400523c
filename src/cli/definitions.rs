//! `warren export_definitions FILE` and `import_definitions FILE` (`-`: stdout, stdin), in
//! RabbitMQ's JSON format (`crate::definitions`). An import is checked whole before it is
//! sent (every wrong field named) and committed as one all-or-nothing entry; what the file
//! holds that Warren does not import is reported on stderr as "ignored: ...".

use std::io::{Read, Write};
use std::path::Path;

use anyhow::Context;

use super::admin::{read, submit_one};
use crate::broker::command::Command;
use crate::config::NodeConfig;
use crate::definitions::{export, import};

/// Writes the definitions a member applied; what to print on stdout.
pub async fn export(config: &NodeConfig, file: &Path) -> anyhow::Result<String> {
    let applied = read(config).await?;
    let json = export::to_json(&applied);
    if file == Path::new("-") {
        return Ok(json);
    }
    let mut out = std::fs::File::create(file)
        .with_context(|| format!("create definitions file {}", file.display()))?;
    out.write_all(json.as_bytes())
        .and_then(|()| out.sync_all())
        .with_context(|| format!("write definitions file {}", file.display()))?;
    Ok(format!("Exported definitions to \"{}\"\n", file.display()))
}

/// Imports the definitions in `file`; what to print on stdout.
pub async fn import(config: &NodeConfig, file: &Path) -> anyhow::Result<String> {
    let text = match file == Path::new("-") {
        true => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .context("read definitions from stdin")?;
            text
        }
        false => std::fs::read_to_string(file)
            .with_context(|| format!("read definitions file {}", file.display()))?,
    };
    let parsed = import::parse(&text).map_err(|e| {
        e.ignored.iter().for_each(|ignored| eprintln!("{ignored}"));
        anyhow::Error::new(e).context(format!("load definitions file {}", file.display()))
    })?;
    for ignored in &parsed.ignored {
        eprintln!("{ignored}");
    }
    let n = parsed.commands.len();
    let command = Command::ImportDefinitions {
        commands: parsed.commands,
    };
    submit_one(config, command).await?;
    Ok(format!(
        "Imported definitions from \"{}\" ({n} items)\n",
        file.display()
    ))
}
