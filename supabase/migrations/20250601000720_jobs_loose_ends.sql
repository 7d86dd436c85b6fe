-- Jobs, loose ends: billing writes for one Stripe customer serialised, the dead-letter move
-- made one transaction, and old archives and dead letters pruned.

-- A payment (or subscription) and the customer link committing in parallel could each miss
-- the other under READ COMMITTED: the insert's trigger looked up a link not yet committed, and
-- the link's back-fill did not see the uncommitted payment. Both now take this lock first, so
-- the second waits for the first and then, with a new snapshot, sees its row.
create or replace function private.lock_stripe_customer(p_stripe_customer_id text)
returns void
language sql
set search_path = ''
as $$
  select pg_advisory_xact_lock(hashtextextended('stripe customer ' || p_stripe_customer_id, 0));
$$;

revoke all on function private.lock_stripe_customer(text) from public, anon, authenticated;
grant usage on schema private to service_role;
grant execute on function private.lock_stripe_customer(text) to service_role;

create or replace function public.payments_fill_user_id()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.user_id is null and new.stripe_customer_id is not null then
    perform private.lock_stripe_customer(new.stripe_customer_id);
    -- A new statement, a new snapshot: a link committed while we waited is seen.
    select c.user_id into new.user_id
      from public.customers c
     where c.stripe_customer_id = new.stripe_customer_id;
  end if;
  return new;
end;
$$;

create or replace function public.link_stripe_customer(p_user_id uuid, p_stripe_customer_id text)
returns void
language sql
set search_path = ''
as $$
  select private.lock_stripe_customer(p_stripe_customer_id);

  insert into public.customers (user_id, stripe_customer_id)
  values (p_user_id, p_stripe_customer_id)
  on conflict (user_id) do update set stripe_customer_id = excluded.stripe_customer_id;

  update public.subscriptions
     set user_id = p_user_id
   where stripe_customer_id = p_stripe_customer_id and user_id is null;

  update public.payments
     set user_id = p_user_id
   where stripe_customer_id = p_stripe_customer_id and user_id is null;
$$;

create or replace function public.apply_subscription_event(
  p_subscription_id text,
  p_stripe_customer_id text,
  p_status text,
  p_price_id text,
  p_current_period_end timestamptz,
  p_cancel_at_period_end boolean,
  p_event_created bigint,
  p_user_id uuid default null
)
returns boolean
language sql
set search_path = ''
as $$
  select private.lock_stripe_customer(p_stripe_customer_id);

  with applied as (
    insert into public.subscriptions as s (
      id, user_id, stripe_customer_id, status, price_id, current_period_end,
      cancel_at_period_end, stripe_event_created, updated_at
    )
    values (
      p_subscription_id,
      coalesce(
        p_user_id,
        (select c.user_id from public.customers c where c.stripe_customer_id = p_stripe_customer_id)
      ),
      p_stripe_customer_id,
      p_status,
      p_price_id,
      p_current_period_end,
      coalesce(p_cancel_at_period_end, false),
      p_event_created,
      now()
    )
    on conflict (id) do update set
      user_id = coalesce(excluded.user_id, s.user_id),
      stripe_customer_id = excluded.stripe_customer_id,
      status = excluded.status,
      price_id = excluded.price_id,
      current_period_end = excluded.current_period_end,
      cancel_at_period_end = excluded.cancel_at_period_end,
      stripe_event_created = excluded.stripe_event_created,
      updated_at = now()
    where s.stripe_event_created <= excluded.stripe_event_created
    returning 1
  )
  select exists (select 1 from applied);
$$;

-- The dead-letter move as one transaction: the message is archived from its queue and its
-- letter sent to `<queue>_dlq` together, so a crash cannot leave a copy in both (a duplicate
-- letter on the next read) or in neither. False when the message is no longer in the queue
-- (another worker moved it): nothing is sent then.
create or replace function public.queue_dead_letter(
  p_queue_name text,
  p_msg_id bigint,
  p_letter jsonb
)
returns boolean
language plpgsql
set search_path = ''
as $$
declare
  archived boolean;
begin
  select pgmq.archive(queue_name := p_queue_name, msg_id := p_msg_id) into archived;
  if not coalesce(archived, false) then
    return false;
  end if;
  perform pgmq.send(queue_name := p_queue_name || '_dlq', msg := p_letter);
  return true;
end;
$$;

comment on function public.queue_dead_letter(text, bigint, jsonb) is
  'Archives a pgmq message and sends its dead letter to <queue>_dlq in one transaction.';

-- Archived messages of `p_queue_name` and of its dead-letter queue, and dead letters still in
-- `<queue>_dlq`, older than `p_older_than_secs`, are deleted. Returns how many rows went.
create or replace function public.prune_queue_history(p_queue_name text, p_older_than_secs integer)
returns bigint
language plpgsql
set search_path = ''
as $$
declare
  cutoff timestamptz := now() - make_interval(secs => greatest(p_older_than_secs, 0));
  dlq text := p_queue_name || '_dlq';
  removed bigint := 0;
  n bigint;
begin
  -- Only queues pgmq knows: the names become table names below.
  if not exists (select 1 from pgmq.meta m where m.queue_name = p_queue_name)
     or not exists (select 1 from pgmq.meta m where m.queue_name = dlq) then
    raise sqlstate '22023' using message = format('unknown queue %s (or no %s)', p_queue_name, dlq);
  end if;
  execute format('delete from pgmq.%I where archived_at < $1', 'a_' || p_queue_name) using cutoff;
  get diagnostics n = row_count;
  removed := removed + n;
  execute format('delete from pgmq.%I where archived_at < $1', 'a_' || dlq) using cutoff;
  get diagnostics n = row_count;
  removed := removed + n;
  execute format('delete from pgmq.%I where enqueued_at < $1', 'q_' || dlq) using cutoff;
  get diagnostics n = row_count;
  return removed + n;
end;
$$;

comment on function public.prune_queue_history(text, integer) is
  'Deletes archived messages and dead letters of a queue older than p_older_than_secs.';

revoke execute on function
  public.queue_dead_letter(text, bigint, jsonb),
  public.prune_queue_history(text, integer)
  from public, anon, authenticated;
grant execute on function
  public.queue_dead_letter(text, bigint, jsonb),
  public.prune_queue_history(text, integer)
  to service_role;
