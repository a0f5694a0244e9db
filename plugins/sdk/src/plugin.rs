//! The two plugin traits and their export macros. The component model calls free functions,
//! so the macros keep the plugin's one instance in a thread-local slot (a component instance
//! is single-threaded) and forward each export to it.

use crate::{Event, KeyValue, Member, Output, Spec};

/// An aggregation rule: inputs cut into windows aligned to `Spec::resolution_ms`; when a window
/// closes, the leader asks for its outputs and commits them with the rule's flush mark.
pub trait Aggregator: Sized {
    /// Reads the config (JSON text, "{}" when none was given) and says which inputs the rule
    /// wants. An error refuses the deploy with its text.
    fn init(config: &str) -> Result<(Self, Spec), String>;

    /// One input. KV events come in revision order; inputs of a later window may come before
    /// an earlier window's flush, so key state by window (see [`Windows`](crate::Windows)).
    fn on_event(&mut self, event: Event);

    /// A batch of inputs, in order. Override only to see a batch as a whole.
    fn on_events(&mut self, events: Vec<Event>) {
        for event in events {
            self.on_event(event);
        }
    }

    /// The window `[start_ms, end_ms)` closed: its outputs, which commit together at one
    /// revision. Forget the window's state.
    fn flush(&mut self, start_ms: i64, end_ms: i64) -> Vec<Output>;
}

/// Told when leadership moves, and asked who should lead.
pub trait ElectionHook: Sized {
    /// Reads the config; an error refuses the deploy with its text.
    fn init(config: &str) -> Result<Self, String>;

    /// This member became the cluster's leader in `term`; the outputs are proposed.
    fn elected(&mut self, term: u64, leader: &Member, members: &[Member]) -> Vec<Output>;

    /// This member is no longer the leader.
    fn lost(&mut self, term: u64) {
        let _ = term;
    }

    /// A named election of the Election API has a new leader (None: nobody holds it).
    fn election_changed(&mut self, name: &[u8], leader: Option<KeyValue>) -> Vec<Output> {
        let _ = (name, leader);
        Vec::new()
    }

    /// Which member should lead (its id), or None to leave leadership where it is. The host
    /// moves leadership only to a caught-up voter.
    fn preferred_leader(&mut self, members: &[Member]) -> Option<u64> {
        let _ = members;
        None
    }
}

/// Exports an [`Aggregator`] as the component's `conclave:plugin/aggregator` interface. Use once
/// per plugin crate, at its root: `conclave_plugin_sdk::export_aggregator!(MyRule);`
#[macro_export]
macro_rules! export_aggregator {
    ($rule:ty) => {
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: $crate::__private::Slot<$rule> =
                    const { $crate::__private::Slot::new() };
            }

            // wit-bindgen's export macro takes a plain identifier: this type forwards to $rule.
            struct ConclaveAggregatorExport;

            impl
                $crate::__private::aggregator_bindings::exports::conclave::plugin::aggregator::Guest
                for ConclaveAggregatorExport
            {
                fn init(
                    config: ::std::string::String,
                ) -> ::core::result::Result<$crate::Spec, ::std::string::String> {
                    $crate::__private::aggregator_init(&INSTANCE, &config)
                }

                fn on_events(events: ::std::vec::Vec<$crate::Event>) {
                    $crate::__private::with_instance(&INSTANCE, "on-events", |rule| {
                        $crate::Aggregator::on_events(rule, events)
                    })
                }

                fn flush(start_ms: i64, end_ms: i64) -> ::std::vec::Vec<$crate::Output> {
                    $crate::__private::with_instance(&INSTANCE, "flush", |rule| {
                        $crate::Aggregator::flush(rule, start_ms, end_ms)
                    })
                }
            }

            $crate::__private::aggregator_bindings::export!(
                ConclaveAggregatorExport with_types_in $crate::__private::aggregator_bindings
            );
        };
    };
}

/// Exports an [`ElectionHook`] as the component's `conclave:plugin/election-hook` interface.
/// Use once per plugin crate, at its root: `conclave_plugin_sdk::export_election_hook!(MyHook);`
#[macro_export]
macro_rules! export_election_hook {
    ($hook:ty) => {
        const _: () = {
            ::std::thread_local! {
                static INSTANCE: $crate::__private::Slot<$hook> =
                    const { $crate::__private::Slot::new() };
            }

            // wit-bindgen's export macro takes a plain identifier: this type forwards to $hook.
            struct ConclaveElectionHookExport;

            impl $crate::__private::election_hook_bindings::exports::conclave::plugin::election_hook::Guest
                for ConclaveElectionHookExport
            {
                fn init(config: ::std::string::String) -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::election_hook_init(&INSTANCE, &config)
                }

                fn elected(
                    term: u64,
                    leader: $crate::Member,
                    members: ::std::vec::Vec<$crate::Member>,
                ) -> ::std::vec::Vec<$crate::Output> {
                    $crate::__private::with_instance(&INSTANCE, "elected", |hook| {
                        $crate::ElectionHook::elected(hook, term, &leader, &members)
                    })
                }

                fn lost(term: u64) {
                    $crate::__private::with_instance(&INSTANCE, "lost", |hook| {
                        $crate::ElectionHook::lost(hook, term)
                    })
                }

                fn election_changed(
                    name: ::std::vec::Vec<u8>,
                    leader: ::core::option::Option<$crate::KeyValue>,
                ) -> ::std::vec::Vec<$crate::Output> {
                    $crate::__private::with_instance(&INSTANCE, "election-changed", |hook| {
                        $crate::ElectionHook::election_changed(hook, &name, leader)
                    })
                }

                fn preferred_leader(
                    members: ::std::vec::Vec<$crate::Member>,
                ) -> ::core::option::Option<u64> {
                    $crate::__private::with_instance(&INSTANCE, "preferred-leader", |hook| {
                        $crate::ElectionHook::preferred_leader(hook, &members)
                    })
                }
            }

            $crate::__private::election_hook_bindings::export!(
                ConclaveElectionHookExport with_types_in $crate::__private::election_hook_bindings
            );
        };
    };
}

/// The non-generic halves of the export macros, kept here so the macros stay thin.
pub mod glue {
    use std::cell::RefCell;
    use std::thread::LocalKey;

    use crate::{Aggregator, ElectionHook, Spec};

    /// Where a component keeps its one plugin instance, between `init` and the other calls.
    pub struct Slot<T>(RefCell<Option<T>>);

    impl<T> Slot<T> {
        /// Empty; `const` so that the thread-local needs no lazy initialisation.
        pub const fn new() -> Self {
            Slot(RefCell::new(None))
        }
    }

    impl<T> Default for Slot<T> {
        fn default() -> Self {
            Slot::new()
        }
    }

    /// `init` of an aggregator: a successful init replaces any earlier instance; a failed one
    /// leaves none, so a later call cannot run on a half-configured rule.
    pub fn aggregator_init<A: Aggregator>(
        slot: &'static LocalKey<Slot<A>>,
        config: &str,
    ) -> Result<Spec, String> {
        match A::init(config) {
            Ok((rule, spec)) => {
                slot.with(|s| s.0.replace(Some(rule)));
                Ok(spec)
            }
            Err(e) => {
                slot.with(|s| s.0.replace(None));
                Err(e)
            }
        }
    }

    /// `init` of an election hook, as [`aggregator_init`].
    pub fn election_hook_init<H: ElectionHook>(
        slot: &'static LocalKey<Slot<H>>,
        config: &str,
    ) -> Result<(), String> {
        match H::init(config) {
            Ok(hook) => {
                slot.with(|s| s.0.replace(Some(hook)));
                Ok(())
            }
            Err(e) => {
                slot.with(|s| s.0.replace(None));
                Err(e)
            }
        }
    }

    /// Runs `f` on the instance. A call before a successful `init` breaks the host's side of
    /// the contract: it traps (a panic aborts on wasm32), which the host reports as the plugin's
    /// failure with this message in its stderr.
    pub fn with_instance<T, R>(
        slot: &'static LocalKey<Slot<T>>,
        call: &str,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        slot.with(|s| match s.0.borrow_mut().as_mut() {
            Some(instance) => f(instance),
            None => panic!("conclave plugin: `{call}` called before a successful `init`"),
        })
    }
}
