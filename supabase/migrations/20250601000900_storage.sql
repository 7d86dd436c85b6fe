-- Supabase Storage for supagate's signed URLs (POST /api/uploads, POST /api/downloads): the
-- bucket config/default.toml names, with the limits its [[storage.buckets]] rule states, and
-- row-level security on storage.objects that holds the rule supagate checks in Rust
-- (src/rules/files.rs): every user reads and writes only under their own folder `<user id>/`,
-- in plain path segments (no `.` or `..`, no empty segment, letters, digits, `-`, `_`, `.`).
--
-- Storage applies these with the caller's token: signing an upload tries the INSERT (and, with
-- x-upsert, the UPDATE) as the caller; signing a download reads the row as the caller. The
-- bucket's own file_size_limit and allowed_mime_types are what Storage enforces when the
-- browser PUTs the bytes, so a signed URL used with another type or a larger file is refused
-- there too. A bucket added to the config needs the same three things here.

insert into storage.buckets (id, name, public, file_size_limit, allowed_mime_types)
values ('avatars', 'avatars', false, 5242880, array['image/png', 'image/jpeg', 'image/webp'])
on conflict (id) do update
  set public = excluded.public,
      file_size_limit = excluded.file_size_limit,
      allowed_mime_types = excluded.allowed_mime_types;

-- Whether an object name is the caller's to use: the first folder is their id, and every
-- segment is plain. STABLE (auth.uid() reads the request's claims); `search_path = ''` and
-- schema-qualified names stop shadowing.
create or replace function private.is_own_object_name(object_name text)
returns boolean
language sql
stable
set search_path = ''
as $$
  select coalesce(
    (storage.foldername(object_name))[1] = (select auth.uid())::text
      and object_name ~ '^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)+$'
      and object_name !~ '(^|/)\.\.?(/|$)',
    false)
$$;

comment on function private.is_own_object_name(text) is
  'True when the name is under the caller''s own folder (<auth.uid()>/...) in plain segments.';

revoke all on function private.is_own_object_name(text) from public;
grant execute on function private.is_own_object_name(text) to authenticated;

create policy avatars_select_own on storage.objects
  for select to authenticated
  using (bucket_id = 'avatars' and private.is_own_object_name(name));

create policy avatars_insert_own on storage.objects
  for insert to authenticated
  with check (bucket_id = 'avatars' and private.is_own_object_name(name));

-- x-upsert, and a rename: the row must be the caller's before and after.
create policy avatars_update_own on storage.objects
  for update to authenticated
  using (bucket_id = 'avatars' and private.is_own_object_name(name))
  with check (bucket_id = 'avatars' and private.is_own_object_name(name));

create policy avatars_delete_own on storage.objects
  for delete to authenticated
  using (bucket_id = 'avatars' and private.is_own_object_name(name));

-- Anonymous sign-ins write only when private.settings allows it, as on every other table
-- (20250601000500_anonymous.sql); other buckets are left to their own policies.
create policy avatars_insert_not_anonymous on storage.objects
  as restrictive for insert to authenticated
  with check (bucket_id <> 'avatars' or (select private.anonymous_may_write()));

create policy avatars_update_not_anonymous on storage.objects
  as restrictive for update to authenticated
  using (bucket_id <> 'avatars' or (select private.anonymous_may_write()))
  with check (bucket_id <> 'avatars' or (select private.anonymous_may_write()));

create policy avatars_delete_not_anonymous on storage.objects
  as restrictive for delete to authenticated
  using (bucket_id <> 'avatars' or (select private.anonymous_may_write()));
