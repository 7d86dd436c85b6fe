-- Background jobs on Supabase Queues (pgmq), consumed by `supagate worker` through PostgREST.
--
-- 1. pgmq itself, unless the project already has it (the Queues integration installs it).
-- 2. The `pgmq_public` wrappers exactly as Supabase's "Expose Queues via PostgREST" switch
--    defines them (Studio's database-queues toggle; same names, arguments and return types),
--    created only where absent so a project that enabled the switch keeps its own. The ones
--    created here are executable by service_role only: supagate is their one caller.
-- 3. The queues and their dead-letter queues, with RLS on and no policy, so whatever a
--    project grants on the wrappers, anon and authenticated see no message of ours.
-- 4. enqueue_stripe_event(): records the event id and enqueues the event in one transaction.
-- 5. queue_set_vt() and queue_depth(): the worker's retry backoff and depth gauge (pgmq.set_vt
--    and pgmq.metrics are not among Supabase's wrappers).
-- 6. Payments get their user from an already linked customer on insert.

-- 1 -------------------------------------------------------------------------------------------
do $$
begin
  if not exists (select 1 from pg_namespace where nspname = 'pgmq') then
    create extension pgmq;
  end if;
end;
$$;

-- 2 -------------------------------------------------------------------------------------------
create schema if not exists pgmq_public;
grant usage on schema pgmq_public to postgres, service_role;

do $$
begin
  if to_regprocedure('pgmq_public.pop(text)') is null then
    create function pgmq_public.pop(queue_name text)
      returns setof pgmq.message_record
      language plpgsql
      set search_path = ''
    as $fn$
    begin
        return query
        select *
        from pgmq.pop(
            queue_name := queue_name
        );
    end;
    $fn$;
    comment on function pgmq_public.pop(queue_name text) is
      'Retrieves and locks the next message from the specified queue.';
    revoke execute on function pgmq_public.pop(text) from public, anon, authenticated;
    grant execute on function pgmq_public.pop(text) to postgres, service_role;
  end if;

  if to_regprocedure('pgmq_public.send(text,jsonb,integer)') is null then
    create function pgmq_public.send(
        queue_name text,
        message jsonb,
        sleep_seconds integer default 0  -- renamed from 'delay'
    )
      returns setof bigint
      language plpgsql
      set search_path = ''
    as $fn$
    begin
        return query
        select *
        from pgmq.send(
            queue_name := queue_name,
            msg := message,
            delay := sleep_seconds
        );
    end;
    $fn$;
    comment on function pgmq_public.send(queue_name text, message jsonb, sleep_seconds integer) is
      'Sends a message to the specified queue, optionally delaying its availability by a number of seconds.';
    revoke execute on function pgmq_public.send(text, jsonb, integer) from public, anon, authenticated;
    grant execute on function pgmq_public.send(text, jsonb, integer) to postgres, service_role;
  end if;

  if to_regprocedure('pgmq_public.send_batch(text,jsonb[],integer)') is null then
    create function pgmq_public.send_batch(
        queue_name text,
        messages jsonb[],
        sleep_seconds integer default 0  -- renamed from 'delay'
    )
      returns setof bigint
      language plpgsql
      set search_path = ''
    as $fn$
    begin
        return query
        select *
        from pgmq.send_batch(
            queue_name := queue_name,
            msgs := messages,
            delay := sleep_seconds
        );
    end;
    $fn$;
    comment on function pgmq_public.send_batch(queue_name text, messages jsonb[], sleep_seconds integer) is
      'Sends a batch of messages to the specified queue, optionally delaying their availability by a number of seconds.';
    revoke execute on function pgmq_public.send_batch(text, jsonb[], integer) from public, anon, authenticated;
    grant execute on function pgmq_public.send_batch(text, jsonb[], integer) to postgres, service_role;
  end if;

  if to_regprocedure('pgmq_public.archive(text,bigint)') is null then
    create function pgmq_public.archive(
        queue_name text,
        message_id bigint
    )
      returns boolean
      language plpgsql
      set search_path = ''
    as $fn$
    begin
        return
        pgmq.archive(
            queue_name := queue_name,
            msg_id := message_id
        );
    end;
    $fn$;
    comment on function pgmq_public.archive(queue_name text, message_id bigint) is
      'Archives a message by moving it from the queue to a permanent archive.';
    revoke execute on function pgmq_public.archive(text, bigint) from public, anon, authenticated;
    grant execute on function pgmq_public.archive(text, bigint) to postgres, service_role;
  end if;

  if to_regprocedure('pgmq_public.delete(text,bigint)') is null then
    create function pgmq_public.delete(
        queue_name text,
        message_id bigint
    )
      returns boolean
      language plpgsql
      set search_path = ''
    as $fn$
    begin
        return
        pgmq.delete(
            queue_name := queue_name,
            msg_id := message_id
        );
    end;
    $fn$;
    comment on function pgmq_public.delete(queue_name text, message_id bigint) is
      'Permanently deletes a message from the specified queue.';
    revoke execute on function pgmq_public.delete(text, bigint) from public, anon, authenticated;
    grant execute on function pgmq_public.delete(text, bigint) to postgres, service_role;
  end if;

  if to_regprocedure('pgmq_public.read(text,integer,integer)') is null then
    create function pgmq_public.read(
        queue_name text,
        sleep_seconds integer,
        n integer
    )
      returns setof pgmq.message_record
      language plpgsql
      set search_path = ''
    as $fn$
    begin
        return query
        select *
        from pgmq.read(
            queue_name := queue_name,
            vt := sleep_seconds,
            qty := n
        );
    end;
    $fn$;
    comment on function pgmq_public.read(queue_name text, sleep_seconds integer, n integer) is
      'Reads up to "n" messages from the specified queue with an optional "sleep_seconds" (visibility timeout).';
    revoke execute on function pgmq_public.read(text, integer, integer) from public, anon, authenticated;
    grant execute on function pgmq_public.read(text, integer, integer) to postgres, service_role;
  end if;
end;
$$;

-- The wrappers are SECURITY INVOKER: the caller (service_role) needs pgmq itself. Supabase's
-- switch grants the same to service_role (and EXECUTE to anon/authenticated, which we do not).
-- All functions rather than a list: the switch's list names pgmq.read(text, integer, integer)
-- and pgmq.pop(text), which newer pgmq versions no longer have (an extra defaulted argument).
grant usage on schema pgmq to service_role;
grant execute on all functions in schema pgmq to service_role;
grant all privileges on all tables in schema pgmq to service_role;
grant usage, select on all sequences in schema pgmq to service_role;
alter default privileges in schema pgmq grant all privileges on tables to service_role;
alter default privileges in schema pgmq grant usage, select on sequences to service_role;

-- 3 -------------------------------------------------------------------------------------------
-- pgmq.create is idempotent (create ... if not exists inside).
select pgmq.create('stripe_events');
select pgmq.create('stripe_events_dlq');
select pgmq.create('user_registered');
select pgmq.create('user_registered_dlq');

do $$
declare
  q text;
begin
  foreach q in array array['stripe_events', 'stripe_events_dlq', 'user_registered', 'user_registered_dlq']
  loop
    execute format('alter table pgmq.%I enable row level security', 'q_' || q);
    execute format('alter table pgmq.%I enable row level security', 'a_' || q);
    execute format('revoke all on table pgmq.%I, pgmq.%I from anon, authenticated', 'q_' || q, 'a_' || q);
    execute format('grant all on table pgmq.%I, pgmq.%I to service_role', 'q_' || q, 'a_' || q);
  end loop;
end;
$$;

-- 4 -------------------------------------------------------------------------------------------
-- The webhook's acknowledgement: the event id and the message are stored together or not at
-- all. Two PostgREST calls (record, then send) could not be atomic: a failure between them
-- would mark the event done with nothing queued, and Stripe's redelivery would be dropped as a
-- duplicate. True when new (and queued), false for a redelivery (nothing queued).
create or replace function public.enqueue_stripe_event(
  p_event_id text,
  p_event_type text,
  p_event jsonb
)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  insert into public.webhook_events (id, type)
  values (p_event_id, p_event_type)
  on conflict (id) do nothing;
  if not found then
    return false;
  end if;
  perform pgmq.send(queue_name := 'stripe_events', msg := p_event);
  return true;
end;
$$;

comment on function public.enqueue_stripe_event(text, text, jsonb) is
  'Records a Stripe event id and queues the event on stripe_events in one transaction; false for a redelivery.';

-- 5 -------------------------------------------------------------------------------------------
-- A failed job's message becomes visible again p_sleep_seconds from now (the retry backoff).
-- False when the message is gone.
create or replace function public.queue_set_vt(
  p_queue_name text,
  p_msg_id bigint,
  p_sleep_seconds integer
)
returns boolean
language plpgsql
set search_path = ''
as $$
begin
  perform pgmq.set_vt(queue_name := p_queue_name, msg_id := p_msg_id, vt := p_sleep_seconds);
  return found;
end;
$$;

comment on function public.queue_set_vt(text, bigint, integer) is
  'Makes a pgmq message visible again after p_sleep_seconds (retry backoff).';

-- Messages waiting in a queue (visible or not), for the worker's depth gauge.
create or replace function public.queue_depth(p_queue_name text)
returns bigint
language sql
set search_path = ''
as $$
  select queue_length from pgmq.metrics(p_queue_name);
$$;

comment on function public.queue_depth(text) is
  'Number of messages in a pgmq queue (pgmq.metrics queue_length).';

revoke execute on function
  public.enqueue_stripe_event(text, text, jsonb),
  public.queue_set_vt(text, bigint, integer),
  public.queue_depth(text)
  from public, anon, authenticated;
grant execute on function
  public.enqueue_stripe_event(text, text, jsonb),
  public.queue_set_vt(text, bigint, integer),
  public.queue_depth(text)
  to service_role;

-- 6 -------------------------------------------------------------------------------------------
-- A payment for a customer linked earlier gets its user now; link_stripe_customer() back-fills
-- payments that arrived before the link. Together: either order ends with user_id set.
create or replace function public.payments_fill_user_id()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  if new.user_id is null and new.stripe_customer_id is not null then
    select c.user_id into new.user_id
      from public.customers c
     where c.stripe_customer_id = new.stripe_customer_id;
  end if;
  return new;
end;
$$;

create trigger payments_fill_user_id
  before insert on public.payments
  for each row execute function public.payments_fill_user_id();

revoke execute on function public.payments_fill_user_id() from public, anon, authenticated;
