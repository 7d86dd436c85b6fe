-- Catalog: categories and items, readable by everyone, written by their owners.
--
-- Supabase grants every table in `public` to anon, authenticated and service_role by default
-- (ALTER DEFAULT PRIVILEGES) and relies on RLS. We narrow those grants as well, so a policy
-- mistake is not the only thing standing between anon and a write: anon gets SELECT only, and
-- authenticated may only write the columns a client is allowed to choose (id, created_at,
-- updated_at and, on update, user_id are the database's business).

-- Trigram support for `q` (case-insensitive substring on items.name): Supabase keeps extensions
-- in the `extensions` schema, never in `public`.
create extension if not exists pg_trgm with schema extensions;

-- Shared trigger function: `updated_at` must reflect the last write whatever the client sends.
create or replace function public.set_updated_at()
returns trigger
language plpgsql
set search_path = ''
as $$
begin
  new.updated_at := now();
  return new;
end;
$$;

comment on function public.set_updated_at() is
  'BEFORE UPDATE trigger: stamps updated_at with the transaction time.';

-- Trigger functions cannot be called over RPC anyway; revoking keeps the exposed surface honest.
revoke execute on function public.set_updated_at() from public, anon, authenticated;

-- ---------------------------------------------------------------------------------------------
-- categories
-- ---------------------------------------------------------------------------------------------
create table public.categories (
  id uuid primary key default gen_random_uuid(),
  name text not null
    constraint categories_name_length check (char_length(btrim(name)) between 1 and 100),
  -- A URL-safe slug: lowercase words separated by single hyphens.
  slug text not null
    constraint categories_slug_key unique
    constraint categories_slug_format check (slug ~ '^[a-z0-9]+(-[a-z0-9]+)*$' and char_length(slug) <= 100),
  created_at timestamptz not null default now()
);

comment on table public.categories is 'Item categories; public catalog, written by admins.';

-- No index on name for `order=name`: the table holds tens of rows, a sort is cheaper than an index.

alter table public.categories enable row level security;

create policy categories_select_everyone on public.categories
  for select to anon, authenticated
  using (true);

-- Admins are recognised by app_metadata.role, which only the service role can set
-- (user_metadata is user-editable and never grants anything).
create policy categories_insert_admin on public.categories
  for insert to authenticated
  with check ((select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin');

create policy categories_update_admin on public.categories
  for update to authenticated
  using ((select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin')
  with check ((select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin');

create policy categories_delete_admin on public.categories
  for delete to authenticated
  using ((select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin');

revoke all on table public.categories from anon, authenticated;
grant select on table public.categories to anon, authenticated;
grant insert (name, slug), update (name, slug), delete on table public.categories to authenticated;
grant all on table public.categories to service_role;

-- ---------------------------------------------------------------------------------------------
-- items
-- ---------------------------------------------------------------------------------------------
create table public.items (
  id uuid primary key default gen_random_uuid(),
  name text not null
    constraint items_name_length check (char_length(btrim(name)) >= 1 and char_length(name) <= 100),
  description text
    constraint items_description_length check (char_length(description) <= 2000),
  price numeric(12, 2) not null
    constraint items_price_range check (price > 0 and price <= 1000000),
  category_id uuid
    constraint items_category_id_fkey references public.categories (id) on delete set null,
  -- Defaults to the caller so a PostgREST insert need not (and should not) send it.
  user_id uuid not null default auth.uid()
    constraint items_user_id_fkey references auth.users (id) on delete cascade,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.items is 'The public catalog; each item is owned by the user who created it.';

create trigger items_set_updated_at
  before update on public.items
  for each row execute function public.set_updated_at();

-- Indexes: exactly the filters and orders GET /api/items can produce (API.md). Every order has
-- `id` as tiebreak so pages are stable; a btree is read in both directions, so one index serves
-- `.asc` and `.desc` (a mixed tiebreak direction still uses it, through an Incremental Sort).
--   order=created_at (the default)         -> items_created_at_id_idx
--   order=price, min_price/max_price       -> items_price_id_idx
--   order=name                             -> items_name_id_idx
--   q (ILIKE '%text%')                     -> items_name_trgm_idx
--   user_id= / mine=true (+ default order) -> items_user_id_created_at_id_idx (also the FK's index)
--   category_id= (+ default order)         -> items_category_id_created_at_id_idx (also the FK's index)
create index items_created_at_id_idx on public.items (created_at, id);
create index items_price_id_idx on public.items (price, id);
create index items_name_id_idx on public.items (name, id);
create index items_name_trgm_idx on public.items using gin (name extensions.gin_trgm_ops);
create index items_user_id_created_at_id_idx on public.items (user_id, created_at, id);
create index items_category_id_created_at_id_idx on public.items (category_id, created_at, id);

alter table public.items enable row level security;

create policy items_select_everyone on public.items
  for select to anon, authenticated
  using (true);

-- `(select auth.uid())` is evaluated once per statement (an InitPlan), not once per row.
create policy items_insert_own on public.items
  for insert to authenticated
  with check (user_id = (select auth.uid()));

create policy items_update_owner_or_admin on public.items
  for update to authenticated
  using (
    user_id = (select auth.uid())
    or (select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin'
  )
  with check (
    user_id = (select auth.uid())
    or (select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin'
  );

create policy items_delete_owner_or_admin on public.items
  for delete to authenticated
  using (
    user_id = (select auth.uid())
    or (select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin'
  );

revoke all on table public.items from anon, authenticated;
grant select on table public.items to anon, authenticated;
-- Ownership never moves: user_id is insertable (checked by items_insert_own) but not updatable.
grant insert (name, description, price, category_id, user_id) on table public.items to authenticated;
grant update (name, description, price, category_id) on table public.items to authenticated;
grant delete on table public.items to authenticated;
grant all on table public.items to service_role;
