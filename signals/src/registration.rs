//! Declaring extensions and registering their receivers and guards.
//!
//! Everything here is collected at link time with `inventory`: the macros
//! [`extension!`](crate::extension), [`receiver!`](crate::receiver) and
//! [`guard!`](crate::guard) each submit one registration, and the registry
//! walks them at startup. Receivers and guards find their extension by name
//! and receive its configuration, typed, as their last argument.

use std::any::{Any, TypeId};
use std::sync::Arc;

use registry_config::{ConfigError, ExtensionSection};
use serde::de::DeserializeOwned;

use crate::event::Event;
use crate::guard::{ManifestCandidate, Rejection};
use crate::signal::{Payload, SignalKind};

/// The loaded configuration of an extension, shared by its receivers and
/// guards. Its concrete type is the extension's config type.
pub type ExtensionState = Arc<dyn Any + Send + Sync>;

/// The configuration type of an extension: what its `extensions.<name>`
/// section deserializes into.
///
/// Unknown keys are rejected when the type has
/// `#[serde(deny_unknown_fields)]`, which is recommended. The `enabled` key
/// belongs to the registry and is removed before deserializing.
pub trait ExtensionConfig: DeserializeOwned + Send + Sync + 'static {
    /// Checks what deserialization cannot, such as ranges or combinations of
    /// keys. The message should name the key and the value.
    ///
    /// # Errors
    ///
    /// The message is reported with the section's path and stops startup.
    fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

/// The config type of an extension without settings: its section may hold
/// only `enabled`, and any other key is an error.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

impl ExtensionConfig for NoConfig {}

/// An extension, as declared by [`extension!`](crate::extension).
#[derive(Debug)]
pub struct ExtensionRegistration {
    /// The key of its section under `extensions`, and the suffix of its
    /// Cargo feature `ext-<name>`.
    pub name: &'static str,
    /// Whether it runs when linked and its section does not say `enabled`.
    pub enabled_by_default: bool,
    /// Reads and validates its section.
    pub load: fn(&ExtensionSection) -> Result<ExtensionState, ConfigError>,
    /// The type its section loads into, checked against its receivers.
    pub config_type: fn() -> TypeId,
    pub config_type_name: &'static str,
}

/// A receiver, as registered by [`receiver!`](crate::receiver).
#[derive(Debug)]
pub struct ReceiverRegistration {
    /// The extension it belongs to.
    pub extension: &'static str,
    /// The signal it receives.
    pub kind: SignalKind,
    /// The handler's path, for listings and logs.
    pub name: &'static str,
    /// The config type the handler takes.
    pub config_type: fn() -> TypeId,
    /// Calls the handler with the event's payload and the extension's
    /// configuration.
    pub receive: fn(&Event, &ExtensionState),
}

/// A guard, as registered by [`guard!`](crate::guard).
#[derive(Debug)]
pub struct GuardRegistration {
    /// The extension it belongs to.
    pub extension: &'static str,
    /// The handler's path, for listings and logs.
    pub name: &'static str,
    /// The config type the handler takes.
    pub config_type: fn() -> TypeId,
    /// Calls the handler with the candidate manifest and the extension's
    /// configuration.
    pub check: fn(&ManifestCandidate<'_>, &ExtensionState) -> Result<(), Rejection>,
}

inventory::collect!(ExtensionRegistration);
inventory::collect!(ReceiverRegistration);
inventory::collect!(GuardRegistration);

/// Returns every extension linked into this binary.
pub fn extensions() -> impl Iterator<Item = &'static ExtensionRegistration> {
    inventory::iter::<ExtensionRegistration>.into_iter()
}

/// Returns every receiver linked into this binary.
pub fn receivers() -> impl Iterator<Item = &'static ReceiverRegistration> {
    inventory::iter::<ReceiverRegistration>.into_iter()
}

/// Returns every guard linked into this binary.
pub fn guards() -> impl Iterator<Item = &'static GuardRegistration> {
    inventory::iter::<GuardRegistration>.into_iter()
}

/// Helpers that the macros expand to. Not part of the stable API.
#[doc(hidden)]
pub mod private {
    use super::*;

    pub fn load<C: ExtensionConfig>(
        section: &ExtensionSection,
    ) -> Result<ExtensionState, ConfigError> {
        let config: C = section.deserialize()?;
        config.validate().map_err(|message| ConfigError::Invalid {
            path: format!("extensions.{}", section.name()),
            message,
            variable: None,
        })?;
        Ok(Arc::new(config))
    }

    pub fn type_id<C: 'static>() -> TypeId {
        TypeId::of::<C>()
    }

    pub const fn receiver_kind<P: Payload, C>(_handler: fn(&Event, &P, &C)) -> SignalKind {
        P::KIND
    }

    pub const fn receiver_config<P, C: 'static>(_handler: fn(&Event, &P, &C)) -> fn() -> TypeId {
        type_id::<C>
    }

    pub fn deliver<P: Payload, C: 'static>(
        event: &Event,
        state: &ExtensionState,
        handler: fn(&Event, &P, &C),
    ) {
        // The registry checks config types at startup, so both lookups
        // succeed for every event it delivers.
        if let (Some(payload), Some(config)) =
            (P::from_signal(&event.signal), state.downcast_ref::<C>())
        {
            handler(event, payload, config);
        }
    }

    pub const fn guard_config<C: 'static>(
        _handler: fn(&ManifestCandidate<'_>, &C) -> Result<(), Rejection>,
    ) -> fn() -> TypeId {
        type_id::<C>
    }

    pub fn check<C: 'static>(
        candidate: &ManifestCandidate<'_>,
        state: &ExtensionState,
        handler: fn(&ManifestCandidate<'_>, &C) -> Result<(), Rejection>,
    ) -> Result<(), Rejection> {
        match state.downcast_ref::<C>() {
            Some(config) => handler(candidate, config),
            None => Err(Rejection::new("guard configuration has the wrong type")),
        }
    }
}

/// Declares an extension: its name, its config type, and whether it runs
/// when linked without an `enabled` key in its section.
///
/// ```ignore
/// #[derive(serde::Deserialize)]
/// #[serde(deny_unknown_fields)]
/// struct Config { setting: String }
/// impl registry_signals::ExtensionConfig for Config {}
///
/// registry_signals::extension!(name: "foo", config: Config, enabled_by_default: true);
/// ```
#[macro_export]
macro_rules! extension {
    (name: $name:literal, config: $config:ty, enabled_by_default: $enabled:expr $(,)?) => {
        $crate::inventory::submit! {
            $crate::ExtensionRegistration {
                name: $name,
                enabled_by_default: $enabled,
                load: $crate::registration::private::load::<$config>,
                config_type: $crate::registration::private::type_id::<$config>,
                config_type_name: stringify!($config),
            }
        }
    };
}

/// Registers a receiver of an extension. The handler's payload type picks
/// the signal, and its last argument is the extension's config type:
///
/// ```ignore
/// fn log_tag(event: &Event, tag: &TagCreated, config: &Config) { /* ... */ }
/// registry_signals::receiver!("foo", log_tag);
/// ```
#[macro_export]
macro_rules! receiver {
    ($extension:literal, $handler:path $(,)?) => {
        $crate::inventory::submit! {
            $crate::ReceiverRegistration {
                extension: $extension,
                kind: $crate::registration::private::receiver_kind($handler),
                name: concat!(module_path!(), "::", stringify!($handler)),
                config_type: $crate::registration::private::receiver_config($handler),
                receive: {
                    fn receive(event: &$crate::Event, state: &$crate::ExtensionState) {
                        $crate::registration::private::deliver(event, state, $handler)
                    }
                    receive
                },
            }
        }
    };
}

/// Registers a guard of an extension: a check that runs before a manifest
/// is stored and may reject the push.
///
/// ```ignore
/// fn no_latest(candidate: &ManifestCandidate<'_>, config: &Config) -> Result<(), Rejection> {
///     match candidate.tag {
///         Some("latest") => Err(Rejection::new("the tag latest is reserved")),
///         _ => Ok(()),
///     }
/// }
/// registry_signals::guard!("foo", no_latest);
/// ```
#[macro_export]
macro_rules! guard {
    ($extension:literal, $handler:path $(,)?) => {
        $crate::inventory::submit! {
            $crate::GuardRegistration {
                extension: $extension,
                name: concat!(module_path!(), "::", stringify!($handler)),
                config_type: $crate::registration::private::guard_config($handler),
                check: {
                    fn check(
                        candidate: &$crate::ManifestCandidate<'_>,
                        state: &$crate::ExtensionState,
                    ) -> ::std::result::Result<(), $crate::Rejection> {
                        $crate::registration::private::check(candidate, state, $handler)
                    }
                    check
                },
            }
        }
    };
}
