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
use crate::guard::{ManifestCandidate, Receipt, Rejection};
use crate::platform::{BoxFuture, ExtensionContext, RequestRecord, Shutdown};
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

    /// Tells whether the extension, as configured, takes events of `kind`
    /// in its receivers and hand-offs. The registry calls it once at
    /// startup and builds no event of a kind that no extension takes, so an
    /// extension whose configuration ignores a kind (webhooks without pull
    /// events) costs its requests nothing. Default: every kind.
    fn receives(&self, kind: SignalKind) -> bool {
        let _ = kind;
        true
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
    /// Asks the loaded configuration whether it takes a signal kind (see
    /// [`ExtensionConfig::receives`]).
    pub receives: fn(&ExtensionState, SignalKind) -> bool,
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

/// A durable hand-off, as registered by [`handoff!`](crate::handoff): it
/// runs inside the request after the change is stored and before the
/// response, and must not block; what it leaves to wait for has a time
/// limit (`signals.handofftimeout`).
#[derive(Debug)]
pub struct HandoffRegistration {
    /// The extension it belongs to.
    pub extension: &'static str,
    /// The signal it takes.
    pub kind: SignalKind,
    /// The handler's path, for listings and logs.
    pub name: &'static str,
    /// The config type the handler takes.
    pub config_type: fn() -> TypeId,
    /// Calls the handler with the event's payload and the extension's
    /// configuration.
    pub hand_off: fn(&Event, &ExtensionState) -> Result<Receipt, String>,
}

/// A setup function, as registered by [`setup!`](crate::setup): it runs
/// once at startup, before routes and tasks, and may stop startup.
#[derive(Debug)]
pub struct SetupRegistration {
    pub extension: &'static str,
    pub name: &'static str,
    pub config_type: fn() -> TypeId,
    pub setup: fn(&ExtensionState, &ExtensionContext) -> Result<(), String>,
}

/// HTTP routes, as registered by [`routes!`](crate::routes): merged into
/// the registry's router, beside `/v2/`.
#[derive(Debug)]
pub struct RoutesRegistration {
    pub extension: &'static str,
    pub name: &'static str,
    pub config_type: fn() -> TypeId,
    pub routes: fn(&ExtensionState, &ExtensionContext) -> axum::Router,
}

/// A background task, as registered by [`task!`](crate::task): started
/// after setup, stopped through its [`Shutdown`].
#[derive(Debug)]
pub struct TaskRegistration {
    pub extension: &'static str,
    pub name: &'static str,
    pub config_type: fn() -> TypeId,
    pub start: fn(&ExtensionState, ExtensionContext, Shutdown) -> BoxFuture<'static, ()>,
}

/// A request observer, as registered by [`observer!`](crate::observer):
/// called inside the registry for every completed request, so it must
/// only update counters.
#[derive(Debug)]
pub struct ObserverRegistration {
    pub extension: &'static str,
    pub name: &'static str,
    pub config_type: fn() -> TypeId,
    pub observe: fn(&RequestRecord<'_>, &ExtensionState),
}

inventory::collect!(ExtensionRegistration);
inventory::collect!(ReceiverRegistration);
inventory::collect!(GuardRegistration);
inventory::collect!(HandoffRegistration);
inventory::collect!(SetupRegistration);
inventory::collect!(RoutesRegistration);
inventory::collect!(TaskRegistration);
inventory::collect!(ObserverRegistration);

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

/// Returns every hand-off linked into this binary.
pub fn handoffs() -> impl Iterator<Item = &'static HandoffRegistration> {
    inventory::iter::<HandoffRegistration>.into_iter()
}

/// Returns every setup function linked into this binary.
pub fn setups() -> impl Iterator<Item = &'static SetupRegistration> {
    inventory::iter::<SetupRegistration>.into_iter()
}

/// Returns every routes registration linked into this binary.
pub fn routes() -> impl Iterator<Item = &'static RoutesRegistration> {
    inventory::iter::<RoutesRegistration>.into_iter()
}

/// Returns every task linked into this binary.
pub fn tasks() -> impl Iterator<Item = &'static TaskRegistration> {
    inventory::iter::<TaskRegistration>.into_iter()
}

/// Returns every request observer linked into this binary.
pub fn observers() -> impl Iterator<Item = &'static ObserverRegistration> {
    inventory::iter::<ObserverRegistration>.into_iter()
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

    pub fn receives<C: ExtensionConfig>(state: &ExtensionState, kind: SignalKind) -> bool {
        state
            .downcast_ref::<C>()
            .is_none_or(|config| config.receives(kind))
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

    pub const fn handoff_kind<P: Payload, C>(
        _handler: fn(&Event, &P, &C) -> Result<Receipt, String>,
    ) -> SignalKind {
        P::KIND
    }

    pub const fn handoff_config<P, C: 'static>(
        _handler: fn(&Event, &P, &C) -> Result<Receipt, String>,
    ) -> fn() -> TypeId {
        type_id::<C>
    }

    pub fn hand_off<P: Payload, C: 'static>(
        event: &Event,
        state: &ExtensionState,
        handler: fn(&Event, &P, &C) -> Result<Receipt, String>,
    ) -> Result<Receipt, String> {
        match (P::from_signal(&event.signal), state.downcast_ref::<C>()) {
            (Some(payload), Some(config)) => handler(event, payload, config),
            _ => Ok(Receipt::done()),
        }
    }

    /// Returns the extension's configuration as an `Arc` of its type.
    pub fn config<C: Send + Sync + 'static>(state: &ExtensionState) -> Arc<C> {
        // The registry checks config types at startup.
        Arc::clone(state)
            .downcast::<C>()
            .unwrap_or_else(|_| panic!("extension state is not {}", std::any::type_name::<C>()))
    }

    pub const fn setup_config<C: 'static>(
        _handler: fn(&C, &ExtensionContext) -> Result<(), String>,
    ) -> fn() -> TypeId {
        type_id::<C>
    }

    pub const fn routes_config<C: 'static>(
        _handler: fn(Arc<C>, &ExtensionContext) -> axum::Router,
    ) -> fn() -> TypeId {
        type_id::<C>
    }

    pub const fn task_config<C: 'static, F>(
        _handler: fn(Arc<C>, ExtensionContext, Shutdown) -> F,
    ) -> fn() -> TypeId {
        type_id::<C>
    }

    pub const fn observer_config<C: 'static>(
        _handler: fn(&RequestRecord<'_>, &C),
    ) -> fn() -> TypeId {
        type_id::<C>
    }

    pub fn observe<C: 'static>(
        record: &RequestRecord<'_>,
        state: &ExtensionState,
        handler: fn(&RequestRecord<'_>, &C),
    ) {
        if let Some(config) = state.downcast_ref::<C>() {
            handler(record, config);
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
                receives: $crate::registration::private::receives::<$config>,
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

/// Registers a durable hand-off of an extension: like a receiver, but
/// called inside the request after the change is stored and before the
/// response, on the request's task, while the repository's ordering lock
/// is held. It must not block: it queues its work (a record for a writer
/// thread, say) and returns a [`Receipt`](crate::Receipt), done or a wait
/// for that work, which the registry awaits after releasing the lock. The
/// receipts of one change get `signals.handofftimeout` in all. An error, a
/// panic or a timeout is logged and counted; the client still gets its
/// success, because the change is already stored.
///
/// ```ignore
/// fn persist(event: &Event, pushed: &ManifestPushed, config: &Config) -> Result<Receipt, String> {
///     let synced = config.outbox().queue(event)?;
///     Ok(Receipt::wait_for(async move { synced.await }))
/// }
/// registry_signals::handoff!("notify", persist);
/// ```
#[macro_export]
macro_rules! handoff {
    ($extension:literal, $handler:path $(,)?) => {
        $crate::inventory::submit! {
            $crate::HandoffRegistration {
                extension: $extension,
                kind: $crate::registration::private::handoff_kind($handler),
                name: concat!(module_path!(), "::", stringify!($handler)),
                config_type: $crate::registration::private::handoff_config($handler),
                hand_off: {
                    fn hand_off(
                        event: &$crate::Event,
                        state: &$crate::ExtensionState,
                    ) -> ::std::result::Result<$crate::Receipt, ::std::string::String> {
                        $crate::registration::private::hand_off(event, state, $handler)
                    }
                    hand_off
                },
            }
        }
    };
}

/// Registers a setup function: called once at startup with the
/// extension's configuration and context, before its routes and tasks. An
/// error stops the registry with the message.
///
/// ```ignore
/// fn open_outbox(config: &Config, context: &ExtensionContext) -> Result<(), String> { /* ... */ }
/// registry_signals::setup!("notify", open_outbox);
/// ```
#[macro_export]
macro_rules! setup {
    ($extension:literal, $handler:path $(,)?) => {
        $crate::inventory::submit! {
            $crate::SetupRegistration {
                extension: $extension,
                name: concat!(module_path!(), "::", stringify!($handler)),
                config_type: $crate::registration::private::setup_config($handler),
                setup: {
                    fn setup(
                        state: &$crate::ExtensionState,
                        context: &$crate::ExtensionContext,
                    ) -> ::std::result::Result<(), ::std::string::String> {
                        let config = $crate::registration::private::config(state);
                        $handler(&config, context)
                    }
                    setup
                },
            }
        }
    };
}

/// Registers HTTP routes: a function that builds an `axum::Router` from
/// the configuration and context. The registry merges it beside `/v2/`,
/// behind the same request span and `X-Request-Id`; a path that another
/// router already serves stops startup.
///
/// ```ignore
/// fn search_routes(config: Arc<Config>, context: &ExtensionContext) -> axum::Router {
///     axum::Router::new().route("/v1/search", axum::routing::get(search)).with_state(config)
/// }
/// registry_signals::routes!("search", search_routes);
/// ```
#[macro_export]
macro_rules! routes {
    ($extension:literal, $handler:path $(,)?) => {
        $crate::inventory::submit! {
            $crate::RoutesRegistration {
                extension: $extension,
                name: concat!(module_path!(), "::", stringify!($handler)),
                config_type: $crate::registration::private::routes_config($handler),
                routes: {
                    fn routes(
                        state: &$crate::ExtensionState,
                        context: &$crate::ExtensionContext,
                    ) -> $crate::axum::Router {
                        $handler($crate::registration::private::config(state), context)
                    }
                    routes
                },
            }
        }
    };
}

/// Registers a background task: an async function that runs from startup
/// until its [`Shutdown`] fires, and should return soon after. The
/// registry waits for it up to `signals.draintimeout`.
///
/// ```ignore
/// async fn deliver(config: Arc<Config>, context: ExtensionContext, mut shutdown: Shutdown) {
///     while shutdown.sleep(Duration::from_secs(1)).await { /* ... */ }
/// }
/// registry_signals::task!("notify", deliver);
/// ```
#[macro_export]
macro_rules! task {
    ($extension:literal, $handler:path $(,)?) => {
        $crate::inventory::submit! {
            $crate::TaskRegistration {
                extension: $extension,
                name: concat!(module_path!(), "::", stringify!($handler)),
                config_type: $crate::registration::private::task_config($handler),
                start: {
                    fn start(
                        state: &$crate::ExtensionState,
                        context: $crate::ExtensionContext,
                        shutdown: $crate::Shutdown,
                    ) -> $crate::BoxFuture<'static, ()> {
                        let config = $crate::registration::private::config(state);
                        ::std::boxed::Box::pin($handler(config, context, shutdown))
                    }
                    start
                },
            }
        }
    };
}

/// Registers a request observer: called for every completed request with
/// its route, status, duration and byte counts, inside the registry, so it
/// must only update counters.
///
/// ```ignore
/// fn count(record: &RequestRecord<'_>, config: &Config) { /* ... */ }
/// registry_signals::observer!("metrics", count);
/// ```
#[macro_export]
macro_rules! observer {
    ($extension:literal, $handler:path $(,)?) => {
        $crate::inventory::submit! {
            $crate::ObserverRegistration {
                extension: $extension,
                name: concat!(module_path!(), "::", stringify!($handler)),
                config_type: $crate::registration::private::observer_config($handler),
                observe: {
                    fn observe(
                        record: &$crate::RequestRecord<'_>,
                        state: &$crate::ExtensionState,
                    ) {
                        $crate::registration::private::observe(record, state, $handler)
                    }
                    observe
                },
            }
        }
    };
}
