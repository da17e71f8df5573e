//! [`NodeConfigCache`]: what `/config` keeps between requests so that a node asking again (or
//! a thousand nodes booting at once) costs a map lookup instead of six queries and a render.
//!
//! Two things are remembered, each with the store's config-inputs generation
//! ([`Store::config_inputs_generation`]) it was read under and the time it was read:
//! - which server a UUID or an IPv4 address belongs to;
//! - each server's rendered config, with the exact engine input and parsed secrets it came
//!   from.
//!
//! An entry is used as it is while the generation has not moved and it is younger than the
//! cache's time to live (and, past it, while one request reads it again, so that expiring
//! entries do not send every request in flight to the database at once). Every write through the same [`Store`] (or a clone) to a server,
//! machine config, config template, cluster or vSwitch moves the generation, so within one
//! process a change is seen by the very next request. Another process writing to the same
//! database (a second replica on PostgreSQL) is seen once the entry is older than the time to
//! live. After that, the rows are read again; when they give the same engine input and the
//! same secrets, the config rendered before is kept (rendering is a pure function of the two),
//! and the parsed secrets bundle of a cluster is reused while its stored text is unchanged.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{NodeConfig, NodeConfigError, generate, parse_secrets, read_inputs};
use crate::Secret;
use crate::ids::{ClusterId, ServerId};
use crate::store::{Cluster, Server, Store, StoreError};
use crate::talos::{GenerateInput, SecretsBundle};

/// How many server lookups are kept at most; beyond it, stale entries are dropped first.
const MAX_LOOKUPS: usize = 4_096;
/// How many lookups that found no server are kept at most.
const MAX_MISSES: usize = 4_096;
/// How many rendered configs are kept at most (each a few kilobytes).
const MAX_RENDERS: usize = 1_024;

/// How a node identifies itself when it asks for its config.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ServerLookup {
    /// By its SMBIOS UUID, compared without regard to case.
    Uuid(String),
    /// By the public IPv4 address the request comes from.
    Ipv4(String),
}

impl ServerLookup {
    /// Looks up by UUID; the case of `uuid` does not matter.
    pub fn uuid(uuid: &str) -> ServerLookup {
        ServerLookup::Uuid(uuid.to_ascii_lowercase())
    }

    /// Looks up by IPv4 address.
    pub fn ipv4(address: impl Into<String>) -> ServerLookup {
        ServerLookup::Ipv4(address.into())
    }
}

/// A rendered config with the cluster row it was made with (the Kubernetes version it used
/// and when that version was last checked).
#[derive(Debug, Clone)]
pub struct CachedNodeConfig {
    /// The config to serve.
    pub config: NodeConfig,
    /// The server's cluster as it was read for this config.
    pub cluster: Cluster,
}

/// Lookups and rendered configs for `/config`; see the module documentation for when an
/// entry is used. Cheap to share behind an `Arc`; no lock is held across a query.
#[derive(Debug)]
pub struct NodeConfigCache {
    ttl: Duration,
    entries: Mutex<Entries>,
}

#[derive(Debug, Default)]
struct Entries {
    lookups: HashMap<ServerLookup, Stamped<Server>>,
    /// Lookups that found no server: asked again, they cost no query while current.
    misses: HashMap<ServerLookup, Stamped<()>>,
    renders: HashMap<ServerId, Stamped<Render>>,
    secrets: HashMap<ClusterId, ParsedSecrets>,
}

#[derive(Debug)]
struct Stamped<T> {
    generation: u64,
    read_at: Instant,
    /// When a request started reading this entry's rows again after its time to live.
    rereading_since: Option<Instant>,
    value: T,
}

impl<T> Stamped<T> {
    fn new(generation: u64, value: T) -> Stamped<T> {
        Stamped {
            generation,
            read_at: Instant::now(),
            rereading_since: None,
            value,
        }
    }

    fn is_current(&self, generation: u64, ttl: Duration) -> bool {
        self.generation == generation && self.read_at.elapsed() < ttl
    }

    /// Whether the entry may answer this request. It may when it is current, and also, once
    /// older than the time to live, while another request reads its rows again (for at most
    /// one more time to live: that request may have been abandoned). Otherwise this request
    /// is marked as the one reading again, and the caller reads. So when entries expire under
    /// load, one request per entry goes to the database instead of every request in flight.
    fn may_answer(&mut self, generation: u64, ttl: Duration) -> bool {
        if self.generation != generation {
            return false;
        }
        if self.read_at.elapsed() < ttl {
            return true;
        }
        match self.rereading_since {
            Some(since) if since.elapsed() < ttl => true,
            _ => {
                self.rereading_since = Some(Instant::now());
                false
            }
        }
    }
}

#[derive(Debug)]
struct Render {
    input: GenerateInput,
    secrets: Arc<SecretsBundle>,
    cached: CachedNodeConfig,
}

#[derive(Debug)]
struct ParsedSecrets {
    text: Secret<String>,
    bundle: Arc<SecretsBundle>,
}

impl NodeConfigCache {
    /// A cache whose entries are trusted for `ttl` when nothing was written through this
    /// process's store meanwhile. A zero `ttl` reads the rows on every request (but still
    /// reuses renders and parsed secrets whose inputs are unchanged).
    pub fn new(ttl: Duration) -> NodeConfigCache {
        NodeConfigCache {
            ttl,
            entries: Mutex::new(Entries::default()),
        }
    }

    fn entries(&self) -> MutexGuard<'_, Entries> {
        // A panic while holding the lock leaves only cache entries behind; they stay usable.
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The server that `lookup` names (the first by id when several match), or `None`.
    /// A miss is remembered like a hit (while the generation stays and for the time to live),
    /// so guessing the same UUID again costs no query.
    ///
    /// # Errors
    /// The store's, when the database does not answer.
    pub async fn find_server(
        &self,
        store: &Store,
        lookup: &ServerLookup,
    ) -> Result<Option<Server>, StoreError> {
        let generation = store.config_inputs_generation();
        if let Some(entry) = self.entries().lookups.get_mut(lookup)
            && entry.may_answer(generation, self.ttl)
        {
            return Ok(Some(entry.value.clone()));
        }
        if self
            .entries()
            .misses
            .get(lookup)
            .is_some_and(|entry| entry.is_current(generation, self.ttl))
        {
            return Ok(None);
        }
        let found = match lookup {
            ServerLookup::Uuid(uuid) => store.find_servers_by_uuid(uuid).await?,
            ServerLookup::Ipv4(ipv4) => store.find_servers_by_ipv4(ipv4).await?,
        };
        let Some(server) = found.into_iter().next() else {
            let mut entries = self.entries();
            make_room(&mut entries.misses, MAX_MISSES, generation, self.ttl);
            entries
                .misses
                .insert(lookup.clone(), Stamped::new(generation, ()));
            return Ok(None);
        };
        let mut entries = self.entries();
        make_room(&mut entries.lookups, MAX_LOOKUPS, generation, self.ttl);
        entries
            .lookups
            .insert(lookup.clone(), Stamped::new(generation, server.clone()));
        Ok(Some(server))
    }

    /// The config of `server` (as [`super::render_node_config`] makes it).
    ///
    /// # Errors
    /// As [`super::render_node_config`]'s; errors are never cached.
    pub async fn render(
        &self,
        store: &Store,
        server: &Server,
    ) -> Result<CachedNodeConfig, NodeConfigError> {
        let generation = store.config_inputs_generation();
        if let Some(entry) = self.entries().renders.get_mut(&server.id)
            && entry.may_answer(generation, self.ttl)
        {
            return Ok(entry.value.cached.clone());
        }
        let inputs = read_inputs(store, server).await?;
        let secrets = self.parsed_secrets(&inputs.cluster, inputs.secrets)?;
        let unchanged = self.entries().renders.get(&server.id).and_then(|entry| {
            let render = &entry.value;
            (render.input == inputs.input && Arc::ptr_eq(&render.secrets, &secrets))
                .then(|| render.cached.config.clone())
        });
        let config = match unchanged {
            Some(config) => config,
            None => generate(server, &inputs.input, &secrets)?,
        };
        let cached = CachedNodeConfig {
            config,
            cluster: inputs.cluster,
        };
        let mut entries = self.entries();
        make_room(&mut entries.renders, MAX_RENDERS, generation, self.ttl);
        entries.renders.insert(
            server.id,
            Stamped::new(
                generation,
                Render {
                    input: inputs.input,
                    secrets,
                    cached: cached.clone(),
                },
            ),
        );
        Ok(cached)
    }

    /// The cluster's parsed secrets bundle: the one parsed before while the stored text is the
    /// same, else parsed now.
    fn parsed_secrets(
        &self,
        cluster: &Cluster,
        text: Secret<String>,
    ) -> Result<Arc<SecretsBundle>, NodeConfigError> {
        if let Some(parsed) = self.entries().secrets.get(&cluster.id)
            && parsed.text == text
        {
            return Ok(parsed.bundle.clone());
        }
        let bundle = Arc::new(parse_secrets(cluster, &text)?);
        self.entries().secrets.insert(
            cluster.id,
            ParsedSecrets {
                text,
                bundle: bundle.clone(),
            },
        );
        Ok(bundle)
    }
}

/// Keeps `map` below `max` entries before an insert: entries that are no longer current go
/// first, and when every entry is current the map starts over.
fn make_room<K, T>(map: &mut HashMap<K, Stamped<T>>, max: usize, generation: u64, ttl: Duration) {
    if map.len() < max {
        return;
    }
    map.retain(|_, entry| entry.is_current(generation, ttl));
    if map.len() >= max {
        map.clear();
    }
}
