//! Linked extensions: finding them, reading their configuration, and
//! connecting the enabled ones.
//!
//! The extension crates register themselves with the macros of
//! `registry-signals`; Cargo features decide which crates are linked (see
//! `lib.rs`). At startup `load` walks the registrations, reads each
//! extension's `extensions.<name>` section into its own type, and leaves out
//! the extensions turned off with `enabled: false`. `Dispatcher::start`
//! then gives each enabled extension a queue and a worker.

mod dispatch;
mod guards;

use std::fmt::Write as _;

use registry_config::{Config, ConfigError, ExtensionSection};
use registry_signals::{
    ExtensionRegistration, ExtensionState, GuardRegistration, HandoffRegistration,
    ObserverRegistration, ReceiverRegistration, RoutesRegistration, SetupRegistration, SignalKind,
    TaskRegistration,
};

pub use dispatch::{Dispatcher, ExtensionStats, OwnedCandidate, Pending};
pub use runtime::{ExtensionRuntime, Observers, StartError};

mod runtime;

/// Returns the text of a panic payload, when it has one.
pub fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    dispatch::panic_message(panic).to_owned()
}

/// An extension linked into this binary and its state under the current
/// configuration.
#[derive(Debug)]
pub struct LinkedExtension {
    pub registration: &'static ExtensionRegistration,
    pub receivers: Vec<&'static ReceiverRegistration>,
    pub guards: Vec<&'static GuardRegistration>,
    pub handoffs: Vec<&'static HandoffRegistration>,
    pub setups: Vec<&'static SetupRegistration>,
    pub routes: Vec<&'static RoutesRegistration>,
    pub tasks: Vec<&'static TaskRegistration>,
    pub observers: Vec<&'static ObserverRegistration>,
    /// The loaded configuration; `None` when the extension is turned off.
    pub state: Option<ExtensionState>,
}

impl LinkedExtension {
    /// Returns the extension's name.
    pub fn name(&self) -> &'static str {
        self.registration.name
    }

    /// Returns whether the extension runs.
    pub fn enabled(&self) -> bool {
        self.state.is_some()
    }

    /// Returns the set of signal kinds its receivers take, as bits, less
    /// those that its configuration turns away.
    pub fn kinds(&self) -> u32 {
        let kinds = self.receivers.iter().fold(0, |bits, r| bits | r.kind.bit());
        self.configured(kinds)
    }

    /// Returns the set of signal kinds its hand-offs take, as bits, less
    /// those that its configuration turns away.
    pub fn handoff_kinds(&self) -> u32 {
        let kinds = self.handoffs.iter().fold(0, |bits, h| bits | h.kind.bit());
        self.configured(kinds)
    }

    fn configured(&self, kinds: u32) -> u32 {
        let Some(state) = &self.state else {
            return kinds;
        };
        SignalKind::ALL
            .into_iter()
            .filter(|kind| kinds & kind.bit() != 0 && (self.registration.receives)(state, *kind))
            .fold(0, |bits, kind| bits | kind.bit())
    }
}

/// The reason the extensions could not be set up. Each is a mistake in the
/// configuration or in how the binary was built, so startup stops with
/// exit status 2.
#[derive(Debug, thiserror::Error)]
pub enum ExtensionError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "extensions.{name}: extension {name:?} is not linked into this binary; \
         build it with `cargo build --features ext-{name}` or remove the section"
    )]
    NotLinked { name: String },
    #[error("extension {name:?} is registered twice; two linked crates use the same name")]
    Duplicate { name: &'static str },
    #[error("{kind} {handler} belongs to extension {extension:?}, which is not registered")]
    UnknownExtension {
        kind: &'static str,
        handler: &'static str,
        extension: &'static str,
    },
    #[error(
        "{kind} {handler} takes a different config type than extension {extension:?} \
         declares ({config_type})"
    )]
    ConfigTypeMismatch {
        kind: &'static str,
        handler: &'static str,
        extension: &'static str,
        config_type: &'static str,
    },
}

/// Finds the linked extensions, checks their registrations and reads the
/// configuration of each enabled one.
///
/// # Errors
///
/// A section for an extension that is not linked; an invalid section; a
/// receiver or guard that names an unknown extension or another config
/// type; two extensions with one name.
pub fn load(config: &Config) -> Result<Vec<LinkedExtension>, ExtensionError> {
    let mut registrations: Vec<&'static ExtensionRegistration> =
        registry_signals::extensions().collect();
    registrations.sort_by_key(|r| r.name);
    if let Some(pair) = registrations.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(ExtensionError::Duplicate { name: pair[0].name });
    }

    for name in config.extension_names() {
        if !registrations.iter().any(|r| r.name == name) {
            return Err(ExtensionError::NotLinked {
                name: name.to_owned(),
            });
        }
    }
    check_handlers(&registrations)?;

    let mut linked = Vec::with_capacity(registrations.len());
    for registration in registrations {
        let name = registration.name;
        let section = config
            .extension(name)
            .unwrap_or_else(|| ExtensionSection::missing(name));
        let enabled = section
            .enabled()?
            .unwrap_or(registration.enabled_by_default);
        let state = if enabled {
            Some((registration.load)(&section)?)
        } else {
            None
        };

        linked.push(LinkedExtension {
            registration,
            receivers: registry_signals::receivers()
                .filter(|r| r.extension == name)
                .collect(),
            guards: registry_signals::guards()
                .filter(|g| g.extension == name)
                .collect(),
            handoffs: registry_signals::handoffs()
                .filter(|h| h.extension == name)
                .collect(),
            setups: registry_signals::setups()
                .filter(|s| s.extension == name)
                .collect(),
            routes: registry_signals::routes()
                .filter(|r| r.extension == name)
                .collect(),
            tasks: registry_signals::tasks()
                .filter(|t| t.extension == name)
                .collect(),
            observers: registry_signals::observers()
                .filter(|o| o.extension == name)
                .collect(),
            state,
        });
    }
    Ok(linked)
}

/// Checks that every receiver and guard belongs to a registered extension
/// and takes its config type.
fn check_handlers(registrations: &[&'static ExtensionRegistration]) -> Result<(), ExtensionError> {
    let handlers = registry_signals::receivers()
        .map(|r| ("receiver", r.name, r.extension, r.config_type))
        .chain(registry_signals::guards().map(|g| ("guard", g.name, g.extension, g.config_type)))
        .chain(
            registry_signals::handoffs().map(|h| ("hand-off", h.name, h.extension, h.config_type)),
        )
        .chain(registry_signals::setups().map(|s| ("setup", s.name, s.extension, s.config_type)))
        .chain(registry_signals::routes().map(|r| ("routes", r.name, r.extension, r.config_type)))
        .chain(registry_signals::tasks().map(|t| ("task", t.name, t.extension, t.config_type)))
        .chain(
            registry_signals::observers().map(|o| ("observer", o.name, o.extension, o.config_type)),
        );

    for (kind, handler, extension, config_type) in handlers {
        let registration = registrations.iter().find(|r| r.name == extension).ok_or(
            ExtensionError::UnknownExtension {
                kind,
                handler,
                extension,
            },
        )?;
        if config_type() != (registration.config_type)() {
            return Err(ExtensionError::ConfigTypeMismatch {
                kind,
                handler,
                extension,
                config_type: registration.config_type_name,
            });
        }
    }
    Ok(())
}

/// Describes the linked extensions for `registry extensions`: one block per
/// extension with whether it is enabled, the signals it receives and its
/// guards.
pub fn describe(linked: &[LinkedExtension]) -> String {
    if linked.is_empty() {
        return "no extensions are linked into this binary; build with \
                `--features ext-<name>` or `--features full`\n"
            .to_owned();
    }

    let mut text = String::new();
    for extension in linked {
        let status = if extension.enabled() {
            "enabled"
        } else {
            "disabled"
        };
        let _ = writeln!(text, "{} ({status})", extension.name());

        let mut kinds: Vec<SignalKind> = extension.receivers.iter().map(|r| r.kind).collect();
        kinds.sort();
        kinds.dedup();
        let kinds: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
        let receives = if kinds.is_empty() {
            "nothing".to_owned()
        } else {
            kinds.join(", ")
        };
        let _ = writeln!(text, "  receives: {receives}");
        for handoff in &extension.handoffs {
            let _ = writeln!(text, "  hand-off: {} ({})", handoff.name, handoff.kind);
        }
        for guard in &extension.guards {
            let _ = writeln!(text, "  guard: {}", guard.name);
        }
        for setup in &extension.setups {
            let _ = writeln!(text, "  setup: {}", setup.name);
        }
        for routes in &extension.routes {
            let _ = writeln!(text, "  routes: {}", routes.name);
        }
        for task in &extension.tasks {
            let _ = writeln!(text, "  task: {}", task.name);
        }
        for observer in &extension.observers {
            let _ = writeln!(text, "  request observer: {}", observer.name);
        }
    }
    text
}
