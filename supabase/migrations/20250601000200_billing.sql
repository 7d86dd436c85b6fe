-- Billing state mirrored from Stripe webhooks, and the webhook delivery log.
--
-- Written only by the gateway's webhook handler with the service role (BYPASSRLS). A signed-in
-- user may read their own customers row and their own subscription; anon sees nothing. Stripe
-- stays the source of truth: rows outlive a deleted user (user_id set null) for reconciliation,
-- except the customers link, which means nothing without the user.

create table public.customers (
  user_id uuid primary key
    constraint customers_user_id_fkey references auth.users (id) on delete cascade,
  stripe_customer_id text not null
    constraint customers_stripe_customer_id_key unique,
  created_at timestamptz not null default now()
);

comment on table public.customers is 'Links a Supabase user to their Stripe customer (checkout.session.completed).';

create table public.subscriptions (
  id text primary key, -- Stripe subscription id (sub_...)
  -- Null until the customer is linked: subscription events may arrive before
  -- checkout.session.completed; link_stripe_customer() fills it in afterwards.
  user_id uuid
    constraint subscriptions_user_id_fkey references auth.users (id) on delete set null,
  stripe_customer_id text not null,
  -- Not an enum or check: a status Stripe adds later must not make every retry fail.
  status text not null,
  price_id text,
  current_period_end timestamptz,
  cancel_at_period_end boolean not null default false,
  -- `created` (Unix seconds) of the Stripe event whose state this row holds; an event older
  -- than this is refused by apply_subscription_event().
  stripe_event_created bigint not null,
  updated_at timestamptz not null default now()
);

comment on table public.subscriptions is 'Latest known state of each Stripe subscription.';

-- GET /api/billing/subscription reads by user_id; also the FK's index for cascades.
create index subscriptions_user_id_idx on public.subscriptions (user_id);

create table public.payments (
  id text primary key, -- Stripe payment intent id (pi_...)
  user_id uuid
    constraint payments_user_id_fkey references auth.users (id) on delete set null,
  stripe_customer_id text, -- null for guest payments
  amount bigint not null constraint payments_amount_nonnegative check (amount >= 0), -- minor units
  currency text not null constraint payments_currency_format check (currency ~ '^[a-z]{3}$'),
  status text not null,
  created_at timestamptz not null default now()
);

comment on table public.payments is 'Succeeded payment intents (payment_intent.succeeded).';

-- The FK's index, so deleting a user does not scan every payment.
create index payments_user_id_idx on public.payments (user_id);

create table public.webhook_events (
  id text primary key, -- Stripe event id (evt_...): a redelivery conflicts here
  type text not null,
  received_at timestamptz not null default now()
);

comment on table public.webhook_events is 'Every Stripe event id processed once; redeliveries are duplicates.';

alter table public.customers enable row level security;
alter table public.subscriptions enable row level security;
alter table public.payments enable row level security;
alter table public.webhook_events enable row level security;

create policy customers_select_own on public.customers
  for select to authenticated
  using (user_id = (select auth.uid()));

create policy subscriptions_select_own on public.subscriptions
  for select to authenticated
  using (user_id = (select auth.uid()));

-- payments and webhook_events have no policy at all: with RLS on, that is "no rows" for every
-- role without BYPASSRLS, on top of the missing grants below.

revoke all on table public.customers, public.subscriptions, public.payments, public.webhook_events
  from anon, authenticated;
grant select on table public.customers, public.subscriptions to authenticated;
grant all on table public.customers, public.subscriptions, public.payments, public.webhook_events
  to service_role;

-- ---------------------------------------------------------------------------------------------
-- RPCs for the webhook handler (service role only). SECURITY INVOKER: the service role already
-- bypasses RLS, so definer rights would add nothing but risk.
-- ---------------------------------------------------------------------------------------------

-- Applies a subscription state unless the stored one comes from a newer event. The comparison
-- happens inside the upsert, so two deliveries racing each other cannot both win. Events from
-- the same second (Stripe's `created` resolution) apply in delivery order.
-- Returns true when the state was stored, false when it was older than what is held.
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

comment on function public.apply_subscription_event(text, text, text, text, timestamptz, boolean, bigint, uuid) is
  'Upserts a subscription unless the stored state comes from a newer Stripe event; true when stored.';

-- Records a Stripe event id. Returns true the first time, false for a redelivery.
create or replace function public.record_webhook_event(p_event_id text, p_event_type text)
returns boolean
language sql
set search_path = ''
as $$
  with recorded as (
    insert into public.webhook_events (id, type)
    values (p_event_id, p_event_type)
    on conflict (id) do nothing
    returning 1
  )
  select exists (select 1 from recorded);
$$;

comment on function public.record_webhook_event(text, text) is
  'Stores a Stripe event id once; true when new, false when it was already recorded.';

-- Links a user to their Stripe customer (checkout.session.completed) and claims the billing rows
-- that arrived before the link. A customer id already linked to another user raises 23505.
create or replace function public.link_stripe_customer(p_user_id uuid, p_stripe_customer_id text)
returns void
language sql
set search_path = ''
as $$
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

comment on function public.link_stripe_customer(uuid, text) is
  'Upserts the user <-> Stripe customer link and back-fills user_id on earlier billing rows.';

-- Supabase's default privileges grant EXECUTE to anon and authenticated explicitly, so revoking
-- from PUBLIC alone would not be enough.
revoke execute on function
  public.apply_subscription_event(text, text, text, text, timestamptz, boolean, bigint, uuid),
  public.record_webhook_event(text, text),
  public.link_stripe_customer(uuid, text)
  from public, anon, authenticated;
grant execute on function
  public.apply_subscription_event(text, text, text, text, timestamptz, boolean, bigint, uuid),
  public.record_webhook_event(text, text),
  public.link_stripe_customer(uuid, text)
  to service_role;
