-- Anonymous sign-ins: Auth gives them the `authenticated` role like everyone else and marks
-- their tokens with `is_anonymous: true`. Every write policy below is RESTRICTIVE (ANDed with
-- the permissive ones already in place), so an anonymous token cannot insert, update or delete
-- anything unless the project turns `allow_anonymous_writes` on in `private.settings`, the
-- database twin of supagate's `business.allow_anonymous_writes` (set both in one change):
--
--   update private.settings set allow_anonymous_writes = true;
--
-- A converted user (email confirmed, `is_anonymous` false in the next token) keeps its id, so
-- the rows it owns stay its own.

create schema if not exists private;
-- Not exposed through PostgREST; callers reach it only through the function below.
revoke all on schema private from public;

create table private.settings (
  -- One row only: the primary key can only be `true`.
  id boolean primary key default true check (id),
  allow_anonymous_writes boolean not null default false
);
insert into private.settings default values;
revoke all on table private.settings from public;

-- SECURITY DEFINER so a policy can read the switch without the caller having rights on the
-- table. `search_path = ''` and schema-qualified names stop shadowing. STABLE, and the
-- policies wrap it in `(select ...)`: evaluated once per statement, not per row.
create or replace function private.anonymous_may_write()
returns boolean
language sql
stable
security definer
set search_path = ''
as $$
  select not coalesce((auth.jwt() ->> 'is_anonymous')::boolean, false)
      or coalesce((select s.allow_anonymous_writes from private.settings as s), false)
$$;

comment on function private.anonymous_may_write() is
  'False for an anonymous sign-in (is_anonymous claim) unless private.settings allows anonymous writes.';

revoke all on function private.anonymous_may_write() from public;
grant usage on schema private to authenticated;
grant execute on function private.anonymous_may_write() to authenticated;

create policy items_insert_not_anonymous on public.items
  as restrictive for insert to authenticated
  with check ((select private.anonymous_may_write()));

create policy items_update_not_anonymous on public.items
  as restrictive for update to authenticated
  using ((select private.anonymous_may_write()))
  with check ((select private.anonymous_may_write()));

create policy items_delete_not_anonymous on public.items
  as restrictive for delete to authenticated
  using ((select private.anonymous_may_write()));

create policy profiles_update_not_anonymous on public.profiles
  as restrictive for update to authenticated
  using ((select private.anonymous_may_write()))
  with check ((select private.anonymous_may_write()));

-- Categories are admin-only already (app_metadata, which an anonymous user cannot set); the
-- same guard keeps it so should that policy ever widen.
create policy categories_insert_not_anonymous on public.categories
  as restrictive for insert to authenticated
  with check ((select private.anonymous_may_write()));

create policy categories_update_not_anonymous on public.categories
  as restrictive for update to authenticated
  using ((select private.anonymous_may_write()))
  with check ((select private.anonymous_may_write()));

create policy categories_delete_not_anonymous on public.categories
  as restrictive for delete to authenticated
  using ((select private.anonymous_may_write()));
