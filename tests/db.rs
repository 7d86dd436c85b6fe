//! Database tests: `supabase/migrations` applied to a real, throwaway PostgreSQL 15 cluster on top
//! of a reproduction of Supabase's baseline, checked for row-level security, grants, constraints,
//! triggers, the RPCs and index use. Needs `initdb`/`postgres` (see `db/cluster.rs`).

mod db {
    pub mod cluster;
    pub mod support;

    mod anonymous;
    mod api_keys;
    mod audit;
    mod billing;
    mod constraints;
    mod event_order;
    mod idempotency;
    mod indexes;
    mod item_limit;
    mod jobs_loose_ends;
    mod project;
    mod queues;
    mod rls;
    mod search;
    mod stats;
    mod storage;
    mod worker;
}
