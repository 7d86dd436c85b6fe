-- Profiles: one row per auth.users row, created by a trigger at sign-up, removed by cascade.

create table public.profiles (
  id uuid primary key
    constraint profiles_id_fkey references auth.users (id) on delete cascade,
  -- Nullable: a user picks a username after sign-up. Unique when set.
  username text
    constraint profiles_username_key unique
    constraint profiles_username_format check (username ~ '^[a-z0-9_]{3,30}$'),
  full_name text,
  avatar_url text
    constraint profiles_avatar_url_https check (avatar_url like 'https://%'),
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

comment on table public.profiles is 'Public profile of each auth user; created by on_auth_user_created.';

create trigger profiles_set_updated_at
  before update on public.profiles
  for each row execute function public.set_updated_at();

-- GET /api/users?q= is a username prefix search (`username LIKE 'abc%'`). The unique index uses
-- the database collation, which can only serve LIKE prefixes under the C collation; hosted
-- databases use a UTF-8 locale, so the prefix search needs its own text_pattern_ops index.
-- Ordering by username is served by the unique index.
create index profiles_username_prefix_idx on public.profiles (username text_pattern_ops);

alter table public.profiles enable row level security;

create policy profiles_select_authenticated on public.profiles
  for select to authenticated
  using (true);

create policy profiles_update_self_or_admin on public.profiles
  for update to authenticated
  using (
    id = (select auth.uid())
    or (select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin'
  )
  with check (
    id = (select auth.uid())
    or (select auth.jwt() -> 'app_metadata' ->> 'role') = 'admin'
  );

-- Rows are created by the trigger and deleted by cascade: no client inserts or deletes.
revoke all on table public.profiles from anon, authenticated;
grant select on table public.profiles to authenticated;
grant update (username, full_name, avatar_url) on table public.profiles to authenticated;
grant all on table public.profiles to service_role;

-- SECURITY DEFINER: the role inserting into auth.users (supabase_auth_admin) has no rights on
-- public.profiles. `search_path = ''` stops a caller from shadowing `public.profiles` with an
-- object of their own; every name inside is schema-qualified.
create or replace function public.handle_new_user()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
  -- user_metadata is user-supplied: copy only what cannot break the insert (a failing trigger
  -- would fail the sign-up itself). The username is chosen later through PUT /api/users/{id}.
  insert into public.profiles (id, full_name, avatar_url)
  values (
    new.id,
    new.raw_user_meta_data ->> 'full_name',
    case
      when new.raw_user_meta_data ->> 'avatar_url' like 'https://%'
        then new.raw_user_meta_data ->> 'avatar_url'
    end
  );
  return new;
end;
$$;

comment on function public.handle_new_user() is
  'AFTER INSERT trigger on auth.users: creates the matching public.profiles row.';

revoke execute on function public.handle_new_user() from public, anon, authenticated;

create trigger on_auth_user_created
  after insert on auth.users
  for each row execute function public.handle_new_user();
