-- API keys users create for their own servers (docs/api-keys.md). Only the SHA-256 of a key is
-- stored: the key itself is shown once, when it is created, and never again.

create table public.api_keys (
  id uuid primary key default gen_random_uuid(),
  user_id uuid not null default auth.uid()
    constraint api_keys_user_id_fkey references auth.users (id) on delete cascade,
  name text not null
    constraint api_keys_name_length check (char_length(name) between 1 and 100),
  -- `sgk_` and the key's next 8 characters: enough to tell keys apart in a list, far too
  -- little to guess the other 35 from.
  prefix text not null
    constraint api_keys_prefix_format check (prefix ~ '^sgk_[A-Za-z0-9_-]{8}$'),
  -- Hex SHA-256 of the whole key; unique, so a lookup finds at most one row.
  secret_hash text not null
    constraint api_keys_secret_hash_key unique
    constraint api_keys_secret_hash_format check (secret_hash ~ '^[0-9a-f]{64}$'),
  scopes text[] not null
    constraint api_keys_scopes_known check (
      cardinality(scopes) between 1 and 5
      and scopes <@ array['items:read', 'items:write', 'categories:read', 'users:read', 'users:write']
    ),
  expires_at timestamptz,
  created_at timestamptz not null default now()
);

comment on table public.api_keys is
  'API keys (hashed) a user created; supagate looks keys up by secret_hash with the secret key.';

-- GET /api/keys lists a user's keys newest first.
create index api_keys_user_id_created_at_idx on public.api_keys (user_id, created_at desc);

alter table public.api_keys enable row level security;

create policy api_keys_select_own on public.api_keys
  for select to authenticated
  using (user_id = (select auth.uid()));

-- A key acts as its owner through a token supagate mints with an `api_key_id` claim: such a
-- token (a key) cannot create further keys, even by calling PostgREST itself. Anonymous
-- sign-ins have no keys.
create policy api_keys_insert_own on public.api_keys
  for insert to authenticated
  with check (
    user_id = (select auth.uid())
    and (select auth.jwt() ->> 'api_key_id') is null
    and coalesce((select (auth.jwt() ->> 'is_anonymous')::boolean), false) = false
  );

create policy api_keys_delete_own on public.api_keys
  for delete to authenticated
  using (user_id = (select auth.uid()));

-- Column grants: the owner reads everything but the hash, and writes only what a new key
-- needs (`user_id` comes from the default, `id` and `created_at` too). No updates: a key is
-- replaced, not edited.
revoke all on table public.api_keys from anon, authenticated;
grant select (id, user_id, name, prefix, scopes, expires_at, created_at)
  on table public.api_keys to authenticated;
grant insert (name, prefix, secret_hash, scopes, expires_at) on table public.api_keys to authenticated;
grant delete on table public.api_keys to authenticated;
grant all on table public.api_keys to service_role;
