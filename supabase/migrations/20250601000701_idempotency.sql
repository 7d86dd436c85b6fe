-- Idempotency keys: a write sent with `Idempotency-Key` goes through one of the functions
-- below, which record the key and its answer in the write's own transaction. A crash between
-- the write and the record cannot happen: they commit or roll back together, so a retry either
-- finds the stored answer (replayed) or finds nothing and writes (the first never committed).
--
-- Keys are scoped to the caller (`auth.uid()`), live in `private` (not exposed through
-- PostgREST, no table grants), and are reached only through the SECURITY DEFINER helpers,
-- which read the caller from the verified claims, never from an argument.

create schema if not exists private;

create table private.idempotency_keys (
  user_id uuid not null,
  key text not null
    constraint idempotency_keys_key_length check (char_length(key) between 1 and 255),
  -- supagate's hash of method, path, caller and body: the same key with another request is 422.
  fingerprint text not null,
  status smallint not null,
  -- `json`, not `jsonb`: the stored text is replayed exactly as first answered.
  body json not null,
  created_at timestamptz not null default now(),
  primary key (user_id, key)
);

comment on table private.idempotency_keys is
  'Idempotency-Key records: the first answer of each caller''s keyed write, replayed on a retry.';

-- Pruning walks the oldest first.
create index idempotency_keys_created_at_idx on private.idempotency_keys (created_at);

alter table private.idempotency_keys enable row level security;
revoke all on table private.idempotency_keys from public, anon, authenticated;

-- Raises the errors PostgREST turns into the HTTP status in DETAIL and supagate maps by `code`.
create or replace function private.idempotency_refuse(p_code text, p_status integer, p_message text)
returns void
language plpgsql
set search_path = ''
as $$
begin
  raise sqlstate 'PGRST' using
    message = json_build_object('code', p_code, 'message', p_message)::text,
    detail = json_build_object('status', p_status, 'headers', json_build_object())::text;
end;
$$;

-- The stored answer of this caller's key as `{"replayed": true, "status", "body"}`, or null when
-- the key is new (or expired) and the write should run. A key still held by an open
-- transaction is 409 at once rather than a wait: a waiting retry would hold a database
-- connection for as long as the first write takes.
create or replace function private.idempotency_begin(
  p_key text,
  p_fingerprint text,
  p_ttl_secs integer
)
returns json
language plpgsql
security definer
set search_path = ''
as $$
declare
  caller uuid := auth.uid();
  prior private.idempotency_keys;
begin
  if caller is null then
    raise sqlstate '42501' using message = 'an idempotency key needs a signed-in caller';
  end if;
  -- Held to the end of the transaction: a second request with this key while the first is
  -- uncommitted fails here instead of waiting on the primary key. 64-bit hash; a collision
  -- only costs a spurious 409, which a client retries.
  if not pg_try_advisory_xact_lock(
    hashtextextended('idempotency ' || caller::text || ' ' || p_key, 0)
  ) then
    perform private.idempotency_refuse(
      'idempotency_key_in_use', 409,
      'A request with this Idempotency-Key is still being processed; retry it later'
    );
  end if;
  select * into prior from private.idempotency_keys k where k.user_id = caller and k.key = p_key;
  if not found then
    return null;
  end if;
  if prior.created_at < now() - make_interval(secs => greatest(p_ttl_secs, 0)) then
    delete from private.idempotency_keys k where k.user_id = caller and k.key = p_key;
    return null;
  end if;
  if prior.fingerprint is distinct from p_fingerprint then
    perform private.idempotency_refuse(
      'idempotency_key_reused', 422,
      'This Idempotency-Key was used for a different request'
    );
  end if;
  return json_build_object('replayed', true, 'status', prior.status, 'body', prior.body);
end;
$$;

-- Records the answer of a write that just ran in this transaction and returns it as
-- `{"replayed": false, "status", "body"}`.
create or replace function private.idempotency_finish(
  p_key text,
  p_fingerprint text,
  p_status integer,
  p_body json
)
returns json
language sql
security definer
set search_path = ''
as $$
  insert into private.idempotency_keys (user_id, key, fingerprint, status, body)
  values (auth.uid(), p_key, p_fingerprint, p_status, p_body);
  select json_build_object('replayed', false, 'status', p_status, 'body', p_body);
$$;

revoke all on function
  private.idempotency_refuse(text, integer, text),
  private.idempotency_begin(text, text, integer),
  private.idempotency_finish(text, text, integer, json)
  from public, anon, authenticated;
grant usage on schema private to authenticated;
grant execute on function
  private.idempotency_refuse(text, integer, text),
  private.idempotency_begin(text, text, integer),
  private.idempotency_finish(text, text, integer, json)
  to authenticated;

-- An item as `GET /api/items/{id}` shows it (supagate's ITEM_COLUMNS, in that order).
create or replace function private.item_json(p_id uuid)
returns json
language sql
stable
set search_path = ''
as $$
  select row_to_json(r)
    from (
      select i.id, i.name, i.description, i.price, i.category_id, i.user_id, i.created_at,
             i.updated_at,
             (select row_to_json(c) from (
                select cat.id, cat.name from public.categories cat where cat.id = i.category_id
              ) c) as category
        from public.items i
       where i.id = p_id
    ) r;
$$;

revoke all on function private.item_json(uuid) from public, anon, authenticated;
grant execute on function private.item_json(uuid) to authenticated;

-- The keyed writes. SECURITY INVOKER: the write runs as the caller, under the same grants,
-- RLS policies and triggers (plan limit, audit) as PostgREST's own table writes.

create or replace function public.create_item(
  idempotency_key text,
  fingerprint text,
  key_ttl_secs integer,
  item jsonb
)
returns json
language plpgsql
set search_path = ''
as $$
declare
  prior json;
  new_id uuid;
begin
  prior := private.idempotency_begin(idempotency_key, fingerprint, key_ttl_secs);
  if prior is not null then
    return prior;
  end if;
  insert into public.items (name, description, price, category_id, user_id)
  values (
    item ->> 'name',
    item ->> 'description',
    (item ->> 'price')::numeric,
    (item ->> 'category_id')::uuid,
    auth.uid()
  )
  returning id into new_id;
  return private.idempotency_finish(idempotency_key, fingerprint, 201, private.item_json(new_id));
end;
$$;

comment on function public.create_item(text, text, integer, jsonb) is
  'POST /api/items with an Idempotency-Key: the insert and the key record in one transaction.';

-- Fields absent from `changes` keep their value; a JSON null clears a nullable one.
create or replace function public.update_item(
  idempotency_key text,
  fingerprint text,
  key_ttl_secs integer,
  item_id uuid,
  changes jsonb
)
returns json
language plpgsql
set search_path = ''
as $$
declare
  prior json;
begin
  prior := private.idempotency_begin(idempotency_key, fingerprint, key_ttl_secs);
  if prior is not null then
    return prior;
  end if;
  update public.items i set
    name = case when changes ? 'name' then changes ->> 'name' else i.name end,
    description = case when changes ? 'description' then changes ->> 'description' else i.description end,
    price = case when changes ? 'price' then (changes ->> 'price')::numeric else i.price end,
    category_id = case when changes ? 'category_id' then (changes ->> 'category_id')::uuid else i.category_id end
  where i.id = item_id;
  if not found then
    -- P0002 (no_data_found): PostgREST answers 404, as for a PATCH that matched no row.
    raise sqlstate 'P0002' using message = 'no item with this id for this caller';
  end if;
  return private.idempotency_finish(idempotency_key, fingerprint, 200, private.item_json(item_id));
end;
$$;

comment on function public.update_item(text, text, integer, uuid, jsonb) is
  'PATCH /api/items/{id} with an Idempotency-Key: the update and the key record in one transaction.';

create or replace function public.create_category(
  idempotency_key text,
  fingerprint text,
  key_ttl_secs integer,
  category jsonb
)
returns json
language plpgsql
set search_path = ''
as $$
declare
  prior json;
  created json;
begin
  prior := private.idempotency_begin(idempotency_key, fingerprint, key_ttl_secs);
  if prior is not null then
    return prior;
  end if;
  with inserted as (
    insert into public.categories (name, slug)
    values (category ->> 'name', category ->> 'slug')
    returning id, name, slug
  )
  select row_to_json(inserted) into created from inserted;
  return private.idempotency_finish(idempotency_key, fingerprint, 201, created);
end;
$$;

comment on function public.create_category(text, text, integer, jsonb) is
  'POST /api/categories with an Idempotency-Key: the insert and the key record in one transaction.';

revoke execute on function
  public.create_item(text, text, integer, jsonb),
  public.update_item(text, text, integer, uuid, jsonb),
  public.create_category(text, text, integer, jsonb)
  from public, anon;
grant execute on function
  public.create_item(text, text, integer, jsonb),
  public.update_item(text, text, integer, uuid, jsonb),
  public.create_category(text, text, integer, jsonb)
  to authenticated;

-- Expired keys, for `supagate worker`'s housekeeping (service role only). A key past its
-- lifetime is already treated as new by `idempotency_begin`; this only frees the space.
create or replace function public.prune_idempotency_keys(p_older_than_secs integer)
returns bigint
language sql
security definer
set search_path = ''
as $$
  with gone as (
    delete from private.idempotency_keys
     where created_at < now() - make_interval(secs => greatest(p_older_than_secs, 0))
    returning 1
  )
  select count(*) from gone;
$$;

comment on function public.prune_idempotency_keys(integer) is
  'Deletes idempotency keys older than p_older_than_secs; returns how many.';

revoke execute on function public.prune_idempotency_keys(integer) from public, anon, authenticated;
grant execute on function public.prune_idempotency_keys(integer) to service_role;
