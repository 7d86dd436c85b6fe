-- The free plan's item limit, enforced by the database on every insert into public.items.
--
-- The rule (how many items a user without an active subscription may own, and which
-- subscription statuses count as active) is declared in supagate's configuration and Rust
-- (`business.free_item_limit`, `rules::plan`); supagate writes it here at start-up through
-- set_item_limit_rule() with the secret key. The check itself runs in the insert's transaction,
-- serialised per owner, so two concurrent creates at limit - 1 cannot both pass, a create needs
-- no separate count or subscription read, and a client calling PostgREST directly is bound too.

-- Not exposed by PostgREST (only `public` is) and not usable by anon or authenticated: the rule
-- is read by the trigger (SECURITY DEFINER) and written through set_item_limit_rule() only.
create schema if not exists private;
revoke all on schema private from public, anon, authenticated;

create table private.item_limit_rule (
  -- One row: the primary key can only be `true`.
  id boolean primary key default true constraint item_limit_rule_one_row check (id),
  free_item_limit integer not null constraint item_limit_rule_limit_nonnegative check (free_item_limit >= 0),
  -- Subscription statuses that lift the limit (Stripe's `active` and `trialing`).
  subscribed_statuses text[] not null,
  updated_at timestamptz not null default now()
);

comment on table private.item_limit_rule is
  'The free plan''s item limit as supagate''s configuration declares it; written at start-up.';

-- What supagate's default configuration writes, so a fresh database is bound before the first
-- start-up (an empty rule would have to refuse every insert or none).
insert into private.item_limit_rule (free_item_limit, subscribed_statuses)
values (10, array['active', 'trialing']);

-- Idempotent: supagate calls it on every start-up (and retries until it succeeds).
-- SECURITY DEFINER because service_role has no rights on the private schema; only service_role
-- may execute it.
create or replace function public.set_item_limit_rule(
  p_free_item_limit integer,
  p_subscribed_statuses text[]
)
returns void
language sql
security definer
set search_path = ''
as $$
  insert into private.item_limit_rule (id, free_item_limit, subscribed_statuses, updated_at)
  values (true, p_free_item_limit, p_subscribed_statuses, now())
  on conflict (id) do update set
    free_item_limit = excluded.free_item_limit,
    subscribed_statuses = excluded.subscribed_statuses,
    updated_at = now();
$$;

comment on function public.set_item_limit_rule(integer, text[]) is
  'Stores the free plan''s item limit and the subscription statuses that lift it (service role only).';

revoke execute on function public.set_item_limit_rule(integer, text[]) from public, anon, authenticated;
grant execute on function public.set_item_limit_rule(integer, text[]) to service_role;

-- BEFORE INSERT, per row. Raises SQLSTATE 'PGRST' with a JSON message and detail: PostgREST
-- (v12+) then answers exactly that status and body, 403 {"code":"plan_limit_reached",...}, a
-- code nothing else produces (docs/supabase-wire.md, "Errors").
create or replace function private.enforce_item_limit()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
declare
  rule private.item_limit_rule;
  owned integer;
begin
  if new.user_id is null then
    return new; -- the not-null constraint refuses the row
  end if;
  select * into rule from private.item_limit_rule where id;
  if not found then
    -- Fail closed: no rule means nobody said how many items are allowed.
    raise exception 'private.item_limit_rule is empty';
  end if;
  if exists (
    select 1 from public.subscriptions s
     where s.user_id = new.user_id and s.status = any (rule.subscribed_statuses)
  ) then
    return new;
  end if;
  -- One create per owner at a time: a concurrent create for the same owner waits here until
  -- this transaction ends, then counts this row too (READ COMMITTED, PostgREST's isolation:
  -- each statement of a VOLATILE function takes a new snapshot). Other owners never wait
  -- (except on a hash collision, which only serialises them).
  perform pg_advisory_xact_lock(hashtext('public.items plan limit'), hashtext(new.user_id::text));
  -- Counting stops at the limit: a lapsed subscriber with many items costs no more than that.
  -- Rows inserted earlier by the same statement (a bulk insert) are counted too.
  select count(*) into owned
    from (select 1 from public.items i where i.user_id = new.user_id limit rule.free_item_limit) as capped;
  if owned >= rule.free_item_limit then
    raise sqlstate 'PGRST' using
      message = json_build_object(
        'code', 'plan_limit_reached',
        'message', format('The free plan allows %s items; subscribe to add more', rule.free_item_limit)
      )::text,
      detail = '{"status": 403, "headers": {}}';
  end if;
  return new;
end;
$$;

comment on function private.enforce_item_limit() is
  'BEFORE INSERT trigger on public.items: refuses an item over the free plan''s limit (403 plan_limit_reached).';

revoke execute on function private.enforce_item_limit() from public, anon, authenticated;

-- Bound: the roles PostgREST assumes for clients (a user's token, or the anon key). Not bound,
-- as with RLS: service_role and the database owner (seeds, migrations, support work).
create trigger items_enforce_item_limit
  before insert on public.items
  for each row
  when (current_user in ('anon', 'authenticated'))
  execute function private.enforce_item_limit();
