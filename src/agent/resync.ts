// When the agent resyncs, in one place. The reflector, the cache, the
// reconciler, the policy engine, the kernel verifier, the optional kinds'
// listers and the DNS path each carry out a part of what follows, and point
// here rather than explain it again.
//
// A sync (Reconciler.syncNow) compiles the cache's snapshot and brings the
// node to it: the CNI conflist, the routes to the other nodes, and the policy
// table in one nftables transaction. It is full when the table is replaced
// whole, incremental when only the difference from the ruleset last applied
// goes in. A relist replaces one kind in the cache with a fresh list from the
// API. A repair is a full sync the kernel verifier asks for.
//
// Agent start. The cache is seeded from the plugin's IPAM records, so a pod
// the API does not yet show with an address is policed anyway. Every
// reflector lists its kind (paged), then watches from the list's version.
// Nothing is applied until every kind has completed its first list
// (ClusterCache.allSynced): a table compiled from part of the policies would
// open what the others close, and the previous agent's table stays in force
// meanwhile. The sync that the last kind's first list schedules is full,
// since the engine has applied nothing yet, and replaces that table
// atomically; /readyz says ready once it returns.
//
// Changes. Every list and every watch event the cache takes schedules a sync;
// a bookmark, which changes no object, does not. So do the plugin's hand-off
// at pod start (POST /cni/add, which waits for the sync that applies its pod)
// and at pod removal (POST /cni/del). The reconciler syncs `--debounce-ms`
// after the first change of a burst, not the last, so that a burst is one
// transaction and a steady stream of changes cannot postpone enforcement. A
// change the sync did not see schedules the next one. A failed sync leaves
// the previous table in force and is retried, the wait doubling from the
// debounce up to SYNC_RETRY_MAX_MS so that a refusing kernel is not hammered.
//
// Full or incremental (PolicyEngine.sync). Incremental whenever the engine
// holds the ruleset it last applied. Full when it holds none: the first sync,
// a repair (the verifier makes the engine forget it), and the sync after a
// full one that failed, since what the kernel holds is then unknown. An
// incremental transaction the kernel refuses means the kernel no longer holds
// what was applied (the table edited or deleted, or an earlier run that
// half-failed outside a transaction): the same sync falls back to a full
// replacement, logged and counted in weir_sync_fallbacks_total; the tests'
// strict engine throws instead, since there a fallback is weir's bug.
// A relist does not force a full sync: the cache's content is what changed,
// and the diff of the compiled table says what the kernel needs.
//
// The watch. A watch the server ends (after WATCH_TIMEOUT_S) or that idles
// out resumes from the last version seen, with no list and no sync. A 410
// (the version is gone: etcd compacted, the watch away too long), as the
// request's status, as an ERROR event or as an expired continue token, relists
// the kind at once, and the list schedules an ordinary sync; what was deleted
// while the watch was away goes with it. Any other failure (the API server
// unreachable, a broken stream) is retried with jittered back-off between
// WATCH_RETRY_MIN_MS and WATCH_RETRY_MAX_MS, resuming the watch without a
// list, while the cache and the table stay as they were: enforcement never
// depends on the API being up.
//
// Optional kinds (ClusterNetworkPolicy, HostFirewallPolicy; optional-api.ts).
// A 404 or 403 lists as empty, so a CRD that is not installed holds up no
// sync; the reflector lists again at every retry until the API serves the
// kind, and an empty list while none is known schedules nothing. Where the
// agent may watch the kind's CRD (ClusterNetworkPolicy, crd-gate.ts), the
// CRD's watch starts the reflector when it is Established and empties the
// kind when it is deleted, and the retries are only the fallback. Once the API
// has served the kind, a 404 or 403 is what a restarting API server answers
// until its CRD handlers and RBAC cache are synced, and listing empty then
// would drop every such policy from the table until the next list: for
// OPTIONAL_KIND_GRACE_MS it is an error and the last list stays in force;
// past that the kind lists empty and a sync drops its policies.
//
// The kernel verifier (kernel-verifier.ts). Every sync that committed tells it
// nf_tables' ruleset generation: a generation only the agent's own commits
// moved keeps the kernel trusted, and nothing is read. Every VERIFY_TICK_MS it
// reads the generation; when someone else's commit moved it (another program's
// table, the DNS path writing learned addresses, a hand edit), a cheap check
// of the table's handle and object count finds a table deleted, made again, or
// missing chains or sets, whatever its size, and repairs at once: a deleted
// table leaves the node unfiltered. Only a full check (listing the table and
// comparing it with the applied ruleset) finds an element or a rule changed.
// It costs in proportion to the table and runs on the event loop, so while the
// kernel is untrusted it runs at most once per VERIFY_COST_FACTOR times its
// last cost, never closer than --kernel-check-min-interval and never further
// than VERIFY_FULL_MAX_MS apart; the first one comes a tick after the first
// sync, and a clean one trusts the kernel again. Drift is repaired: the engine
// forgets what it applied, the reconciler syncs at once (no debounce), and
// every tracked connection of a local pod is judged again, since those let in
// while the table was wrong would live on. A difference a replacement does not
// remove is reported, not repaired again at every check. GET /verify/kernel
// checks on demand, POST also repairs.
//
// After a sync. The DNS path writes every learned address again, with what is
// left of its TTL, after a full sync (which made the domain sets anew, empty)
// or when the domain sets in force changed; after the first sync, also what
// the previous agent had learned. The conntrack purge ends the connections
// the new rules refuse, except after a full sync with no local pod applied
// before it (the agent's first). A full sync also gives its memory back to
// the system at once (memory-keeper.ts).

/** A failed sync is retried after the debounce, doubled at each failure up to this. */
export const SYNC_RETRY_MAX_MS = 5000;

/** A failed list or watch is retried after a jittered wait that doubles from the first to the second. */
export const WATCH_RETRY_MIN_MS = 200;
export const WATCH_RETRY_MAX_MS = 30_000;

/** The server-side timeout of each watch request; the reflector resumes after it. */
export const WATCH_TIMEOUT_S = 300;

/** How long a 404 or 403 of an optional kind the API served before is an outage rather than an absence. */
export const OPTIONAL_KIND_GRACE_MS = 30_000;

/** The kernel verifier's period: the cheap check. */
export const VERIFY_TICK_MS = 1000;

/** Full checks are spaced by this many times the last one's cost, within the two bounds below. */
export const VERIFY_COST_FACTOR = 100;
/** The floor when the agent's --kernel-check-min-interval does not set one. */
export const VERIFY_FULL_MIN_MS = 5000;
export const VERIFY_FULL_MAX_MS = 600_000;
